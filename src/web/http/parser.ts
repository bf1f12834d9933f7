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
 * changes them (names are lower-cased only when compared). A head whose
 * method is a common one and whose target is the previous request's (as
 * pipelined and keep-alive requests often are) needs no decode at all
 * until its fields are read.
 *
 * @module
 */

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
import { FramingFields } from './framing.js';
import {
  decodeLatin1,
  type FieldScan,
  fieldRecords,
  fieldScan,
  type Headers,
  SCAN_EMPTY,
  SCAN_ERROR,
  SCAN_FIELD,
  SCAN_PARTIAL,
  scanFields,
} from './headers.js';
import {
  ParsedHead,
  type ParserHandler,
  type ParserOptions,
  type TargetForm,
} from './parser-types.js';
import {
  lineTooLong,
  type RequestLine,
  requestLineScratch,
  scanRequestLine,
} from './request-line.js';

export type { ParserHandler, ParserOptions, RequestHead, TargetForm } from './parser-types.js';

// ====================================================================== constants

const LF = 0x0a;

const SCAN: FieldScan = fieldScan();
const LINE: RequestLine = requestLineScratch();

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
 * - `Expect` other than `100-continue` is not refused here: the head says
 *   so ({@link RequestHead.expectationFailed}) and the channel answers 417
 *   in its turn in the pipeline.
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
  /** At the end of a head read in one input: that input, the fields not decoded (see #flushLast). */
  #raw: Buffer | null = null;
  #rawBase = 0;
  #offsets: number[] = [];
  #recCount = 0;
  /** The previous request's target (reused when the next one has the same bytes). */
  #lastTarget = '';
  #headerBytes = 0;
  #headerCount = 0;
  /** What the head's framing fields said. */
  readonly #fields = new FramingFields();
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
   *   `data`), and must never be given them again. A head delivered to
   *   `onRequest` may hold on to `data` too (its fields are then decoded on
   *   first use): do not modify `data` afterwards.
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
        kind = this.#fields.note(buf, rec, first, scan.records);
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
        this.#flushLast(data);
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
        return this.#fail(
          new HTTPParseError(lineTooLong(line, 0, line.length, this.#maxLine)),
          len,
        );
      }
    } else if (this.#headerBytes + this.#pending.length > this.#maxHeaderSize) {
      return this.#fail(new HTTPParseError('HEADERS_TOO_LARGE'), len);
    }
    return len;
  }

  /**
   * Scans a request line from `buf[ls]` (or an empty line before one) as
   * {@link scanFields} does field lines, checks it and records its parts.
   * Returns a `SCAN_*` status; errors are in `SCAN.error`.
   */
  #requestLine(buf: Buffer, ls: number): number {
    const line = LINE;
    const status = scanRequestLine(buf, ls, SCAN, line, this.#maxLine);
    if (status === SCAN_FIELD) {
      this.#minor = line.minor;
      this.#targetForm = line.form;
      this.#connect = line.form === 'authority';
      this.#knownMethod = line.method;
      this.#ms = ls;
      this.#me = line.me;
      this.#ts = line.ts;
      this.#te = line.te;
      this.#lineRecorded = true;
    }
    return status;
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

  /**
   * At the end of a head in `buf`: as {@link #flush} (one decode for the
   * request line and the fields), except when the target is the previous
   * request's (pipelined and keep-alive requests often repeat it) and the
   * method a common one: then nothing needs decoding now, and fields all
   * recorded in `buf` are left as bytes, which the head decodes on first
   * use (many requests never look at their fields; the head keeps `buf`
   * until then). A head decoded either way costs one decode at most.
   */
  #flushLast(buf: Buffer): void {
    const n = this.#recCount;
    const lazy =
      n > 0 &&
      this.#source === '' &&
      (!this.#lineRecorded ||
        (this.#knownMethod !== null && this.#sameTarget(buf, this.#ts, this.#te)));
    if (!lazy) {
      this.#flush(buf);
      this.#lastTarget = this.#target;
      return;
    }
    if (this.#lineRecorded) {
      this.#method = this.#knownMethod!;
      this.#target = this.#lastTarget;
      this.#lineRecorded = false;
    }
    const rec = fieldRecords(0);
    const base = rec[0]!;
    const o = this.#offsets;
    for (let r = 0; r < n << 2; r += 4) {
      o.push(rec[r]! - base, rec[r + 1]! - base, rec[r + 2]! - base, rec[r + 3]! - base);
    }
    this.#raw = buf;
    this.#rawBase = base;
    this.#recCount = 0;
  }

  /** Whether `buf[ts, te)` holds the previous request's target. */
  #sameTarget(buf: Buffer, ts: number, te: number): boolean {
    const last = this.#lastTarget;
    const n = last.length;
    if (n !== te - ts || n === 0) return false;
    for (let i = 0; i < n; i++) if (last.charCodeAt(i) !== buf[ts + i]) return false;
    return true;
  }

  /** The head is complete at `pos`: check the framing, deliver the head, set up the body. */
  #headComplete(pos: number, len: number): number {
    const minor = this.#minor;
    const fields = this.#fields;
    const kind = fields.check(minor, this.#connect, this.#maxBodySize);
    if (kind !== null) return this.#fail(new HTTPParseError(kind), len);
    const chunked = fields.teSeen;
    const contentLength = fields.contentLength === -1 ? null : fields.contentLength;
    const keepAlive = !fields.connClose && (minor === 1 || fields.connKeepAlive);
    const upgrade = minor === 1 && fields.upgradeHeader && fields.connUpgrade;
    const head = new ParsedHead(
      this.#method,
      this.#target,
      this.#targetForm,
      minor === 1 ? '1.1' : '1.0',
      this.#source,
      this.#raw,
      this.#rawBase,
      this.#offsets,
      contentLength,
      chunked,
      keepAlive,
      minor === 1 && fields.expectContinue,
      minor === 1 && fields.expectOther,
      upgrade,
    );
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

  /** Clears what belongs to one head. */
  #resetHead(): void {
    this.#emptyLines = 0;
    this.#knownMethod = null;
    this.#method = '';
    this.#target = '';
    this.#connect = false;
    this.#source = '';
    this.#raw = null;
    this.#offsets = [];
    this.#headerBytes = 0;
    this.#headerCount = 0;
    this.#fields.reset();
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
