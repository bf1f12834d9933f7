/**
 * The chunked transfer coding (RFC 9112 §7.1), both ways.
 *
 * - Encoding (responses): {@link encodeChunk} returns the size line, the data
 *   and the CRLF as separate Buffers, so a body is written (`writev`) without
 *   being copied; {@link encodeLastChunk} ends the body, with trailers.
 * - Decoding (request bodies): {@link ChunkedDecoder}, an incremental decoder
 *   over Buffers in the style of Twisted's `_ChunkedTransferDecoder`: CRLF
 *   scans start where the previous one stopped, chunk data is handed on as
 *   views of the input, and only a size or trailer line that spans two reads
 *   is copied.
 *
 * The decoder is strict: every line of the coding must end with CRLF (a bare
 * LF is refused here even where the message head accepts one, because LF
 * handling differences in chunk framing are a request-smuggling vector);
 * the size is 1–16 hex digits and at most 2^53 - 1; chunk extensions are
 * bounded and ignored; trailers follow the header field rules.
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import { HTTPParseError, type ParseErrorKind } from './errors.js';
import {
  appendFields,
  FIELD_VALUE,
  type FieldScan,
  fieldRecords,
  fieldScan,
  type Headers,
  headersFromFields,
  SCAN_EMPTY,
  SCAN_ERROR,
  SCAN_PARTIAL,
  scanFields,
} from './headers.js';

// ====================================================================== encoding

/** `"\r\n"`, shared: do not modify. */
export const CRLF: Buffer = Buffer.from('\r\n', 'latin1');

/** The last chunk with no trailers, `"0\r\n\r\n"`, shared: do not modify. */
export const LAST_CHUNK: Buffer = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * The size line of a chunk of `length` bytes: hex digits and CRLF.
 *
 * @throws InvalidArgumentError unless `length` is a positive safe integer
 *   (a zero-length chunk would end the body).
 */
export function chunkSizeLine(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length <= 0) {
    throw new InvalidArgumentError(`chunk length must be a positive integer, got ${length}`);
  }
  return Buffer.from(`${length.toString(16)}\r\n`, 'latin1');
}

/**
 * One chunk carrying `data`, as the pieces to write in order: the size line,
 * `data` itself (not copied) and {@link CRLF}. Empty `data` gives `[]`: an
 * empty chunk would be read as the end of the body.
 */
export function encodeChunk(data: Uint8Array): Uint8Array[] {
  if (data.length === 0) return [];
  return [chunkSizeLine(data.length), data, CRLF];
}

/**
 * The end of a chunked body: the last chunk, the trailer fields if any, and
 * the final CRLF. Without trailers (or with none in them) this is
 * {@link LAST_CHUNK}.
 */
export function encodeLastChunk(trailers?: Headers | null): Buffer {
  if (trailers === undefined || trailers === null || trailers.size === 0) return LAST_CHUNK;
  return Buffer.from(`0\r\n${trailers.serialize()}\r\n`, 'latin1');
}

// ====================================================================== decoding

/** Receives the body data a decoder or parser extracts. */
export interface BodySink {
  /**
   * A piece of body data, in order. `chunk` is a view of the Buffer given to
   * `execute` (not a copy), never empty; it stays valid as long as that
   * Buffer is not modified.
   */
  onBody(chunk: Buffer): void;
}

/** Limits of a {@link ChunkedDecoder}. */
export interface ChunkedDecoderOptions {
  /**
   * Longest chunk extension accepted, in bytes: everything between the size
   * digits and the CRLF of a size line. Default 4096.
   */
  maxChunkExtensionLength?: number;
  /** Largest trailer section, in bytes (field lines with their CRLFs and the final CRLF). Default 16 KiB. */
  maxTrailerSize?: number;
  /** Most trailer fields. Default 100. */
  maxTrailerCount?: number;
  /** Largest body (sum of chunk sizes); `null` (default) for no limit. */
  maxBodySize?: number | null;
}

/** Default {@link ChunkedDecoderOptions.maxChunkExtensionLength}. */
export const DEFAULT_MAX_CHUNK_EXTENSION = 4096;
/** Default {@link ChunkedDecoderOptions.maxTrailerSize}. */
export const DEFAULT_MAX_TRAILER_SIZE = 16 * 1024;
const DEFAULT_MAX_TRAILER_COUNT = 100;
const MAX_SIZE_DIGITS = 16;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SEMI = 0x3b;

/** Hex digit values; 255 for other bytes. */
const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

const D_SIZE = 0;
const D_DATA = 1;
const D_DATA_CR = 2;
const D_DATA_LF = 3;
const D_TRAILER = 4;
const D_DONE = 5;
const D_ERROR = 6;

/** Checks a limit option: a positive safe integer, or the default when absent. @internal */
export function limitOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Checks an optional limit: a non-negative safe integer, or `null` (or
 * absent) for none, returned as `Infinity`. @internal
 */
export function optionalLimitOption(name: string, value: number | null | undefined): number {
  if (value === undefined || value === null) return Number.POSITIVE_INFINITY;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(
      `${name} must be a non-negative integer or null, got ${String(value)}`,
    );
  }
  return value;
}

/** Pieces a {@link PartialLine} keeps as views before it copies them into a buffer of its own. */
const MAX_VIEWS = 4;

/**
 * The start of a line cut by the end of a read, kept until its end arrives.
 * The first pieces are kept as views of the inputs, as ws's receiver keeps
 * its chunks (the usual cut is one or two pieces, not worth a copy); past
 * that, in one buffer of its own that doubles as it fills, so a peer sending
 * a long line a byte per read costs neither an object per byte nor
 * quadratic copying: memory stays within twice the line.
 *
 * @internal for the request parser and the chunked decoder.
 */
export class PartialLine {
  #views: Buffer[] = [];
  #owned: Buffer | null = null;
  /** Bytes kept. */
  length = 0;

  /** Keeps `piece` (a view of it, or a copy: do not modify it afterwards). */
  add(piece: Buffer): void {
    const n = piece.length;
    if (n === 0) return;
    let owned = this.#owned;
    if (owned === null) {
      if (this.#views.length < MAX_VIEWS) {
        this.#views.push(piece);
        this.length += n;
        return;
      }
      owned = Buffer.allocUnsafe(Math.max(1024, 2 * (this.length + n)));
      let at = 0;
      for (const view of this.#views) at += view.copy(owned, at);
      this.#views.length = 0;
      this.#owned = owned;
    } else if (this.length + n > owned.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * owned.length, this.length + n));
      owned.copy(bigger, 0, 0, this.length);
      owned = bigger;
      this.#owned = owned;
    }
    piece.copy(owned, this.length);
    this.length += n;
  }

  /** The kept bytes followed by `tail`, as one Buffer; nothing is kept afterwards. */
  take(tail: Buffer): Buffer {
    const total = this.length + tail.length;
    let line: Buffer;
    const owned = this.#owned;
    if (owned === null) {
      this.#views.push(tail);
      line = Buffer.concat(this.#views, total);
    } else if (total <= owned.length) {
      tail.copy(owned, this.length);
      line = owned.subarray(0, total);
    } else {
      line = Buffer.allocUnsafe(total);
      owned.copy(line, 0, 0, this.length);
      tail.copy(line, this.length);
    }
    this.clear();
    return line;
  }

  /** The kept bytes as one Buffer (still kept). */
  peek(): Buffer {
    return this.#owned !== null
      ? this.#owned.subarray(0, this.length)
      : Buffer.concat(this.#views, this.length);
  }

  /** Forgets the kept bytes. */
  clear(): void {
    this.#views.length = 0;
    this.#owned = null;
    this.length = 0;
  }
}

/**
 * Incremental decoder of one chunked body (`chunk* last-chunk trailer-section
 * CRLF`), from the first size line to the final CRLF.
 *
 * Drive it with {@link execute} as bytes arrive. It hands data to
 * `sink.onBody` and returns after each piece (so a caller can stop feeding
 * between pieces), when the body is complete ({@link done}, with
 * {@link trailers}), when the bytes are invalid ({@link error}), or when the
 * input is used up. Bytes after the final CRLF are never read.
 */
export class ChunkedDecoder {
  readonly #sink: BodySink;
  readonly #maxExtension: number;
  readonly #maxTrailerSize: number;
  readonly #maxTrailerCount: number;
  readonly #maxBodySize: number;

  #state = D_SIZE;
  #remaining = 0;
  #total = 0;
  // A line that has not ended yet, joined only once its LF arrives.
  readonly #pending = new PartialLine();
  #trailerFields: string[] | null = null;
  #trailerBytes = 0;
  #trailerCount = 0;
  #scan: FieldScan | null = null;

  #error: HTTPParseError | null = null;
  #trailers: Headers | null = null;

  /**
   * @param sink - receives the body data.
   * @param options - limits; see {@link ChunkedDecoderOptions}.
   * @throws InvalidArgumentError for a limit that is not a positive integer.
   */
  constructor(sink: BodySink, options: ChunkedDecoderOptions = {}) {
    this.#sink = sink;
    this.#maxExtension = limitOption(
      'maxChunkExtensionLength',
      options.maxChunkExtensionLength,
      DEFAULT_MAX_CHUNK_EXTENSION,
    );
    this.#maxTrailerSize = limitOption(
      'maxTrailerSize',
      options.maxTrailerSize,
      DEFAULT_MAX_TRAILER_SIZE,
    );
    this.#maxTrailerCount = limitOption(
      'maxTrailerCount',
      options.maxTrailerCount,
      DEFAULT_MAX_TRAILER_COUNT,
    );
    this.#maxBodySize = optionalLimitOption('maxBodySize', options.maxBodySize);
  }

  /** The failure, once the input was found invalid (the decoder then reads nothing more); else `null`. */
  get error(): HTTPParseError | null {
    return this.#error;
  }

  /** The trailer fields once {@link done}, or `null` if there were none. */
  get trailers(): Headers | null {
    return this.#trailers;
  }

  /** Whether the whole body, trailers and final CRLF included, has been read. */
  get done(): boolean {
    return this.#state === D_DONE;
  }

  /** The sum of the chunk sizes announced so far (the body length once {@link done}). */
  get bodyBytes(): number {
    return this.#total;
  }

  /** Makes the decoder ready for a new body (the limits stay). */
  reset(): void {
    this.#state = D_SIZE;
    this.#remaining = 0;
    this.#total = 0;
    this.#pending.clear();
    this.#trailerFields = null;
    this.#trailerBytes = 0;
    this.#trailerCount = 0;
    this.#error = null;
    this.#trailers = null;
  }

  /**
   * Decodes `data` from offset `start`; returns the offset where it stopped.
   * Everything before that offset has been consumed: data was passed to
   * `sink.onBody`, partial lines are kept inside the decoder (as views of
   * `data`: do not modify it afterwards). It stops:
   * - right after a call to `sink.onBody` (call again to go on);
   * - when the body is complete (`done` becomes true; the offset is just
   *   after the final CRLF);
   * - when the bytes are invalid (`error` is set and the offset is
   *   `data.length`: the rest is not read);
   * - at `data.length`.
   *
   * After `done` or `error`, it returns `start` and reads nothing. Not
   * re-entrant: `sink.onBody` must not call `execute`.
   */
  execute(data: Buffer, start: number): number {
    const len = data.length;
    let pos = start;
    while (pos < len) {
      switch (this.#state) {
        case D_DATA: {
          const end = Math.min(len, pos + this.#remaining);
          this.#remaining -= end - pos;
          if (this.#remaining === 0) this.#state = D_DATA_CR;
          this.#sink.onBody(data.subarray(pos, end));
          return end;
        }
        case D_DATA_CR:
          if (data[pos] !== CR) return this.#fail('MISSING_CHUNK_CRLF', len);
          pos++;
          this.#state = D_DATA_LF;
          break;
        case D_DATA_LF:
          if (data[pos] !== LF) return this.#fail('MISSING_CHUNK_CRLF', len);
          pos++;
          this.#state = D_SIZE;
          break;
        case D_SIZE:
          pos = this.#sizeLineAt(data, pos);
          break;
        case D_TRAILER:
          pos = this.#trailerLines(data, pos);
          break;
        default:
          return pos;
      }
    }
    return pos;
  }

  /** Joins the pending start of a line with `data[pos, lf]`, its end. */
  #join(data: Buffer, pos: number, lf: number): Buffer {
    return this.#pending.take(data.subarray(pos, lf + 1));
  }

  /** Keeps `data[pos…]`, the start of a line, for when its end arrives. */
  #keep(data: Buffer, pos: number): void {
    this.#pending.add(data.subarray(pos));
  }

  /** Reads the size line starting at `pos`, if its LF is there; returns the new offset. */
  #sizeLineAt(data: Buffer, pos: number): number {
    const lf = data.indexOf(LF, pos);
    if (lf === -1) {
      this.#keep(data, pos);
      // Content may be up to 16 digits plus the extension, then a CR.
      if (this.#pending.length > MAX_SIZE_DIGITS + this.#maxExtension + 1) {
        const line = this.#pending.peek();
        return this.#fail(
          this.#sizeLine(line, 0, line.length) ?? 'CHUNK_EXTENSION_TOO_LONG',
          data.length,
        );
      }
      return data.length;
    }
    let buf = data;
    let ls = pos;
    let le = lf;
    if (this.#pending.length !== 0) {
      buf = this.#join(data, pos, lf);
      ls = 0;
      le = buf.length - 1;
    }
    if (le === ls || buf[le - 1] !== CR) return this.#fail('BARE_LF', data.length);
    const kind = this.#sizeLine(buf, ls, le - 1);
    return kind === null ? lf + 1 : this.#fail(kind, data.length);
  }

  /** Reads trailer lines from `pos`, through the final CRLF if it is there; returns the new offset. */
  #trailerLines(data: Buffer, pos: number): number {
    let buf = data;
    let ls = pos;
    let after = 0;
    if (this.#pending.length !== 0) {
      // Scan a line begun in an earlier input once, when its LF is here.
      const lf = data.indexOf(LF, pos);
      if (lf === -1) {
        this.#keep(data, pos);
        if (this.#trailerBytes + this.#pending.length > this.#maxTrailerSize) {
          return this.#fail('TRAILERS_TOO_LARGE', data.length);
        }
        return data.length;
      }
      buf = this.#join(data, pos, lf);
      ls = 0;
      after = lf + 1;
    }
    if (this.#scan === null) this.#scan = fieldScan();
    const scan = this.#scan;
    const rec = fieldRecords(this.#maxTrailerCount);
    scan.records = 0;
    const status = scanFields(
      buf,
      ls,
      this.#maxTrailerSize - this.#trailerBytes,
      this.#maxTrailerCount - this.#trailerCount,
      false,
      rec,
      scan,
    );
    if (scan.records > 0) {
      if (this.#trailerFields === null) this.#trailerFields = [];
      appendFields(buf, rec, 0, scan.records, this.#trailerFields);
      this.#trailerCount += scan.records;
    }
    if (status === SCAN_ERROR) {
      const e = scan.error!;
      const kind =
        e === 'HEADERS_TOO_LARGE'
          ? 'TRAILERS_TOO_LARGE'
          : e === 'TOO_MANY_HEADERS'
            ? 'TOO_MANY_TRAILERS'
            : e;
      return this.#fail(kind, data.length);
    }
    this.#trailerBytes += scan.next - ls;
    if (status === SCAN_PARTIAL) {
      this.#keep(data, scan.next);
      if (this.#trailerBytes + this.#pending.length > this.#maxTrailerSize) {
        return this.#fail('TRAILERS_TOO_LARGE', data.length);
      }
      return data.length;
    }
    if (status === SCAN_EMPTY) {
      this.#state = D_DONE;
      if (this.#trailerFields !== null) this.#trailers = headersFromFields(this.#trailerFields);
    }
    return buf === data ? scan.next : after;
  }

  /** Parses a size line's content `buf[ls, ce)`; on success the state moves to the data or trailers. */
  #sizeLine(buf: Buffer, ls: number, ce: number): ParseErrorKind | null {
    let i = ls;
    let size = 0;
    while (i < ce) {
      const h = HEX[buf[i]!]!;
      if (h === 255) break;
      size = size * 16 + h;
      i++;
    }
    if (i === ls) return 'INVALID_CHUNK_SIZE';
    if (i - ls > MAX_SIZE_DIGITS || size > Number.MAX_SAFE_INTEGER) return 'CHUNK_SIZE_TOO_LARGE';
    if (i < ce) {
      // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ignored
      // but bounded, and without control bytes.
      if (ce - i > this.#maxExtension) return 'CHUNK_EXTENSION_TOO_LONG';
      let j = i;
      while (j < ce && (buf[j] === SP || buf[j] === HTAB)) j++;
      if (j === ce || buf[j] !== SEMI) return 'INVALID_CHUNK_SIZE';
      let ok = 1;
      for (let k = j; k < ce; k++) ok &= FIELD_VALUE[buf[k]!]!;
      if (ok === 0) {
        const cr = buf.indexOf(CR, j);
        return cr !== -1 && cr < ce ? 'BARE_CR' : 'INVALID_CHUNK_EXTENSION';
      }
    }
    if (size === 0) {
      this.#state = D_TRAILER;
      return null;
    }
    if (this.#total + size > this.#maxBodySize) return 'BODY_TOO_LARGE';
    this.#total += size;
    this.#remaining = size;
    this.#state = D_DATA;
    return null;
  }

  /** Records the failure; returns `at` (the offset `execute` reports). */
  #fail(kind: ParseErrorKind, at: number): number {
    this.#state = D_ERROR;
    this.#pending.clear();
    this.#error = new HTTPParseError(kind);
    return at;
  }
}
