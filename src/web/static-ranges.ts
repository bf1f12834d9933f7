/**
 * Byte ranges for static files (RFC 9110 §14): parsing a `Range` header
 * against a representation's length, coalescing abusive range sets, and
 * laying out a `multipart/byteranges` body whose exact length is known before
 * the first byte is sent.
 *
 * Policy, where the RFC lets a server choose:
 * - A `Range` the server cannot use is ignored (the whole representation is
 *   sent with 200), as RFC 9110 §14.2 allows: a unit other than `bytes`, a
 *   syntax error anywhere in the set (non-digits, whitespace inside a spec, a
 *   spec without `-`, `first > last`), an empty set, or more than `maxRanges`
 *   specs (Apache's `MaxRanges` behaves the same).
 * - A syntactically valid set none of whose specs overlaps the representation
 *   is unsatisfiable: 416 with `Content-Range: bytes *\/length`. `bytes=-0`
 *   and any range of an empty representation are unsatisfiable.
 * - Satisfiable specs that overlap or touch are merged (§14.6 lets a server
 *   coalesce "regardless of the order"): the set is then sorted by offset. A
 *   set without overlaps keeps the client's order. After merging, no byte is
 *   sent twice, so a response is never larger than the file plus the part
 *   headers: `bytes=0-,0-,0-…` cannot amplify.
 *
 * @module
 */

/** One satisfiable byte range: `first` to `last`, both inclusive, within the representation. */
export interface ByteRange {
  readonly first: number;
  readonly last: number;
}

/** {@link parseRange} found the header unusable: send the whole representation (200). */
export const RANGE_IGNORED = 0;
/** {@link parseRange}: no spec overlaps the representation: answer 416. */
export const RANGE_UNSATISFIABLE = 1;
/** {@link parseRange}: satisfiable ranges (at least one) in {@link RangeResult.ranges}. */
export const RANGE_SATISFIABLE = 2;

/** What {@link parseRange} decided. */
export interface RangeResult {
  /** {@link RANGE_IGNORED}, {@link RANGE_UNSATISFIABLE} or {@link RANGE_SATISFIABLE}. */
  readonly status: number;
  /** The ranges to send, after merging (empty unless satisfiable). */
  readonly ranges: readonly ByteRange[];
  /** Why the header was ignored (for logs), or `''`. */
  readonly reason: string;
}

/** The default cap on range specs in one `Range` header. */
export const DEFAULT_MAX_RANGES = 100;

const NO_RANGES: readonly ByteRange[] = Object.freeze([]);
const UNSATISFIABLE: RangeResult = Object.freeze({
  status: RANGE_UNSATISFIABLE,
  ranges: NO_RANGES,
  reason: '',
});

function ignored(reason: string): RangeResult {
  return { status: RANGE_IGNORED, ranges: NO_RANGES, reason };
}

/** Whether `s` is `1*DIGIT`. */
function isDigits(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** `s` without leading and trailing SP/HTAB (RFC 9110 OWS; `trim()` also strips other whitespace). */
function trimOWS(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Parses a `Range` header value (`bytes=0-99,200-`, `bytes=-500`) against a
 * representation of `size` bytes, applying the module's policy (ignore,
 * unsatisfiable, merge). Never throws for any string; `maxRanges` counts the
 * non-empty specs before any is resolved, so the work is bounded by the
 * header's length.
 *
 * @throws RangeError (programming error) if `size` is not a safe non-negative integer.
 */
export function parseRange(
  header: string,
  size: number,
  maxRanges: number = DEFAULT_MAX_RANGES,
): RangeResult {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad size ${size}`);
  const eq = header.indexOf('=');
  if (eq < 0) return ignored("missing '='");
  // Range units are case-insensitive (RFC 9110 §14.1).
  if (trimOWS(header.slice(0, eq)).toLowerCase() !== 'bytes') return ignored('unit is not bytes');
  const specs = header.slice(eq + 1).split(',');
  let count = 0;
  for (let i = 0; i < specs.length; i++) {
    const spec = trimOWS(specs[i]!);
    specs[i] = spec;
    // `1#range-spec` allows empty list elements ("bytes=0-1,,2-3").
    if (spec !== '') count++;
  }
  if (count === 0) return ignored('empty range set');
  if (count > maxRanges) return ignored(`more than ${maxRanges} ranges`);

  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    if (spec === '') continue;
    const dash = spec.indexOf('-');
    if (dash < 0) return ignored(`no '-' in ${JSON.stringify(spec)}`);
    const firstText = spec.slice(0, dash);
    const lastText = spec.slice(dash + 1);
    if (firstText === '') {
      // suffix-range: the last N bytes (all of them if N >= size).
      if (!isDigits(lastText)) return ignored(`bad suffix length in ${JSON.stringify(spec)}`);
      const suffix = Number(lastText);
      if (suffix === 0 || size === 0) continue;
      ranges.push({ first: suffix >= size ? 0 : size - suffix, last: size - 1 });
      continue;
    }
    if (!isDigits(firstText)) return ignored(`bad first-pos in ${JSON.stringify(spec)}`);
    // Numbers past 2^53 lose precision but keep their order against any real
    // size, which is all they are used for.
    const first = Number(firstText);
    let last = size - 1;
    if (lastText !== '') {
      if (!isDigits(lastText)) return ignored(`bad last-pos in ${JSON.stringify(spec)}`);
      const requested = Number(lastText);
      if (requested < first) return ignored(`last-pos before first-pos in ${JSON.stringify(spec)}`);
      if (requested < last) last = requested;
    }
    if (first >= size) continue;
    ranges.push({ first, last });
  }
  if (ranges.length === 0) return UNSATISFIABLE;
  return { status: RANGE_SATISFIABLE, ranges: coalesceRanges(ranges), reason: '' };
}

/**
 * `ranges` merged where any two overlap or touch, sorted by offset; or
 * `ranges` itself (the client's order) when none do.
 */
export function coalesceRanges(ranges: readonly ByteRange[]): readonly ByteRange[] {
  if (ranges.length < 2) return ranges;
  const sorted = ranges.slice().sort((a, b) => a.first - b.first || a.last - b.last);
  let merged = false;
  const out: ByteRange[] = [];
  let cur = sorted[0]!;
  for (let i = 1; i < sorted.length; i++) {
    const next = sorted[i]!;
    if (next.first <= cur.last + 1) {
      merged = true;
      if (next.last > cur.last) cur = { first: cur.first, last: next.last };
    } else {
      out.push(cur);
      cur = next;
    }
  }
  out.push(cur);
  return merged ? out : ranges;
}

/** `Content-Range` value for `range` of a `size`-byte representation. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.first}-${range.last}/${size}`;
}

/** `Content-Range` value of a 416 answer. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}

/** Bytes in `range`. */
export function rangeLength(range: ByteRange): number {
  return range.last - range.first + 1;
}

/** One part of a {@link MultipartPlan}: its delimiter and headers, then the file bytes of `range`. */
export interface MultipartPart {
  /** Delimiter line, `Content-Type`, `Content-Range` and the empty line, as bytes. */
  readonly head: Buffer;
  readonly range: ByteRange;
}

/** A `multipart/byteranges` body, laid out before it is sent. */
export interface MultipartPlan {
  /** The response's `Content-Type`: `multipart/byteranges; boundary=…`. */
  readonly contentType: string;
  readonly parts: readonly MultipartPart[];
  /** The close delimiter (`CRLF --boundary-- CRLF`). */
  readonly trailer: Buffer;
  /** The exact body length: every head, every range, the trailer. */
  readonly length: number;
}

/**
 * Lays out a `multipart/byteranges` body (RFC 9110 §14.6) for `ranges` of a
 * `size`-byte representation of type `partType`. The body starts with the
 * first delimiter (no preamble); each later delimiter is preceded by the
 * CRLF that ends the previous part's bytes. `boundary` must be 1–70 token
 * characters that cannot occur in the file bytes by chance (callers use
 * random hex).
 */
export function planMultipart(
  ranges: readonly ByteRange[],
  size: number,
  partType: string,
  boundary: string,
): MultipartPlan {
  const parts: MultipartPart[] = [];
  let length = 0;
  for (let i = 0; i < ranges.length; i++) {
    const range = ranges[i]!;
    const head = Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\n` +
        `Content-Range: ${contentRange(range, size)}\r\n\r\n`,
      'latin1',
    );
    parts.push({ head, range });
    length += head.length + rangeLength(range);
  }
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  length += trailer.length;
  return {
    contentType: `multipart/byteranges; boundary=${boundary}`,
    parts,
    trailer,
    length,
  };
}
