/**
 * HTTP fields: the {@link Headers} collection (request, response and trailer
 * fields) and the RFC 9110 field syntax shared by the request parser and the
 * chunked decoder (byte tables and {@link scanFields}).
 *
 * `Headers` is case-insensitive for lookup, multi-valued (one entry per field
 * line, in order) and keeps each name's raw casing for output, like Twisted's
 * `http_headers.Headers` with `getRawHeaders`. Names and values written
 * through its API are checked, so a header can never split a response.
 *
 * @module
 */

import { InvalidHeaderError, type ParseErrorKind } from './errors.js';

// ====================================================================== byte tables

/** `tchar` (RFC 9110 §5.6.2): 1 for bytes allowed in a token (field names, methods). @internal */
export const TOKEN: Uint8Array = new Uint8Array(256);
/** `field-vchar / SP / HTAB` (RFC 9110 §5.5): 1 for bytes allowed in a field value. @internal */
export const FIELD_VALUE: Uint8Array = new Uint8Array(256);

for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TOKEN[ch.charCodeAt(0)] = 1;
FIELD_VALUE[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) FIELD_VALUE[c] = c === 0x7f ? 0 : 1;

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * `buf[start, end)` decoded as latin1 (one byte, one character). Calls
 * `Buffer#latin1Slice` (Node's own, untyped) directly: `toString('latin1',
 * …)` adds argument checks and encoding lookup to every request head.
 *
 * @internal
 */
export function decodeLatin1(buf: Buffer, start: number, end: number): string {
  return (buf as Latin1Buffer).latin1Slice(start, end);
}

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;

/** Scan status: the lines were read, up to the end of the input. @internal */
export const SCAN_FIELD = 0;
/** Scan status: the input ends inside a line (`next` is where that line starts). @internal */
export const SCAN_PARTIAL = 1;
/** Scan status: an empty line was read (the end of a field section; `next` is after it). @internal */
export const SCAN_EMPTY = 2;
/** Scan status: a line breaks a rule, named in `error`. @internal */
export const SCAN_ERROR = 3;

/** Where a scan stopped and what it found. One object is reused: read it right away. @internal */
export interface FieldScan {
  /**
   * After {@link SCAN_FIELD}: the end of the last line read (the end of the
   * input); {@link SCAN_EMPTY}: just after the empty line;
   * {@link SCAN_PARTIAL}: the start of the cut line; {@link SCAN_ERROR}:
   * undefined.
   */
  next: number;
  /** Records in the record array (the scan appends from this index on). */
  records: number;
  /** Whether the last line read ended with a bare LF (request lines). */
  bareLF: boolean;
  /** The rule broken, after {@link SCAN_ERROR}. */
  error: ParseErrorKind | null;
}

/** A fresh {@link FieldScan}. @internal */
export function fieldScan(): FieldScan {
  return { next: 0, records: 0, bareLF: false, error: null };
}

// Scratch offsets shared by every parser, 4 per field line: name start, name
// end (the colon), value start, value end. Parsers turn them into strings
// before they return or call out, so one parser re-entered from another's
// callback finds nothing of the other's in it.
let records = new Int32Array(4 * 128);

/** The shared record array, grown to hold at least `count` fields. @internal */
export function fieldRecords(count: number): Int32Array {
  if (records.length < 4 * count) {
    const bigger = new Int32Array(4 * count);
    bigger.set(records);
    records = bigger;
  }
  return records;
}

/**
 * Reads the line ending at `buf[k]`, a CR or LF: sets `out.next` and
 * `out.bareLF` and returns {@link SCAN_FIELD}, or {@link SCAN_PARTIAL} if
 * the CR is the last byte, or {@link SCAN_ERROR} (bare CR).
 *
 * @internal
 */
export function scanLineEnd(buf: Buffer, k: number, out: FieldScan): number {
  if (buf[k] === LF) {
    out.next = k + 1;
    out.bareLF = true;
    return SCAN_FIELD;
  }
  if (k + 1 === buf.length) return SCAN_PARTIAL;
  if (buf[k + 1] === LF) {
    out.next = k + 2;
    out.bareLF = false;
    return SCAN_FIELD;
  }
  out.error = 'BARE_CR';
  return SCAN_ERROR;
}

/**
 * Scans field lines from `buf[start]` (RFC 9112 §5: `field-name ":" OWS
 * field-value OWS`, then CRLF, or LF if `allowBareLF`) up to the empty line
 * that ends the section or the end of `buf`, checking each byte once, and
 * appends 4 offsets per field to `rec` from index `4 * out.records`.
 *
 * Returns {@link SCAN_EMPTY}, {@link SCAN_FIELD}, {@link SCAN_PARTIAL} or
 * {@link SCAN_ERROR} (see {@link FieldScan.next}; fields before an error are
 * recorded). Errors: a line starting with SP/HTAB (obs-fold, or whitespace
 * after the start line), whitespace before the colon, an empty name, a
 * non-token byte in the name, no colon, a CR not followed by LF, a bare LF
 * (unless allowed), NUL or another control byte but HTAB in the value; more
 * than `maxFields` fields (`TOO_MANY_HEADERS`); lines (the empty one
 * included) ending more than `maxBytes` after `start` (`HEADERS_TOO_LARGE`).
 *
 * @internal
 */
export function scanFields(
  buf: Buffer,
  start: number,
  maxBytes: number,
  maxFields: number,
  allowBareLF: boolean,
  rec: Int32Array,
  out: FieldScan,
): number {
  const token = TOKEN;
  const value = FIELD_VALUE;
  const len = buf.length;
  const limit = start + maxBytes;
  let n = out.records;
  const maxN = n + maxFields;
  let ls = start;
  while (ls < len) {
    let c = buf[ls]!;
    let next: number;
    if (c === CR || c === LF) {
      // The empty line.
      if (c === LF) {
        if (!allowBareLF) return scanFailed(out, n, 'BARE_LF');
        next = ls + 1;
      } else if (ls + 1 === len) break;
      else if (buf[ls + 1] === LF) next = ls + 2;
      else return scanFailed(out, n, 'BARE_CR');
      if (next > limit) return scanFailed(out, n, 'HEADERS_TOO_LARGE');
      out.next = next;
      out.records = n;
      return SCAN_EMPTY;
    }
    if (c === SP || c === HTAB) return scanFailed(out, n, 'OBS_FOLD');
    // Four bytes per test while they last: it halves the branches, and
    // the per-byte loop finds the exact stop.
    let i = ls;
    while (
      i + 4 <= len &&
      (token[buf[i]!]! & token[buf[i + 1]!]! & token[buf[i + 2]!]! & token[buf[i + 3]!]!) === 1
    ) {
      i += 4;
    }
    while (i < len && token[buf[i]!] === 1) i++;
    if (i === len) break;
    c = buf[i]!;
    if (c !== COLON) {
      if (c === SP || c === HTAB) return scanFailed(out, n, 'WHITESPACE_BEFORE_COLON');
      if (c === LF) return scanFailed(out, n, 'MISSING_COLON');
      if (c !== CR) return scanFailed(out, n, 'INVALID_HEADER_NAME');
      if (i + 1 === len) break;
      return scanFailed(out, n, buf[i + 1] === LF ? 'MISSING_COLON' : 'BARE_CR');
    }
    if (i === ls) return scanFailed(out, n, 'EMPTY_HEADER_NAME');
    let vs = i + 1;
    while (vs < len && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    let k = vs;
    while (
      k + 4 <= len &&
      (value[buf[k]!]! & value[buf[k + 1]!]! & value[buf[k + 2]!]! & value[buf[k + 3]!]!) === 1
    ) {
      k += 4;
    }
    while (k < len && value[buf[k]!] === 1) k++;
    if (k === len) break;
    c = buf[k]!;
    if (c === CR) {
      if (k + 1 === len) break;
      if (buf[k + 1] !== LF) return scanFailed(out, n, 'BARE_CR');
      next = k + 2;
    } else if (c === LF) {
      if (!allowBareLF) return scanFailed(out, n, 'BARE_LF');
      next = k + 1;
    } else return scanFailed(out, n, 'INVALID_HEADER_VALUE');
    if (next > limit) return scanFailed(out, n, 'HEADERS_TOO_LARGE');
    if (n === maxN) return scanFailed(out, n, 'TOO_MANY_HEADERS');
    while (k > vs && (buf[k - 1] === SP || buf[k - 1] === HTAB)) k--;
    const r = n << 2;
    rec[r] = ls;
    rec[r + 1] = i;
    rec[r + 2] = vs;
    rec[r + 3] = k;
    n++;
    ls = next;
  }
  // The input ended: between lines (FIELD) or inside one (PARTIAL).
  out.next = ls;
  out.records = n;
  return ls === len ? SCAN_FIELD : SCAN_PARTIAL;
}

/** Ends a scan with `error` after `n` records; returns {@link SCAN_ERROR}. */
function scanFailed(out: FieldScan, n: number, error: ParseErrorKind): number {
  out.records = n;
  out.error = error;
  return SCAN_ERROR;
}

/**
 * Appends the fields recorded in `rec[4 * from, 4 * to)` (offsets in `buf`)
 * to `fields` as `[rawName, '', value]` triples: one latin1 decode for all,
 * then slices.
 *
 * @internal
 */
export function appendFields(
  buf: Buffer,
  rec: Int32Array,
  from: number,
  to: number,
  fields: string[],
): void {
  if (from === to) return;
  const base = rec[from << 2]!;
  const s = decodeLatin1(buf, base, rec[(to << 2) - 1]!);
  for (let r = from << 2; r < to << 2; r += 4) {
    fields.push(
      s.slice(rec[r]! - base, rec[r + 1]! - base),
      '',
      s.slice(rec[r + 2]! - base, rec[r + 3]! - base),
    );
  }
}

// ====================================================================== string checks

/** Whether `s` is a non-empty RFC 9110 token (a valid field name or method). */
export function isToken(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TOKEN[c] === 0) return false;
  }
  return true;
}

/**
 * Whether `s` may be sent as a field value: only HTAB, SP, visible ASCII and
 * U+0080–U+00FF (written as one latin1 byte each); no CR, LF, NUL or other
 * control character.
 */
export function isFieldValue(s: string): boolean {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || FIELD_VALUE[c] === 0) return false;
  }
  return true;
}

/** Throws {@link InvalidHeaderError} unless `name` is a token. */
export function assertHeaderName(name: string): void {
  if (typeof name !== 'string' || !isToken(name)) {
    throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
  }
}

/** Throws {@link InvalidHeaderError} unless `value` is a valid field value (see {@link isFieldValue}). */
export function assertHeaderValue(name: string, value: string): void {
  if (typeof value !== 'string' || !isFieldValue(value)) {
    throw new InvalidHeaderError(
      `invalid value for header ${JSON.stringify(name)}: ${JSON.stringify(value)}`,
    );
  }
}

// ====================================================================== Headers

/**
 * Field names already checked, with their lower-case form: responses set
 * the same few names over and over. Bounded; names past the bound are
 * checked each time.
 */
const CHECKED_NAMES = new Map<string, string>();
const MAX_CHECKED_NAMES = 256;

/** `name` lower-cased, after checking it is a token. @throws InvalidHeaderError */
function checkedLowerName(name: string): string {
  let lower = CHECKED_NAMES.get(name);
  if (lower === undefined) {
    assertHeaderName(name);
    lower = name.toLowerCase();
    if (CHECKED_NAMES.size < MAX_CHECKED_NAMES) CHECKED_NAMES.set(name, lower);
  }
  return lower;
}

/** Below this length a loop in JS beats the native `latin1Write` (its call and checks). */
const SHORT_TEXT = 32;

/** Writes `s` (characters below U+0100) at `buf[pos]`, one byte each; returns the new position. */
function putText(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  if (n >= SHORT_TEXT) return pos + (buf as Latin1Writable).latin1Write(s, pos, n);
  for (let i = 0; i < n; i++) buf[pos + i] = s.charCodeAt(i);
  return pos + n;
}

type Latin1Writable = Buffer & { latin1Write(s: string, offset: number, length: number): number };

/** What a {@link Headers} can be built from. */
export type HeadersInit =
  | Headers
  | Iterable<readonly [string, string]>
  | Readonly<Record<string, string | readonly string[]>>;

// Set by Headers' static block: build a Headers over already-checked
// fields without copying or checking them (the parser's fast paths).
let adoptFields: (fields: string[]) => Headers;
let adoptSource: (source: string, offsets: number[]) => Headers;

/**
 * An ordered, multi-valued, case-insensitive collection of HTTP fields.
 *
 * Each field line is one entry `(rawName, value)`; entries keep their order
 * and the raw casing of their name (what {@link serialize} writes). Lookups
 * ignore case. Mutators check their arguments and throw
 * {@link InvalidHeaderError} for a name that is not a token or a value with
 * CR, LF, NUL or another control byte (response splitting is impossible
 * through this API).
 *
 * Headers made by the request parser start as the decoded head text plus
 * offsets: `has`, `get` and `getAll` search that text and cut only the
 * values they return; any other use cuts every entry into strings once.
 * This is invisible to callers.
 */
export class Headers implements Iterable<[string, string]> {
  // Triples [rawName, lowerName, value]. lowerName is '' until first
  // needed: most requests never look most of their headers up, and a
  // lower-cased copy costs an allocation per field.
  #store: string[];
  // A parsed head not yet cut into strings: its text and 4 offsets per
  // field (name start and end, value start and end). Cutting costs a fifth
  // of the parse, and many requests are answered without a header read.
  #source: string | null = null;
  #offsets: number[] | null = null;

  static {
    adoptFields = (fields: string[]): Headers => {
      const h = new Headers();
      h.#store = fields;
      return h;
    };
    adoptSource = (source: string, offsets: number[]): Headers => {
      const h = new Headers();
      h.#source = source;
      h.#offsets = offsets;
      return h;
    };
  }

  /** The triples, cut from the parsed source on first use. */
  get #f(): string[] {
    const offsets = this.#offsets;
    if (offsets !== null) {
      const source = this.#source!;
      const f = this.#store;
      for (let i = 0; i < offsets.length; i += 4) {
        f.push(
          source.slice(offsets[i], offsets[i + 1]),
          '',
          source.slice(offsets[i + 2], offsets[i + 3]),
        );
      }
      this.#offsets = null;
      this.#source = null;
    }
    return this.#store;
  }

  /**
   * @param init - entries to add, in order: another `Headers` (copied), an
   *   iterable of `[name, value]` pairs, or an object whose values are a
   *   string or an array of strings (one entry each).
   * @throws InvalidHeaderError for an invalid name or value in `init`.
   */
  constructor(init?: HeadersInit) {
    this.#store = [];
    if (init === undefined || init === null) return;
    if (init instanceof Headers) {
      this.#store = init.#f.slice();
    } else if (typeof (init as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const [name, value] of init as Iterable<readonly [string, string]>)
        this.add(name, value);
    } else {
      for (const name of Object.keys(init)) {
        const value = (init as Record<string, string | readonly string[]>)[name]!;
        if (typeof value === 'string') this.add(name, value);
        else for (const v of value) this.add(name, v);
      }
    }
  }

  /** The number of entries (field lines), counting each value of a multi-valued name. */
  get size(): number {
    return this.#offsets !== null ? this.#offsets.length / 4 : this.#store.length / 3;
  }

  /** The lower-cased name of the entry at `i`, computed once. */
  #lowerAt(i: number): string {
    const f = this.#f;
    let lower = f[i + 1]!;
    if (lower === '') {
      lower = f[i]!.toLowerCase();
      f[i + 1] = lower;
    }
    return lower;
  }

  /** Index of the first entry at or after `from` whose lower-cased name is `key`, else -1. */
  #find(key: string, from: number): number {
    const f = this.#f;
    const n = f.length;
    const len = key.length;
    for (let i = from; i < n; i += 3) {
      // Only names of the right length are worth lower-casing.
      if (f[i + 1] === '' && f[i]!.length !== len) continue;
      if (this.#lowerAt(i) === key) return i;
    }
    return -1;
  }

  /**
   * The next entry named `key` (lower-case) at or after position `from`, or
   * -1. Positions step by {@link #step}. The reads (`has`, `get`, `getAll`)
   * go through here so that parsed headers are searched in their source
   * text, and only the values asked for are cut into strings.
   */
  #seek(key: string, from: number): number {
    const offsets = this.#offsets;
    if (offsets === null) return this.#find(key, from);
    const source = this.#source!;
    const len = key.length;
    next: for (let i = from; i < offsets.length; i += 4) {
      const start = offsets[i]!;
      if (offsets[i + 1]! - start !== len) continue;
      for (let k = 0; k < len; k++) {
        let c = source.charCodeAt(start + k);
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== key.charCodeAt(k)) continue next;
      }
      return i;
    }
    return -1;
  }

  /** The distance between two positions of {@link #seek}. */
  get #step(): number {
    return this.#offsets === null ? 3 : 4;
  }

  /** The value of the entry at position `i` of {@link #seek}. */
  #valueAt(i: number): string {
    const offsets = this.#offsets;
    return offsets === null
      ? this.#store[i + 2]!
      : this.#source!.slice(offsets[i + 2], offsets[i + 3]);
  }

  /** Whether at least one entry is named `name` (any case). */
  has(name: string): boolean {
    return this.#seek(name.toLowerCase(), 0) !== -1;
  }

  /**
   * The value of `name` (any case), or `null` if absent. Several entries are
   * joined with `", "` in order (RFC 9110 §5.3), except `Set-Cookie`, whose
   * values cannot be combined: `get` returns its first value; use
   * {@link getAll}.
   */
  get(name: string): string | null {
    const key = name.toLowerCase();
    let i = this.#seek(key, 0);
    if (i === -1) return null;
    const first = this.#valueAt(i);
    if (key === 'set-cookie') return first;
    const step = this.#step;
    i = this.#seek(key, i + step);
    if (i === -1) return first;
    let joined = first;
    while (i !== -1) {
      joined += `, ${this.#valueAt(i)}`;
      i = this.#seek(key, i + step);
    }
    return joined;
  }

  /** Every value of `name` (any case), in order; an empty array if absent (Twisted's `getRawHeaders`). */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const out: string[] = [];
    const step = this.#step;
    for (let i = this.#seek(key, 0); i !== -1; i = this.#seek(key, i + step))
      out.push(this.#valueAt(i));
    return out;
  }

  /**
   * Replaces every entry named `name` (any case) by one entry per value,
   * with `name`'s casing, where the first of them was (appended if there
   * was none), as Twisted's `setRawHeaders`. An empty array removes the name.
   *
   * @returns this
   * @throws InvalidHeaderError for an invalid name or value (nothing is changed then).
   */
  set(name: string, value: string | readonly string[]): this {
    const lower = checkedLowerName(name);
    if (typeof value === 'string') assertHeaderValue(name, value);
    else for (const v of value) assertHeaderValue(name, v);
    const f = this.#f;
    const at = f.length === 0 ? -1 : this.#find(lower, 0);
    if (at !== -1) this.delete(lower);
    if (typeof value === 'string') {
      if (at === -1) f.push(name, lower, value);
      else f.splice(at, 0, name, lower, value);
    } else {
      const triples: string[] = [];
      for (const v of value) triples.push(name, lower, v);
      if (at === -1) f.push(...triples);
      else f.splice(at, 0, ...triples);
    }
    return this;
  }

  /**
   * Appends one entry `(name, value)`.
   *
   * @returns this
   * @throws InvalidHeaderError for an invalid name or value.
   */
  add(name: string, value: string): this {
    const lower = checkedLowerName(name);
    assertHeaderValue(name, value);
    this.#f.push(name, lower, value);
    return this;
  }

  /** Removes every entry named `name` (any case); returns whether there was one. */
  delete(name: string): boolean {
    const key = name.toLowerCase();
    let i = this.#find(key, 0);
    if (i === -1) return false;
    const f = this.#f;
    let w = i;
    for (i += 3; i < f.length; i += 3) {
      const raw = f[i]!;
      if (raw.length === key.length && this.#lowerAt(i) === key) continue;
      f[w] = raw;
      f[w + 1] = f[i + 1]!;
      f[w + 2] = f[i + 2]!;
      w += 3;
    }
    f.length = w;
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.#offsets = null;
    this.#source = null;
    this.#store.length = 0;
  }

  /** `[rawName, value]` for each entry, in order. */
  *entries(): IterableIterator<[string, string]> {
    const f = this.#f;
    for (let i = 0; i < f.length; i += 3) yield [f[i]!, f[i + 2]!];
  }

  /** Same as {@link entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** Calls `fn(value, rawName, this)` for each entry, in order. */
  forEach(fn: (value: string, name: string, headers: this) => void): void {
    const f = this.#f;
    for (let i = 0; i < f.length; i += 3) fn(f[i + 2]!, f[i]!, this);
  }

  /** The distinct names, lower-cased, in order of first appearance. */
  names(): string[] {
    const f = this.#f;
    const seen = new Set<string>();
    for (let i = 0; i < f.length; i += 3) seen.add(this.#lowerAt(i));
    return [...seen];
  }

  /** A copy (later changes to either do not affect the other). */
  clone(): Headers {
    return new Headers(this);
  }

  /** `{ lowerName: [value, …] }`, names in order of first appearance. */
  toJSON(): Record<string, string[]> {
    const out: Record<string, string[]> = Object.create(null);
    const f = this.#f;
    for (let i = 0; i < f.length; i += 3) {
      const lower = this.#lowerAt(i);
      const values = out[lower];
      if (values === undefined) out[lower] = [f[i + 2]!];
      else values.push(f[i + 2]!);
    }
    return out;
  }

  /**
   * The shape of Node's `IncomingMessage.headers` (what `ws.handleUpgrade`
   * reads): lower-cased names; `set-cookie` as an array; several `cookie`
   * values joined with `"; "`; other repeated names joined with `", "`.
   */
  toNodeHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = Object.create(null);
    const f = this.#f;
    for (let i = 0; i < f.length; i += 3) {
      const lower = this.#lowerAt(i);
      const value = f[i + 2]!;
      const prev = out[lower];
      if (lower === 'set-cookie') {
        if (prev === undefined) out[lower] = [value];
        else (prev as string[]).push(value);
      } else if (prev === undefined) out[lower] = value;
      else out[lower] = `${prev as string}${lower === 'cookie' ? '; ' : ', '}${value}`;
    }
    return out;
  }

  /** @internal The bytes {@link encodeInto} writes. */
  encodedLength(): number {
    const f = this.#f;
    let n = 0;
    for (let i = 0; i < f.length; i += 3) n += f[i]!.length + f[i + 2]!.length + 4;
    return n;
  }

  /**
   * @internal Writes the field lines of {@link serialize} at `buf[pos]`
   * (latin1: one byte per character) and returns the new position; the
   * caller has made room for {@link encodedLength} bytes.
   */
  encodeInto(buf: Buffer, pos: number): number {
    const f = this.#f;
    for (let i = 0; i < f.length; i += 3) {
      pos = putText(buf, pos, f[i]!);
      buf[pos++] = 0x3a;
      buf[pos++] = 0x20;
      pos = putText(buf, pos, f[i + 2]!);
      buf[pos++] = 0x0d;
      buf[pos++] = 0x0a;
    }
    return pos;
  }

  /**
   * The entries as field lines for the wire: `"Name: value\r\n"` each, raw
   * casing, in order, without the empty line that ends a section. Every
   * character is below U+0100: encode it with `Buffer.from(s, 'latin1')`.
   */
  serialize(): string {
    const f = this.#f;
    let s = '';
    for (let i = 0; i < f.length; i += 3) s += `${f[i]!}: ${f[i + 2]!}\r\n`;
    return s;
  }
}

/**
 * Wraps an array of `[rawName, lowerName | '', value]` triples, already
 * checked by the parser, as a {@link Headers} without copying or checking it.
 * The array then belongs to the `Headers`.
 *
 * @internal for the parser and the chunked decoder.
 */
export function headersFromFields(fields: string[]): Headers {
  return adoptFields(fields);
}

/**
 * A {@link Headers} over fields already checked by the parser and not yet
 * cut into strings: `source` is the decoded head text and `offsets` holds
 * four per field, in order: name start, name end, value start, value end
 * (indices in `source`). The strings are cut on first use. The array then
 * belongs to the `Headers`.
 *
 * @internal for the parser.
 */
export function headersFromSource(source: string, offsets: number[]): Headers {
  return adoptSource(source, offsets);
}
