/**
 * The HTTP/1.1 request parser: incremental, byte-level, over Buffers, strict
 * where RFC 9112 says a server must be.
 *
 * A {@link RequestParser} is fed the bytes of one connection with
 * {@link RequestParser.execute} and reports to a {@link ParserHandler}:
 * `onRequest(head)` as soon as a head is complete, `onBody(view)` for each
 * piece of body (views of the input, never copies),
 * `onMessageComplete(trailers)` at the end of each message, and at most one
 * `onError(error)`, after which it reads nothing more: bytes after a bad
 * request are never parsed as a request.
 *
 * How it is fast (ws's receiver and Twisted's chunked decoder are the
 * models): state lives in small integer fields; each byte of a head is
 * checked once, by loops over 256-entry tables (four bytes per test while
 * they last) that also find the line ends; a line cut by the end of a read
 * is kept as views, its end found with `indexOf` in the new bytes only, and
 * it is joined and scanned once. No string is built per byte or per field:
 * offsets are recorded while checking, and each head is decoded with one
 * `latin1Slice` (per read it spans). The method and target are cut from it
 * at once; the header fields stay offsets into it, searched in place by
 * `Headers#get`, and are cut into strings only when somebody iterates or
 * changes them (names are lower-cased only when compared).
 *
 * @module
 */

import { isIPv6 } from 'node:net';
import { InvalidArgumentError } from '../../reactor/errors.js';
import {
  ChunkedDecoder,
  DEFAULT_MAX_CHUNK_EXTENSION,
  DEFAULT_MAX_TRAILER_SIZE,
  limitOption,
  optionalLimitOption,
  PartialLine,
} from './chunked.js';
import { HTTPParseError, type ParseErrorKind, ParserStateError } from './errors.js';
import {
  decodeLatin1,
  type FieldScan,
  fieldRecords,
  fieldScan,
  type Headers,
  headersFromSource,
  SCAN_EMPTY,
  SCAN_ERROR,
  SCAN_FIELD,
  SCAN_PARTIAL,
  scanFields,
  scanLineEnd,
  TOKEN,
} from './headers.js';

// ====================================================================== public types

/** How the request-target is written (RFC 9112 §3.2). */
export type TargetForm = 'origin' | 'absolute' | 'authority' | 'asterisk';

/** A parsed request head, with the message framing derived from it. */
export interface RequestHead {
  /** The method, case preserved (methods are case-sensitive), e.g. `'GET'`. */
  readonly method: string;
  /** The request-target exactly as sent (latin1-decoded), e.g. `'/a?b=c'`. */
  readonly target: string;
  /**
   * `'origin'` (`/path?query`), `'absolute'` (`scheme://authority/path`),
   * `'authority'` (`host:port`, CONNECT only) or `'asterisk'` (`*`, OPTIONS only).
   */
  readonly targetForm: TargetForm;
  /**
   * The HTTP version the request is processed as: `'1.0'`, or `'1.1'` for
   * HTTP/1.1 and any higher 1.x minor version (RFC 9110 §2.5).
   */
  readonly version: '1.0' | '1.1';
  /** The header fields, in order, raw casing kept. */
  readonly headers: Headers;
  /**
   * The body length from `Content-Length`, or `null` when the request has no
   * `Content-Length` (then the body is chunked, or empty).
   */
  readonly contentLength: number | null;
  /** Whether the body uses the chunked transfer coding. */
  readonly chunked: boolean;
  /**
   * Whether the connection may carry another request after this one:
   * HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
   * `Connection: keep-alive` (and no `close`). When `false`, the parser
   * reads nothing after this message ({@link RequestParser.finished}).
   */
  readonly keepAlive: boolean;
  /** HTTP/1.1 with `Expect: 100-continue` (RFC 9110 §10.1.1; ignored in HTTP/1.0). */
  readonly expectContinue: boolean;
  /**
   * HTTP/1.1 with an `Upgrade` header and an `upgrade` connection option
   * (RFC 9110 §7.8). The parser pauses after such a message (and after a
   * CONNECT): see {@link RequestParser.execute}.
   */
  readonly upgrade: boolean;
}

/**
 * What a {@link RequestParser} reports to. Callbacks run synchronously
 * inside `execute`, in byte order, for one message at a time:
 * `onRequest`, then `onBody` zero or more times, then `onMessageComplete`;
 * and at most one `onError`, after which nothing else is called. A callback
 * may call `pause()`/`resume()` on the parser but not `execute`. If a
 * callback throws, the exception propagates out of `execute` and the parser
 * is finished (it reads nothing more).
 */
export interface ParserHandler {
  /** A request head is complete; its body (if any) follows. */
  onRequest(head: RequestHead): void;
  /**
   * A piece of the current request's body, in order, never empty. `chunk` is
   * a view of the Buffer given to `execute` (not a copy): keep it only if
   * that Buffer is not reused.
   */
  onBody(chunk: Buffer): void;
  /**
   * The current request is complete (its whole body was delivered).
   * `trailers` holds the trailer fields of a chunked body, or is `null`
   * when there were none (and always for non-chunked bodies).
   */
  onMessageComplete(trailers: Headers | null): void;
  /**
   * The bytes broke a rule: answer `error.status` and close the connection.
   * Called once; the parser then reads nothing more.
   */
  onError(error: HTTPParseError): void;
}

/** Limits of a {@link RequestParser}; every one is optional. */
export interface ParserOptions {
  /** Longest request line, in bytes, without its CRLF. Longer → 414 (or 400 if the method alone is longer). Default 8 KiB. */
  maxRequestLineLength?: number;
  /** Largest header section, in bytes: every field line with its line ending, plus the final empty line. Default 64 KiB. Larger → 431. */
  maxHeaderSize?: number;
  /** Most header fields (field lines); also the most trailer fields. Default 100. More → 431. */
  maxHeaderCount?: number;
  /** Longest chunk extension (bytes between a chunk size and its CRLF). Default 4096. Longer → 400. */
  maxChunkExtensionLength?: number;
  /** Largest trailer section, in bytes (counted as the header section). Default 16 KiB. Larger → 431. */
  maxTrailerSize?: number;
  /**
   * Largest request body; `null` (default) for no limit. A larger
   * `Content-Length` → 413 before `onRequest`; a chunked body → 413 at the
   * size line that crosses the limit (before its data is delivered).
   */
  maxBodySize?: number | null;
  /** Most empty lines ignored before a request line (RFC 9112 §2.2). Default 16. More → 400. */
  maxLeadingEmptyLines?: number;
  /**
   * Accept a bare LF as the end of a request line or field line (RFC 9112
   * §2.2 allows it). Default `true`. A bare CR is always refused, and the
   * chunked coding always needs CRLF.
   */
  allowBareLF?: boolean;
}

// ====================================================================== tables and constants

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const SLASH = 0x2f;
const COLON = 0x3a;
const STAR = 0x2a;

/** Bytes of a request-target: visible ASCII and obs-text (no SP, no control bytes). */
const TARGET = new Uint8Array(256);
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

const HEX = new Uint8Array(256);
for (const ch of '0123456789abcdefABCDEF') HEX[ch.charCodeAt(0)] = 1;

/** URI scheme bytes after the first (ALPHA / DIGIT / "+" / "-" / "."). */
const SCHEME = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) SCHEME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) SCHEME[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) SCHEME[c] = 1;
for (const ch of '+-.') SCHEME[ch.charCodeAt(0)] = 1;

const lit = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const L_HOST = lit('host');
const L_EXPECT = lit('expect');
const L_UPGRADE = lit('upgrade');
const L_CONNECTION = lit('connection');
const L_CONTENT_LENGTH = lit('content-length');
const L_TRANSFER_ENCODING = lit('transfer-encoding');
const L_CLOSE = lit('close');
const L_KEEP_ALIVE = lit('keep-alive');
const L_CHUNKED = lit('chunked');
const L_100_CONTINUE = lit('100-continue');

/**
 * Whether `buf[start, end)` equals the lower-case literal `l`, ignoring
 * ASCII case. `| 0x20` folds only letters among the bytes that can reach
 * here: callers pass checked tokens or field values (no control bytes), and
 * the literals hold only letters, digits and '-'.
 */
function eqLower(buf: Buffer, start: number, end: number, l: Uint8Array): boolean {
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
function knownMethod(buf: Buffer, s: number, e: number): string | null {
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
function validHost(buf: Buffer, s: number, e: number, authority: boolean): boolean {
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

const SCAN: FieldScan = fieldScan();

/**
 * By name length, the first letter of the framing field of that length
 * (`host`, `expect`, `upgrade`, `connection`, `content-length`,
 * `transfer-encoding`), else 0: most fields are ruled out without a call.
 */
const FRAMING_FIRST = new Uint8Array(32);
for (const name of [
  'host',
  'expect',
  'upgrade',
  'connection',
  'content-length',
  'transfer-encoding',
]) {
  FRAMING_FIRST[name.length] = name.charCodeAt(0);
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

const S_LINE = 0; // before or inside a request line
const S_HEADERS = 1; // inside the header section
const S_BODY = 2; // Content-Length body
const S_CHUNKED = 3; // chunked body
const S_FINISHED = 4; // after a non-keep-alive message, an error, or a throwing callback

const DEFAULT_MAX_REQUEST_LINE = 8 * 1024;
const DEFAULT_MAX_HEADER_SIZE = 64 * 1024;
const DEFAULT_MAX_HEADER_COUNT = 100;
const DEFAULT_MAX_EMPTY_LINES = 16;

// ====================================================================== the parser

/**
 * Parses the requests of one connection, in order, as their bytes arrive in
 * any split. See {@link execute} for the exact contract and
 * {@link ParserHandler} for the callbacks.
 *
 * Decisions where the RFCs leave a choice (each refusal is an
 * {@link HTTPParseError} with the status in brackets):
 * - Content-Length: 1*DIGIT up to 2^53 - 1; a list or repeated field of
 *   identical values (`5, 5`) counts as that value (RFC 9110 §8.6 allows
 *   it); differing values [400]; empty, signed, non-decimal [400].
 * - Transfer-Encoding: only `chunked`, exactly once and last, across all TE
 *   fields (case-insensitive). Not last or repeated [400]; another coding
 *   before it (`gzip, chunked`) [501]; with Content-Length [400]; in an
 *   HTTP/1.0 request [400] (RFC 9112 §6.1: the framing is faulty).
 * - Version: `HTTP/1.0`, `HTTP/1.1`; `HTTP/1.2`–`HTTP/1.9` are processed as
 *   1.1. Other majors, including `HTTP/0.9` and `HTTP/2.0` [505]. Anything
 *   not `HTTP/` DIGIT `.` DIGIT (`http/1.1`, `HTTP/1.10`, a missing version)
 *   [400].
 * - Request line: exactly one SP between its three parts (no tabs, no
 *   doubled spaces) [400]. Targets: origin-form; absolute-form for any
 *   method, needing `scheme://`; authority-form `host:port` for CONNECT
 *   only (CONNECT accepts nothing else); `*` for OPTIONS only [400 each].
 *   Target bytes: visible ASCII and obs-text (0x80–0xFF, as sent by clients
 *   that do not percent-encode UTF-8); control bytes [400].
 * - CONNECT has no content (RFC 9110 §9.3.6): a CONNECT with
 *   Transfer-Encoding or a non-zero Content-Length [400].
 * - Host: required once in HTTP/1.1, at most once in any version, and
 *   `uri-host [":" port]` when present (empty is allowed) [400]. Absolute
 *   targets still need it (RFC 9112 §3.2).
 * - `Expect` other than `100-continue` is not the parser's business: it is
 *   in the headers for the channel (which may answer 417).
 */
export class RequestParser {
  readonly #handler: ParserHandler;
  readonly #maxLine: number;
  readonly #maxHeaderSize: number;
  readonly #maxHeaderCount: number;
  readonly #maxBodySize: number;
  readonly #maxEmptyLines: number;
  readonly #allowBareLF: boolean;
  readonly #maxChunkExtension: number;
  readonly #maxTrailerSize: number;
  #decoder: ChunkedDecoder | null = null;

  #state = S_LINE;
  #paused = false;
  #executing = false;
  #error: HTTPParseError | null = null;

  // An unfinished line, joined when its LF comes.
  readonly #pending = new PartialLine();

  // ---- the message being parsed
  #emptyLines = 0;
  #lineRecorded = false; // request line offsets are in #ms…#te, not yet decoded
  #ms = 0;
  #me = 0;
  #ts = 0;
  #te = 0;
  #knownMethod: string | null = null;
  #method = '';
  #target = '';
  #targetForm: TargetForm = 'origin';
  #minor = 1;
  #connect = false;
  // Fields read so far: the decoded text they are in and 4 offsets each
  // into it (Headers cuts them into strings only when looked at).
  #source = '';
  #offsets: number[] = [];
  #recCount = 0;
  #headerBytes = 0;
  #headerCount = 0;
  #hostCount = 0;
  #contentLength = -1;
  #teSeen = false;
  #teChunked = false; // chunked seen (it must be the last coding)
  #teLastChunked = false;
  #teOther = false;
  #connClose = false;
  #connKeepAlive = false;
  #connUpgrade = false;
  #upgradeHeader = false;
  #expectContinue = false;
  // ---- framing of the message whose body is being read
  #remaining = 0;
  #keepAlive = true;
  #pauseAfter = false;

  /**
   * @param handler - receives the parsed messages.
   * @param options - limits; see {@link ParserOptions}.
   * @throws InvalidArgumentError for a limit that is not a positive integer
   *   (`maxBodySize`: a non-negative integer or `null`).
   */
  constructor(handler: ParserHandler, options: ParserOptions = {}) {
    this.#handler = handler;
    this.#maxLine = limitOption(
      'maxRequestLineLength',
      options.maxRequestLineLength,
      DEFAULT_MAX_REQUEST_LINE,
    );
    this.#maxHeaderSize = limitOption(
      'maxHeaderSize',
      options.maxHeaderSize,
      DEFAULT_MAX_HEADER_SIZE,
    );
    this.#maxHeaderCount = limitOption(
      'maxHeaderCount',
      options.maxHeaderCount,
      DEFAULT_MAX_HEADER_COUNT,
    );
    this.#maxBodySize = optionalLimitOption('maxBodySize', options.maxBodySize);
    const empty = options.maxLeadingEmptyLines;
    if (empty !== undefined && (!Number.isSafeInteger(empty) || empty < 0)) {
      throw new InvalidArgumentError(
        `maxLeadingEmptyLines must be a non-negative integer, got ${String(empty)}`,
      );
    }
    this.#maxEmptyLines = empty ?? DEFAULT_MAX_EMPTY_LINES;
    this.#allowBareLF = options.allowBareLF ?? true;
    this.#maxChunkExtension = limitOption(
      'maxChunkExtensionLength',
      options.maxChunkExtensionLength,
      DEFAULT_MAX_CHUNK_EXTENSION,
    );
    this.#maxTrailerSize = limitOption(
      'maxTrailerSize',
      options.maxTrailerSize,
      DEFAULT_MAX_TRAILER_SIZE,
    );
  }

  /** Whether the parser is paused (see {@link pause}). */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Whether the parser reads nothing more: after a message whose
   * `keepAlive` is false (RFC 9112 §9.6: no further request is processed),
   * after `onError`, or after a callback threw.
   */
  get finished(): boolean {
    return this.#state === S_FINISHED;
  }

  /** The error reported to `onError`, or `null`. */
  get error(): HTTPParseError | null {
    return this.#error;
  }

  /**
   * Whether the parser is between messages with nothing of the next one
   * consumed (empty lines aside): where a keep-alive idle timeout applies
   * rather than a header timeout.
   */
  get idle(): boolean {
    return this.#state === S_LINE && this.#pending.length === 0 && !this.#lineRecorded;
  }

  /**
   * Whether a request head has been delivered (`onRequest`) and its body is
   * not complete yet.
   */
  get inBody(): boolean {
    return this.#state === S_BODY || this.#state === S_CHUNKED;
  }

  /**
   * Stops consuming input: the running `execute` (if called from a callback)
   * returns right after the events of the bytes it has consumed, and later
   * calls consume nothing (they return 0) until {@link resume}. Idempotent.
   */
  pause(): void {
    this.#paused = true;
  }

  /**
   * Undoes {@link pause}: the next `execute` consumes input again. It does
   * not parse anything by itself: give the bytes `execute` left over again.
   * Idempotent.
   */
  resume(): void {
    this.#paused = false;
  }

  /**
   * Parses `data`, the next bytes of the connection, and returns how many of
   * them it consumed, always `data.length` unless the parser is (or becomes)
   * paused.
   *
   * - Consumed bytes are the parser's: it reports every event they imply
   *   before returning (a message needing no more bytes is completed even if
   *   a callback paused), keeps an unfinished line internally (as views of
   *   `data`: do not modify `data` afterwards), and must never be given them
   *   again.
   * - When a callback calls {@link pause}, `execute` stops consuming and
   *   returns the offset reached; `data.subarray(returned)` is still the
   *   caller's, to give again (first) after {@link resume}. This is how a
   *   channel keeps pipelined requests unparsed until it wants them, or
   *   stops reading a body nobody consumes.
   * - The parser pauses itself after the message of a CONNECT or upgrade
   *   request (before `onMessageComplete`): the bytes after it may not be
   *   HTTP. The channel resumes if it declines the tunnel or upgrade, or
   *   takes the rest as the new protocol's bytes.
   * - After a message with `keepAlive` false, an error, or a throwing
   *   callback, the parser is {@link finished}: it consumes and ignores
   *   everything (returns `data.length`) without calling anything.
   * - While paused it returns 0.
   *
   * @throws ParserStateError if called from one of its own callbacks.
   * @throws whatever a handler callback throws (the parser is then finished).
   */
  execute(data: Buffer): number {
    const len = data.length;
    if (this.#executing) {
      throw new ParserStateError('RequestParser.execute called from its own callback');
    }
    if (this.#paused) return 0;
    this.#executing = true;
    let pos = 0;
    try {
      while (pos < len && !this.#paused) {
        switch (this.#state) {
          case S_LINE:
          case S_HEADERS:
            pos = this.#head(data, pos);
            break;
          case S_BODY: {
            const end = Math.min(len, pos + this.#remaining);
            this.#remaining -= end - pos;
            this.#handler.onBody(data.subarray(pos, end));
            pos = end;
            if (this.#remaining === 0) this.#complete(null);
            break;
          }
          case S_CHUNKED: {
            const decoder = this.#decoder!;
            pos = decoder.execute(data, pos);
            if (decoder.error !== null) pos = this.#fail(decoder.error, len);
            else if (decoder.done) this.#complete(decoder.trailers);
            break;
          }
          default:
            return len;
        }
      }
    } catch (e) {
      this.#state = S_FINISHED;
      this.#recCount = 0;
      this.#pending.clear();
      throw e;
    } finally {
      this.#executing = false;
    }
    return pos;
  }

  // ------------------------------------------------------------------ the head

  /** Reads request and field lines from `pos` until the head ends or the input does. */
  #head(data: Buffer, pos: number): number {
    const len = data.length;
    const scan = SCAN;
    while (pos < len) {
      let buf = data;
      let ls = pos;
      if (this.#pending.length !== 0) {
        // A line began in an earlier input: look for its end in the new
        // bytes only, then join it once and scan it whole.
        const lf = data.indexOf(LF, pos);
        if (lf === -1) return this.#stash(data, pos);
        buf = this.#pending.take(data.subarray(pos, lf + 1));
        ls = 0;
        pos = lf + 1;
      }
      let status: number;
      let kind: ParseErrorKind | null = null;
      if (this.#state === S_LINE) {
        status = this.#requestLine(buf, ls);
        if (status === SCAN_FIELD) this.#state = S_HEADERS;
        else if (status === SCAN_EMPTY && ++this.#emptyLines > this.#maxEmptyLines) {
          kind = 'TOO_MANY_EMPTY_LINES';
        }
        if (status === SCAN_ERROR) kind = scan.error;
        else if (status !== SCAN_PARTIAL && scan.bareLF && !this.#allowBareLF) kind ??= 'BARE_LF';
      } else {
        const first = this.#recCount;
        const rec = fieldRecords(first + this.#maxHeaderCount);
        scan.records = first;
        status = scanFields(
          buf,
          ls,
          this.#maxHeaderSize - this.#headerBytes,
          this.#maxHeaderCount - this.#headerCount,
          this.#allowBareLF,
          rec,
          scan,
        );
        this.#recCount = scan.records;
        this.#headerCount += scan.records - first;
        // Framing fields first: they come before whatever broke the scan.
        kind = this.#framingFields(buf, rec, first, scan.records);
        if (kind === null && status === SCAN_ERROR) kind = scan.error;
        if (kind === null) this.#headerBytes += scan.next - ls;
      }
      if (kind !== null) return this.#fail(new HTTPParseError(kind), len);
      if (status === SCAN_PARTIAL) {
        // (Only ever in `data`: a joined line is whole.)
        return this.#stash(data, this.#state === S_LINE ? ls : scan.next);
      }
      if (buf === data) pos = scan.next;
      else this.#flush(buf);
      if (status === SCAN_EMPTY && this.#state === S_HEADERS) {
        this.#flush(data);
        return this.#headComplete(pos, len);
      }
    }
    this.#flush(data);
    return len;
  }

  /** The input ended inside a line: keep its start, check the limits it can no longer meet. */
  #stash(data: Buffer, pos: number): number {
    const len = data.length;
    this.#flush(data);
    this.#pending.add(pos === 0 ? data : data.subarray(pos));
    if (this.#state === S_LINE) {
      // The line may still end with a CR that does not count.
      if (this.#pending.length > this.#maxLine + 1) {
        const line = this.#pending.peek();
        return this.#fail(new HTTPParseError(this.#lineTooLong(line, 0, line.length)), len);
      }
    } else if (this.#headerBytes + this.#pending.length > this.#maxHeaderSize) {
      return this.#fail(new HTTPParseError('HEADERS_TOO_LARGE'), len);
    }
    return len;
  }

  /**
   * The error for a request line `buf[ls, ce)` over the limit: 414 when the
   * target starts within the limit (the method is done), else 400 for the
   * method (or whatever is wrong with it).
   */
  #lineTooLong(buf: Buffer, ls: number, ce: number): ParseErrorKind {
    let i = ls;
    while (i < ce && TOKEN[buf[i]!] === 1) i++;
    if (i === ce || i - ls >= this.#maxLine) return 'METHOD_TOO_LONG';
    const c = buf[i]!;
    if (c === SP && i > ls) return 'URI_TOO_LONG';
    if (c === CR) return 'BARE_CR';
    return c === SP || c === HTAB || c < 0x20 || c === 0x7f
      ? 'INVALID_REQUEST_LINE'
      : 'INVALID_METHOD';
  }

  /**
   * Scans a request line from `buf[ls]` (or an empty line before one) as
   * {@link scanFields} does field lines, and records its parts. Returns a
   * `SCAN_*` status; errors are in `SCAN.error`.
   */
  #requestLine(buf: Buffer, ls: number): number {
    const scan = SCAN;
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
        c === SP || c === HTAB || c < 0x20 || c === 0x7f
          ? 'INVALID_REQUEST_LINE'
          : 'INVALID_METHOD';
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
    const kind = this.#checkRequestLine(buf, ls, me, ts, te, vs, i);
    if (kind === null) return SCAN_FIELD;
    scan.error = kind;
    return SCAN_ERROR;
  }

  /**
   * Checks a request line whose parts are delimited (method `[ls, me)`,
   * target `[ts, te)`, version `[vs, ce)`): its length, the version, the
   * target's form for the method; records it.
   */
  #checkRequestLine(
    buf: Buffer,
    ls: number,
    me: number,
    ts: number,
    te: number,
    vs: number,
    ce: number,
  ): ParseErrorKind | null {
    if (ce - ls > this.#maxLine) return this.#lineTooLong(buf, ls, ce);
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
    this.#minor = minor === 0 ? 0 : 1;
    // The target's form, given the method.
    const method = knownMethod(buf, ls, me);
    const first = buf[ts];
    if (method === 'CONNECT') {
      if (!validHost(buf, ts, te, true)) return 'INVALID_TARGET';
      this.#targetForm = 'authority';
      this.#connect = true;
    } else if (first === SLASH) {
      this.#targetForm = 'origin';
    } else if (first === STAR && te - ts === 1) {
      if (method !== 'OPTIONS') return 'INVALID_TARGET';
      this.#targetForm = 'asterisk';
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
      this.#targetForm = 'absolute';
    }
    this.#knownMethod = method;
    this.#ms = ls;
    this.#me = me;
    this.#ts = ts;
    this.#te = te;
    this.#lineRecorded = true;
    return null;
  }

  /** Notes the fields that frame the message among records `[from, to)` (offsets in `buf`). */
  #framingFields(buf: Buffer, rec: Int32Array, from: number, to: number): ParseErrorKind | null {
    for (let r = from << 2; r < to << 2; r += 4) {
      const ns = rec[r]!;
      const ne = rec[r + 1]!;
      const nl = ne - ns;
      if (nl >= 32 || FRAMING_FIRST[nl] !== (buf[ns]! | 0x20)) continue;
      const vs = rec[r + 2]!;
      const ve = rec[r + 3]!;
      let kind: ParseErrorKind | null = null;
      switch (nl) {
        case 4:
          if (eqLower(buf, ns, ne, L_HOST)) {
            if (++this.#hostCount > 1) kind = 'DUPLICATE_HOST';
            else if (!validHost(buf, vs, ve, false)) kind = 'INVALID_HOST';
          }
          break;
        case 6:
          if (eqLower(buf, ns, ne, L_EXPECT) && eqLower(buf, vs, ve, L_100_CONTINUE))
            this.#expectContinue = true;
          break;
        case 7:
          if (eqLower(buf, ns, ne, L_UPGRADE) && ve > vs) this.#upgradeHeader = true;
          break;
        case 10:
          if (eqLower(buf, ns, ne, L_CONNECTION)) this.#connection(buf, vs, ve);
          break;
        case 14:
          if (eqLower(buf, ns, ne, L_CONTENT_LENGTH)) kind = this.#contentLengthField(buf, vs, ve);
          break;
        case 17:
          if (eqLower(buf, ns, ne, L_TRANSFER_ENCODING)) kind = this.#transferEncoding(buf, vs, ve);
          break;
      }
      if (kind !== null) return kind;
    }
    return null;
  }

  /** `Connection` options (a comma list of tokens, case-insensitive). */
  #connection(buf: Buffer, vs: number, ve: number): void {
    let i = vs;
    while (i < ve) {
      const c = buf[i]!;
      if (c === COMMA || c === SP || c === HTAB) {
        i++;
        continue;
      }
      let j = i;
      while (j < ve && buf[j] !== COMMA) j++;
      let k = j;
      while (buf[k - 1] === SP || buf[k - 1] === HTAB) k--;
      if (eqLower(buf, i, k, L_CLOSE)) this.#connClose = true;
      else if (eqLower(buf, i, k, L_KEEP_ALIVE)) this.#connKeepAlive = true;
      else if (eqLower(buf, i, k, L_UPGRADE)) this.#connUpgrade = true;
      i = j;
    }
  }

  /** `Content-Length`: 1*DIGIT, or a list of identical such values; every field must agree. */
  #contentLengthField(buf: Buffer, vs: number, ve: number): ParseErrorKind | null {
    let i = vs;
    for (;;) {
      let n = 0;
      const ds = i;
      while (i < ve) {
        const d = buf[i]! - 0x30;
        if (d < 0 || d > 9) break;
        n = n * 10 + d;
        i++;
      }
      if (i === ds || n > Number.MAX_SAFE_INTEGER) return 'INVALID_CONTENT_LENGTH';
      if (this.#contentLength === -1) this.#contentLength = n;
      else if (this.#contentLength !== n) return 'CONFLICTING_CONTENT_LENGTH';
      if (i === ve) return null;
      // OWS "," OWS before the next value
      while (buf[i] === SP || buf[i] === HTAB) i++;
      if (buf[i] !== COMMA) return 'INVALID_CONTENT_LENGTH';
      i++;
      while (i < ve && (buf[i] === SP || buf[i] === HTAB)) i++;
    }
  }

  /** `Transfer-Encoding`: codings in order; `chunked` must come once and last. */
  #transferEncoding(buf: Buffer, vs: number, ve: number): ParseErrorKind | null {
    this.#teSeen = true;
    let i = vs;
    while (i < ve) {
      const c = buf[i]!;
      if (c === COMMA || c === SP || c === HTAB) {
        i++;
        continue;
      }
      let j = i;
      while (j < ve && buf[j] !== COMMA) j++;
      let k = j;
      while (buf[k - 1] === SP || buf[k - 1] === HTAB) k--;
      // A coding after chunked, or chunked twice: the length is unknowable.
      if (this.#teChunked) return 'CHUNKED_NOT_FINAL';
      if (eqLower(buf, i, k, L_CHUNKED)) {
        this.#teChunked = true;
        this.#teLastChunked = true;
      } else {
        this.#teOther = true;
        this.#teLastChunked = false;
      }
      i = j;
    }
    return null;
  }

  /**
   * Decodes what was recorded (offsets in `buf`) with one latin1 decode: the
   * method and target are cut from it now, the fields only keep offsets into
   * it (a head spread over several reads has its pieces concatenated).
   */
  #flush(buf: Buffer): void {
    const n = this.#recCount;
    if (n === 0 && !this.#lineRecorded) return;
    const rec = fieldRecords(0);
    const from = this.#lineRecorded ? this.#ms : rec[0]!;
    const to = n > 0 ? rec[(n << 2) - 1]! : this.#te;
    const s = decodeLatin1(buf, from, to);
    if (this.#lineRecorded) {
      this.#method = this.#knownMethod ?? s.slice(0, this.#me - from);
      this.#target = s.slice(this.#ts - from, this.#te - from);
      this.#lineRecorded = false;
    }
    if (n > 0) {
      // Offsets into the source: `s` starts at `from` in `buf` and at the
      // current end of the source.
      const shift = this.#source.length - from;
      this.#source = this.#source === '' ? s : this.#source + s;
      const o = this.#offsets;
      for (let r = 0; r < n << 2; r += 4) {
        o.push(rec[r]! + shift, rec[r + 1]! + shift, rec[r + 2]! + shift, rec[r + 3]! + shift);
      }
    }
    this.#recCount = 0;
  }

  /** The head is complete at `pos`: check the framing, deliver the head, set up the body. */
  #headComplete(pos: number, len: number): number {
    const kind = this.#framing();
    if (kind !== null) return this.#fail(new HTTPParseError(kind), len);
    const minor = this.#minor;
    const chunked = this.#teSeen;
    const contentLength = this.#contentLength === -1 ? null : this.#contentLength;
    const keepAlive = !this.#connClose && (minor === 1 || this.#connKeepAlive);
    const upgrade = minor === 1 && this.#upgradeHeader && this.#connUpgrade;
    const head: RequestHead = {
      method: this.#method,
      target: this.#target,
      targetForm: this.#targetForm,
      version: minor === 1 ? '1.1' : '1.0',
      headers: headersFromSource(this.#source, this.#offsets),
      contentLength,
      chunked,
      keepAlive,
      expectContinue: minor === 1 && this.#expectContinue,
      upgrade,
    };
    this.#keepAlive = keepAlive;
    this.#pauseAfter = upgrade || this.#connect;
    this.#resetHead();
    if (chunked) {
      this.#state = S_CHUNKED;
      // Made on first use: most connections never see a chunked body.
      if (this.#decoder === null) {
        this.#decoder = new ChunkedDecoder(this.#handler, {
          maxChunkExtensionLength: this.#maxChunkExtension,
          maxTrailerSize: this.#maxTrailerSize,
          maxTrailerCount: this.#maxHeaderCount,
          maxBodySize: this.#maxBodySize === Number.POSITIVE_INFINITY ? null : this.#maxBodySize,
        });
      } else this.#decoder.reset();
      this.#handler.onRequest(head);
    } else if (contentLength !== null && contentLength > 0) {
      this.#state = S_BODY;
      this.#remaining = contentLength;
      this.#handler.onRequest(head);
    } else {
      // No body: the message is complete with its head, pause or not.
      this.#state = S_BODY;
      this.#handler.onRequest(head);
      this.#complete(null);
    }
    return pos;
  }

  /** The framing rules that need the whole head; `null` when the message is acceptable. */
  #framing(): ParseErrorKind | null {
    if (this.#minor === 1 && this.#hostCount === 0) return 'MISSING_HOST';
    if (this.#connect && (this.#teSeen || this.#contentLength > 0)) return 'CONNECT_WITH_BODY';
    if (this.#teSeen) {
      if (this.#minor === 0) return 'TRANSFER_ENCODING_HTTP10';
      if (this.#contentLength !== -1) return 'CONTENT_LENGTH_WITH_TRANSFER_ENCODING';
      if (!this.#teLastChunked) return 'CHUNKED_NOT_FINAL';
      if (this.#teOther) return 'UNSUPPORTED_TRANSFER_CODING';
    }
    if (this.#contentLength > this.#maxBodySize) return 'BODY_TOO_LARGE';
    return null;
  }

  /** Clears what belongs to one head. */
  #resetHead(): void {
    this.#emptyLines = 0;
    this.#knownMethod = null;
    this.#method = '';
    this.#target = '';
    this.#connect = false;
    this.#source = '';
    this.#offsets = [];
    this.#headerBytes = 0;
    this.#headerCount = 0;
    this.#hostCount = 0;
    this.#contentLength = -1;
    this.#teSeen = false;
    this.#teChunked = false;
    this.#teLastChunked = false;
    this.#teOther = false;
    this.#connClose = false;
    this.#connKeepAlive = false;
    this.#connUpgrade = false;
    this.#upgradeHeader = false;
    this.#expectContinue = false;
  }

  /** The current message is complete: get ready for the next (or stop), then tell the handler. */
  #complete(trailers: Headers | null): void {
    this.#remaining = 0;
    this.#state = this.#keepAlive ? S_LINE : S_FINISHED;
    // After CONNECT or an upgrade the bytes may not be HTTP: pause even when
    // finished, so the caller keeps them (for the tunnel) instead of the
    // parser swallowing them.
    if (this.#pauseAfter) this.#paused = true;
    this.#handler.onMessageComplete(trailers);
  }

  /** Reports `error` once and stops; returns `at` (what `execute` reports as consumed). */
  #fail(error: HTTPParseError, at: number): number {
    this.#state = S_FINISHED;
    this.#error = error;
    this.#recCount = 0;
    this.#lineRecorded = false;
    this.#pending.clear();
    this.#handler.onError(error);
    return at;
  }
}
