/**
 * The parts of a request-target a resource reads: the query string parsed
 * into arguments ({@link parseQuery}), the path cut into decoded segments
 * ({@link pathSegments}, Twisted's `postpath`), and the path of an
 * absolute-form target ({@link absolutePath}).
 *
 * @module
 */

/**
 * Percent-decodes `s` leniently, as `application/x-www-form-urlencoded`
 * and Python's `unquote` do: valid escapes become bytes (decoded as UTF-8,
 * invalid sequences as U+FFFD), anything else stays as it is.
 */
function decodeLenient(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = s.indexOf('%'); i !== -1; i = s.indexOf('%', i + 1)) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) continue;
      parts.push(Buffer.from(s.slice(start, i), 'utf8'), Buffer.of(Number.parseInt(hex, 16)));
      start = i + 3;
      i += 2;
    }
    parts.push(Buffer.from(s.slice(start), 'utf8'));
    return Buffer.concat(parts).toString('utf8');
  }
}

function decodeQueryPart(s: string): string {
  if (s.includes('+')) s = s.replaceAll('+', ' ');
  return s.includes('%') ? decodeLenient(s) : s;
}

/**
 * Parses a query string (`a=1&b=x+y&a=2`, without `?`) into each name's
 * values in order: `+` is a space, escapes are decoded leniently, a field
 * without `=` has the value `''`, empty fields are skipped.
 */
export function parseQuery(query: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (query === '') return out;
  for (const field of query.split('&')) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const name = decodeQueryPart(eq === -1 ? field : field.slice(0, eq));
    const value = eq === -1 ? '' : decodeQueryPart(field.slice(eq + 1));
    const values = out.get(name);
    if (values === undefined) out.set(name, [value]);
    else values.push(value);
  }
  return out;
}

/**
 * The decoded segments of a path after its first `/` (Twisted's `postpath`):
 * `/` → `['']`, `/a/b%20c/` → `['a', 'b c', '']`. Returns `null` when a
 * segment has an escape that is not valid percent-encoded UTF-8 (the site
 * answers 400). `'*'` and other paths not starting with `/` give `[]`.
 */
export function pathSegments(path: string): string[] | null {
  if (path.charCodeAt(0) !== 0x2f) return [];
  if (path.length === 1) return [''];
  const segments = path.slice(1).split('/');
  if (!path.includes('%')) return segments;
  try {
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      if (s.includes('%')) segments[i] = decodeURIComponent(s);
    }
  } catch {
    return null;
  }
  return segments;
}

/** The path part of an absolute-form target `scheme://authority/path?query` (`'/'` when it has none). */
export function absolutePath(target: string): string {
  const start = target.indexOf('://') + 3;
  let end = target.length;
  const q = target.indexOf('?', start);
  if (q !== -1) end = q;
  const slash = target.indexOf('/', start);
  return slash === -1 || slash > end ? '/' : target.slice(slash, end);
}
