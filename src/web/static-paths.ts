/**
 * Path safety for static files: which URL path segments may name a child of
 * a served directory, and whether a resolved file system path stays under
 * the served root.
 *
 * Two checks, both always made: the segment itself (so `..`, separators and
 * NUL never reach the file system) and, before anything is opened, the real
 * path of the target against the real path of the root (so a symlink cannot
 * lead out unless the site allows it).
 *
 * @module
 */

import { sep } from 'node:path';

const WINDOWS = process.platform === 'win32';

/**
 * Whether a decoded URL path segment may name an entry of a directory: not
 * empty, not `.` or `..`, and free of `/`, `\`, NUL (and, on Windows, `:`,
 * which would name a drive or an alternate data stream). The site decodes
 * `%2e%2e`, `%2f`, `%5c` and `%00` before the segment gets here, so these
 * encodings are refused too.
 */
export function isSafeSegment(name: string): boolean {
  if (name === '' || name === '.' || name === '..') return false;
  if (name.indexOf('/') >= 0 || name.indexOf('\\') >= 0 || name.indexOf('\0') >= 0) return false;
  // A segment that is "." or ".." once trailing dots and spaces are dropped
  // is one on Windows ("..." and ".. " open the parent there).
  if (WINDOWS && (name.indexOf(':') >= 0 || /^[. ]+$/.test(name))) return false;
  return true;
}

/** Whether the absolute, normalised `path` is `root` or lies under it. */
export function isWithin(path: string, root: string): boolean {
  if (path === root) return true;
  // The root "/" already ends with the separator.
  const prefix = root.endsWith(sep) ? root : root + sep;
  return path.startsWith(prefix);
}

/**
 * A `Location` for the directory at URL path `path` (percent-encoded, as
 * sent) with a slash appended and the query `query` (with its `?`, or `''`)
 * kept. Leading slashes (and backslashes, which browsers read as slashes)
 * are collapsed to one: `//evil.example/dir` must not
 * become a scheme-relative redirect to another host.
 */
export function slashLocation(path: string, query: string): string {
  let i = 0;
  while (i < path.length && (path.charCodeAt(i) === 0x2f || path.charCodeAt(i) === 0x5c)) i++;
  const rest = path.slice(i);
  return rest === '' ? `/${query}` : `/${rest}/${query}`;
}
