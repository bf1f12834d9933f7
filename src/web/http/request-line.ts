/**
 * The request line at the byte level (RFC 9112 §3), for the request
 * parser: {@link scanRequestLine} delimits and checks `method SP
 * request-target SP HTTP-version` in one pass over byte tables, with the
 * target's form for the method (origin, absolute, authority for CONNECT,
 * asterisk for OPTIONS); also `uri-host [":" port]` ({@link validHost},
 * RFC 3986 / RFC 9110 §7.2, used for `Host` too), the common methods as
 * shared strings ({@link knownMethod}) and a case-insensitive compare
 * against lower-case literals ({@link eqLower}).
 *
 * @module
 */

import { isIPv6 } from 'node:net';
import type { ParseErrorKind } from './errors.js';
import {
  decodeLatin1,
  type FieldScan,
  SCAN_EMPTY,
  SCAN_ERROR,
  SCAN_FIELD,
  SCAN_PARTIAL,
  scanLineEnd,
  TOKEN,
} from './headers.js';
import type { TargetForm } from './parser-types.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SLASH = 0x2f;
const COLON = 0x3a;
const STAR = 0x2a;

/** `s` as bytes (ASCII). */
export const lit = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Bytes of a request-target: visible ASCII and obs-text (no SP, no control bytes). */
export const TARGET: Uint8Array = new Uint8Array(256);
for (let c = 0x21; c <= 0xff; c++) TARGET[c] = c === 0x7f ? 0 : 1;

/** reg-name bytes (RFC 3986 unreserved, sub-delims, '%' of pct-encoded). */
const REG_NAME = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) REG_NAME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) REG_NAME[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) REG_NAME[c] = 1;
for (const ch of "-._~!$&'()*+,;=%") REG_NAME[ch.charCodeAt(0)] = 1;

/** Bytes after the "." of an IPvFuture: unreserved, sub-delims, ':'. */
const IP_FUTURE = new Uint8Array(256);
for (let c = 0; c < 256; c++) IP_FUTURE[c] = REG_NAME[c]!;
IP_FUTURE[0x25] = 0;
IP_FUTURE[COLON] = 1;

/** Hexadecimal digits. */
const HEX = new Uint8Array(256);
for (const ch of '0123456789abcdefABCDEF') HEX[ch.charCodeAt(0)] = 1;

/** URI scheme bytes after the first (ALPHA / DIGIT / "+" / "-" / "."). */
export const SCHEME: Uint8Array = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) SCHEME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) SCHEME[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) SCHEME[c] = 1;
for (const ch of '+-.') SCHEME[ch.charCodeAt(0)] = 1;

/**
 * Whether `buf[start, end)` equals the lower-case literal `l`, ignoring
 * ASCII case. `| 0x20` folds only letters among the bytes that can reach
 * here: callers pass checked tokens or field values (no control bytes), and
 * the literals hold only letters, digits and '-'.
 */
export function eqLower(buf: Buffer, start: number, end: number, l: Uint8Array): boolean {
  const n = l.length;
  if (end - start !== n) return false;
  for (let i = 0; i < n; i++) if ((buf[start + i]! | 0x20) !== l[i]) return false;
  return true;
}

const METHODS: readonly (readonly [string, Uint8Array])[] = [
  'GET',
  'PUT',
  'POST',
  'HEAD',
  'PATCH',
  'TRACE',
  'DELETE',
  'OPTIONS',
  'CONNECT',
].map((m) => [m, lit(m)] as const);

/**
 * A method as a shared constant string when it is a common one, else `null`:
 * no allocation for them, and `===` against a literal compares pointers.
 */
export function knownMethod(buf: Buffer, s: number, e: number): string | null {
  const n = e - s;
  for (const [name, bytes] of METHODS) {
    if (bytes.length !== n || bytes[0] !== buf[s]) continue;
    let i = 1;
    while (i < n && bytes[i] === buf[s + i]) i++;
    if (i === n) return name;
  }
  return null;
}

/**
 * Whether `buf[s, e)` is the inside of an IP-literal (RFC 3986 §3.2.2): an
 * IPv6 address (no zone: RFC 6874's `%25` form is not accepted) or an
 * IPvFuture, `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
 */
function validIPLiteral(buf: Buffer, s: number, e: number): boolean {
  if (s === e) return false;
  if ((buf[s]! | 0x20) === 0x76) {
    let i = s + 1;
    while (i < e && HEX[buf[i]!] === 1) i++;
    if (i === s + 1 || i === e || buf[i] !== 0x2e || i + 1 === e) return false;
    for (i++; i < e; i++) if (IP_FUTURE[buf[i]!] === 0) return false;
    return true;
  }
  for (let i = s; i < e; i++) if (buf[i] === 0x25) return false;
  return isIPv6(decodeLatin1(buf, s, e));
}

/**
 * Whether `buf[s, e)` is `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986):
 * an IP-literal in brackets or a reg-name (IPv4 addresses are reg-names
 * syntactically), then optionally ':' and digits. With `authority`, the
 * authority-form of CONNECT: the host must be non-empty and the port present.
 */
export function validHost(buf: Buffer, s: number, e: number, authority: boolean): boolean {
  let i = s;
  if (i < e && buf[i] === 0x5b) {
    const close = buf.indexOf(0x5d, i);
    if (close === -1 || close >= e || !validIPLiteral(buf, i + 1, close)) return false;
    i = close + 1;
  } else {
    while (i < e) {
      const c = buf[i]!;
      if (REG_NAME[c] === 0) break;
      if (c === 0x25) {
        if (i + 2 >= e || HEX[buf[i + 1]!] === 0 || HEX[buf[i + 2]!] === 0) return false;
        i += 3;
      } else i++;
    }
    if (authority && i === s) return false;
  }
  if (i === e) return !authority;
  if (buf[i] !== COLON) return false;
  const portStart = ++i;
  while (i < e && buf[i]! >= 0x30 && buf[i]! <= 0x39) i++;
  return i === e && (!authority || i > portStart);
}

// ====================================================================== the request line

/** A request line's parts, as {@link scanRequestLine} found them (a scratch object). */
export interface RequestLine {
  /** The end of the method (it starts where the line does). */
  me: number;
  /** The start and end of the request-target. */
  ts: number;
  te: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 and later 1.x. */
  minor: number;
  /** The target's form. */
  form: TargetForm;
  /** The method as a shared string when it is a common one, else `null`. */
  method: string | null;
}

/** A fresh {@link RequestLine}. */
export function requestLineScratch(): RequestLine {
  return { me: 0, ts: 0, te: 0, minor: 1, form: 'origin', method: null };
}

/**
 * The scan stopped at `buf[k]`, which the request-line grammar does not
 * allow there: `ended` if the line ends at `k`, `other` if not; or the
 * status of a cut (partial) line or a bare CR.
 */
function stopError(
  buf: Buffer,
  k: number,
  scan: FieldScan,
  ended: ParseErrorKind,
  other: ParseErrorKind,
): number {
  const c = buf[k];
  if (c === CR || c === LF) {
    const r = scanLineEnd(buf, k, scan);
    if (r !== SCAN_FIELD) return r;
    scan.error = ended;
  } else scan.error = other;
  return SCAN_ERROR;
}

/**
 * The error for a request line `buf[ls, ce)` over the limit: 414 when the
 * target starts within the limit (the method is done), else 400 for the
 * method (or whatever is wrong with it). `maxLine` is the limit.
 */
export function lineTooLong(buf: Buffer, ls: number, ce: number, maxLine: number): ParseErrorKind {
  let i = ls;
  while (i < ce && TOKEN[buf[i]!] === 1) i++;
  if (i === ce || i - ls >= maxLine) return 'METHOD_TOO_LONG';
  const c = buf[i]!;
  if (c === SP && i > ls) return 'URI_TOO_LONG';
  if (c === CR) return 'BARE_CR';
  return c === SP || c === HTAB || c < 0x20 || c === 0x7f
    ? 'INVALID_REQUEST_LINE'
    : 'INVALID_METHOD';
}

/**
 * Scans a request line from `buf[ls]` (or an empty line before one) as
 * `scanFields` does field lines, and checks it (`maxLine`: the length
 * limit). Returns a `SCAN_*` status: {@link SCAN_FIELD} with the line's
 * parts in `line`, {@link SCAN_EMPTY} for an empty line,
 * {@link SCAN_PARTIAL} when the input ends inside the line, or
 * {@link SCAN_ERROR} with the rule broken in `scan.error`.
 */
export function scanRequestLine(
  buf: Buffer,
  ls: number,
  scan: FieldScan,
  line: RequestLine,
  maxLine: number,
): number {
  const len = buf.length;
  const token = TOKEN;
  const target = TARGET;
  const first = buf[ls];
  if (first === CR || first === LF) {
    const r = scanLineEnd(buf, ls, scan);
    return r === SCAN_FIELD ? SCAN_EMPTY : r;
  }
  // method SP
  let i = ls;
  while (i < len && token[buf[i]!] === 1) i++;
  if (i === len) return SCAN_PARTIAL;
  let c = buf[i]!;
  if (c !== SP || i === ls) {
    const other =
      c === SP || c === HTAB || c < 0x20 || c === 0x7f ? 'INVALID_REQUEST_LINE' : 'INVALID_METHOD';
    return stopError(buf, i, scan, 'INVALID_REQUEST_LINE', other);
  }
  const me = i;
  // request-target SP
  const ts = ++i;
  while (
    i + 4 <= len &&
    (target[buf[i]!]! & target[buf[i + 1]!]! & target[buf[i + 2]!]! & target[buf[i + 3]!]!) === 1
  ) {
    i += 4;
  }
  while (i < len && target[buf[i]!] === 1) i++;
  if (i === len) return SCAN_PARTIAL;
  c = buf[i]!;
  if (i === ts) return stopError(buf, i, scan, 'INVALID_REQUEST_LINE', 'INVALID_REQUEST_LINE');
  if (c !== SP)
    return stopError(
      buf,
      i,
      scan,
      'INVALID_VERSION',
      c === HTAB ? 'INVALID_REQUEST_LINE' : 'INVALID_TARGET',
    );
  const te = i;
  // HTTP-version, then the line ending
  const vs = ++i;
  while (i < len && target[buf[i]!] === 1) i++;
  if (i === len) return SCAN_PARTIAL;
  c = buf[i]!;
  if (c !== CR && c !== LF) {
    return stopError(
      buf,
      i,
      scan,
      'INVALID_VERSION',
      i === vs ? 'INVALID_REQUEST_LINE' : 'INVALID_VERSION',
    );
  }
  const r = scanLineEnd(buf, i, scan);
  if (r !== SCAN_FIELD) return r;
  const kind = checkRequestLine(buf, ls, me, ts, te, vs, i, line, maxLine);
  if (kind === null) return SCAN_FIELD;
  scan.error = kind;
  return SCAN_ERROR;
}

/**
 * Checks a request line whose parts are delimited (method `[ls, me)`,
 * target `[ts, te)`, version `[vs, ce)`): its length, the version, the
 * target's form for the method; records it in `line`.
 */
function checkRequestLine(
  buf: Buffer,
  ls: number,
  me: number,
  ts: number,
  te: number,
  vs: number,
  ce: number,
  line: RequestLine,
  maxLine: number,
): ParseErrorKind | null {
  if (ce - ls > maxLine) return lineTooLong(buf, ls, ce, maxLine);
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive
  if (ce - vs !== 8) return 'INVALID_VERSION';
  const major = buf[vs + 5]! - 0x30;
  const minor = buf[vs + 7]! - 0x30;
  if (
    buf[vs] !== 0x48 ||
    buf[vs + 1] !== 0x54 ||
    buf[vs + 2] !== 0x54 ||
    buf[vs + 3] !== 0x50 ||
    buf[vs + 4] !== SLASH ||
    buf[vs + 6] !== 0x2e ||
    major < 0 ||
    major > 9 ||
    minor < 0 ||
    minor > 9
  ) {
    return 'INVALID_VERSION';
  }
  if (major !== 1) return 'VERSION_NOT_SUPPORTED';
  line.minor = minor === 0 ? 0 : 1;
  // The target's form, given the method.
  const method = knownMethod(buf, ls, me);
  const first = buf[ts];
  if (method === 'CONNECT') {
    if (!validHost(buf, ts, te, true)) return 'INVALID_TARGET';
    line.form = 'authority';
  } else if (first === SLASH) {
    line.form = 'origin';
  } else if (first === STAR && te - ts === 1) {
    if (method !== 'OPTIONS') return 'INVALID_TARGET';
    line.form = 'asterisk';
  } else {
    // absolute-form: scheme "://" … (a bare `scheme:` names no HTTP resource)
    let k = ts;
    const a = buf[k]! | 0x20;
    if (a < 0x61 || a > 0x7a) return 'INVALID_TARGET';
    k++;
    while (k < te && SCHEME[buf[k]!] === 1) k++;
    if (te - k < 3 || buf[k] !== COLON || buf[k + 1] !== SLASH || buf[k + 2] !== SLASH) {
      return 'INVALID_TARGET';
    }
    line.form = 'absolute';
  }
  line.method = method;
  line.me = me;
  line.ts = ts;
  line.te = te;
  return null;
}
