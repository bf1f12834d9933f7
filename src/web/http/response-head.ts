/**
 * Encoding a response: the fields of a response the channel owns, found in
 * one pass ({@link findOwnedFields}); the head laid out as shared,
 * pre-encoded pieces ({@link HeadPlan}: the status line with `Date` and
 * `Server` made once per code and second, a `Content-Length` line made
 * once per length, the resource's fields, the end of the head) and
 * encoded straight into a {@link ResponseCursor} ({@link encodeHead});
 * body pieces likewise ({@link putBody}). The decisions (framing, keep-alive)
 * are the request's; this module only lays bytes out.
 *
 * @module
 */

import { InvalidHeaderError } from './errors.js';
import type { Headers } from './headers.js';
import { type FastBuffer, putDecimal } from './output.js';
import { statusHasNoBody, statusLine, statusLineText } from './status.js';

/**
 * Body pieces up to this size are copied into the channel's output with
 * their head or framing (one piece of output per response); bigger ones are
 * written as they are, never copied.
 */
export const INLINE_BODY = 4096;

/** How a response body is framed on the wire ({@link HeadPlan.framing}). */
export const F_NONE = 0; // no body (HEAD, 1xx, 204, 304)
export const F_LENGTH = 1; // Content-Length
export const F_CHUNKED = 2; // Transfer-Encoding: chunked
export const F_CLOSE = 3; // until the connection closes (HTTP/1.0, length unknown)

const DIGITS = /^\d+$/;
const CLOSE_OPTION = /(?:^|,)\s*close\s*(?:,|$)/i;

/** The end of a head: the empty line, with the connection's fate first when it must be said. */
export const END: Buffer = Buffer.from('\r\n', 'latin1');
export const CLOSE_END: Buffer = Buffer.from('Connection: close\r\n\r\n', 'latin1');
export const KEEP_ALIVE_END: Buffer = Buffer.from('Connection: keep-alive\r\n\r\n', 'latin1');

const CONTENT_LENGTH = Buffer.from('Content-Length: ', 'latin1');
const CHUNKED = Buffer.from('Transfer-Encoding: chunked\r\n', 'latin1');

// ====================================================================== the resource's fields

/**
 * The length a response's `Content-Length` value declares, or -1 when it is
 * not one: decimal digits only (no sign, space or list), a safe integer.
 */
export function parseResponseLength(value: string): number {
  if (!DIGITS.test(value)) return -1;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : -1;
}

/**
 * The declared length of `value`, a `Content-Length` the resource gives.
 * @throws InvalidHeaderError when it is not a decimal integer from 0 to
 *   2^53 - 1 (`'abc'`, `' 5'`, `'-1'`, `'5, 5'`…).
 */
export function checkResponseLength(value: string): number {
  const n = parseResponseLength(value);
  if (n === -1) {
    throw new InvalidHeaderError(
      `invalid Content-Length ${JSON.stringify(value)}: a response's length is a decimal integer from 0 to 2^53 - 1`,
    );
  }
  return n;
}

/** What {@link findOwnedFields} found. */
export interface OwnedFields {
  /** The first `Content-Length` value, or `null`. */
  length: string | null;
  /** How many `Content-Length` fields there are. */
  lengths: number;
  /** Whether a later `Content-Length` value differs from the first. */
  lengthsDiffer: boolean;
  /** Whether there is a `Transfer-Encoding`. */
  te: boolean;
  /** The `Connection` values joined with `", "`, or `null`. */
  connection: string | null;
  /** Whether there is a `Date`. */
  date: boolean;
  /** Whether there is a `Server`. */
  server: boolean;
}

/** The one result of {@link findOwnedFields} (filled and read within one head, which never re-enters). */
const FOUND: OwnedFields = {
  length: null,
  lengths: 0,
  lengthsDiffer: false,
  te: false,
  connection: null,
  date: false,
  server: false,
};

/** Whether `name` is `lower` in any case (`lower` is lower-case, same length). */
function named(name: string, lower: string): boolean {
  return name === lower || name.toLowerCase() === lower;
}

/** `Headers.forEach` callback noting the fields in {@link FOUND} (only names of their lengths are compared). */
function noteField(value: string, name: string): void {
  const found = FOUND;
  switch (name.length) {
    case 4:
      if (named(name, 'date')) found.date = true;
      break;
    case 6:
      if (named(name, 'server')) found.server = true;
      break;
    case 10:
      if (named(name, 'connection')) {
        found.connection = found.connection === null ? value : `${found.connection}, ${value}`;
      }
      break;
    case 14:
      if (named(name, 'content-length')) {
        if (found.length === null) found.length = value;
        else if (value !== found.length) found.lengthsDiffer = true;
        found.lengths++;
      }
      break;
    case 17:
      if (named(name, 'transfer-encoding')) found.te = true;
      break;
  }
}

/**
 * One pass over a response's fields for those the channel owns
 * (`Content-Length`, `Transfer-Encoding`, `Connection`) or must not add
 * twice (`Date`, `Server`). The result is shared: read it before the next call.
 */
export function findOwnedFields(headers: Headers): OwnedFields {
  const found = FOUND;
  found.length = null;
  found.lengths = 0;
  found.lengthsDiffer = false;
  found.te = false;
  found.connection = null;
  found.date = false;
  found.server = false;
  headers.forEach(noteField);
  return found;
}

// ====================================================================== the head

/**
 * A response head, as the pieces {@link encodeHead} writes in order. One
 * scratch plan ({@link HEAD_PLAN}) serves every head: fill it and encode it
 * within one call.
 */
export interface HeadPlan {
  /** The status line and the `Date` and `Server` fields in one piece, or `null`. */
  start: Buffer | null;
  /** The status line alone (when `start` is `null`), or `null`. */
  status: Buffer | null;
  /** Latin1 text after those: a status line with its own phrase, a `Date` or `Server` line. */
  lines: string;
  /** The `Date` and `Server` fields (when `start` is `null`), or `null`. */
  dateServer: Buffer | null;
  /** The resource's fields, or `null`. */
  fields: Headers | null;
  /** A `Content-Length` to add, or -1. */
  length: number;
  /** Whether to add `Transfer-Encoding: chunked`. */
  chunked: boolean;
  /** {@link END}, {@link CLOSE_END} or {@link KEEP_ALIVE_END}. */
  ending: Buffer;
  /** Decided by {@link planHead}: one of the `F_*` framings. */
  framing: number;
  /** Decided by {@link planHead}: the `Content-Length` sent, or -1. */
  declared: number;
  /** Decided by {@link planHead}: whether the connection may carry another request. */
  persistent: boolean;
}

/** The scratch {@link HeadPlan}. */
export const HEAD_PLAN: HeadPlan = {
  start: null,
  status: null,
  lines: '',
  dateServer: null,
  fields: null,
  length: -1,
  chunked: false,
  ending: END,
  framing: F_NONE,
  declared: -1,
  persistent: true,
};

/** Where the shared `Date`/`Server` pieces come from (the channel). */
export interface DateSource {
  /** The status line of `code` (registered phrase), `Date` and `Server`, as shared bytes. */
  headStart(code: number): Buffer;
  /** The `Date` and `Server` fields as shared bytes. */
  dateServerBytes(): Buffer;
  /** The `Date` value now. */
  dateValue(): string;
}

/**
 * Decides a response's head and framing, into `plan`: the resource's
 * `Content-Length` is kept on a status that may have one (removed for 1xx
 * and 204; repeated identical values are sent once), its `Transfer-Encoding` and `Connection` are
 * replaced by the channel's own (`Connection: close` from it is honoured),
 * `Date` and `Server` are added unless it set them. The body is framed by
 * `total` (the whole body's length when known, else -1) unless the
 * resource declared a length; else chunked on HTTP/1.1, else until the
 * connection closes. `persistent`: whether the connection may be kept, as
 * far as the request and the channel know.
 * @throws InvalidHeaderError, before anything is changed, for a malformed
 *   `Content-Length` (see {@link checkResponseLength}) or several differing
 *   ones, whatever the status: a resource that set it through
 *   `responseHeaders` rather than `setHeader` (which checks at once).
 */
export function planHead(
  plan: HeadPlan,
  dates: DateSource,
  code: number,
  message: string | undefined,
  headers: Headers | null,
  isHead: boolean,
  http11: boolean,
  total: number,
  persistent: boolean,
): void {
  let declared = -1;
  let userLength = false;
  let dateServer = true;
  let hasDate = false;
  let hasServer = false;
  plan.fields = null;
  if (headers !== null && headers.size > 0) {
    const found = findOwnedFields(headers);
    const cl = found.length;
    if (cl !== null) {
      if (found.lengthsDiffer) {
        throw new InvalidHeaderError(
          `differing Content-Length values in a response: ${JSON.stringify(headers.getAll('content-length'))}`,
        );
      }
      const n = checkResponseLength(cl);
      if (code === 204 || code < 200) {
        headers.delete('content-length'); // RFC 9110 §8.6: never on 1xx or 204
      } else {
        if (found.lengths > 1) headers.set('Content-Length', cl);
        declared = n;
        userLength = true;
      }
    }
    if (found.te) headers.delete('transfer-encoding');
    const connection = found.connection;
    if (connection !== null) {
      if (CLOSE_OPTION.test(connection)) persistent = false;
      headers.delete('connection');
    }
    hasDate = found.date;
    hasServer = found.server;
    dateServer = !hasDate && !hasServer;
    plan.fields = headers;
  }
  // The status line and Date/Server as shared bytes when they can be: one
  // piece for the usual head, else in parts.
  const start = message === undefined && dateServer ? dates.headStart(code) : null;
  plan.start = start;
  plan.status = start === null && message === undefined ? statusLine(code) : null;
  let lines = start === null && message !== undefined ? statusLineText(code, message, '1.1') : '';
  plan.dateServer = start === null && dateServer ? dates.dateServerBytes() : null;
  if (!dateServer) {
    if (!hasDate) lines += `Date: ${dates.dateValue()}\r\n`;
    if (!hasServer) lines += 'Server: torsion\r\n';
  }
  plan.lines = lines;
  // What follows the resource's fields: framing and connection.
  let length = -1;
  let framing: number;
  if (isHead || statusHasNoBody(code)) {
    framing = F_NONE;
    if (isHead && !userLength && total > 0) length = total;
  } else if (total >= 0 && !userLength) {
    framing = F_LENGTH;
    declared = total;
    length = total;
  } else if (declared >= 0) {
    framing = F_LENGTH;
  } else if (http11) {
    framing = F_CHUNKED;
  } else {
    framing = F_CLOSE;
    persistent = false;
  }
  plan.length = length;
  plan.chunked = framing === F_CHUNKED;
  plan.ending = !persistent ? CLOSE_END : http11 ? END : KEEP_ALIVE_END;
  plan.framing = framing;
  plan.declared = declared;
  plan.persistent = persistent;
}

/** `Content-Length` lines are made once for lengths below this. */
const LENGTH_LINES = 1024;

/** A `Content-Length` field line, alone and with the empty line ending a head. */
interface LengthLine {
  readonly line: Buffer;
  readonly ended: Buffer;
}
const lengthLines: (LengthLine | undefined)[] = [];

/** `"Content-Length: <n>\r\n"` (n below {@link LENGTH_LINES}), shared. */
function lengthLine(n: number): LengthLine {
  let line = lengthLines[n];
  if (line === undefined) {
    const ended = Buffer.from(`Content-Length: ${n}\r\n\r\n`, 'latin1');
    line = { line: ended.subarray(0, ended.length - 2), ended };
    lengthLines[n] = line;
  }
  return line;
}

/** The most bytes {@link encodeHead} writes for `plan`. */
export function headLength(plan: HeadPlan): number {
  return (
    (plan.start === null ? 0 : plan.start.length) +
    (plan.status === null ? 0 : plan.status.length) +
    plan.lines.length +
    (plan.dateServer === null ? 0 : plan.dateServer.length) +
    (plan.fields === null ? 0 : plan.fields.encodedLength()) +
    (plan.length >= 0 ? CONTENT_LENGTH.length + 18 : 0) +
    (plan.chunked ? CHUNKED.length : 0) +
    plan.ending.length
  );
}

/**
 * Encodes `plan` at `buf[pos]` (room for {@link headLength} bytes) and
 * returns the new position. Text is written as latin1 (every character of
 * a field is below U+0100).
 */
export function encodeHead(buf: FastBuffer, pos: number, plan: HeadPlan): number {
  const { start, status, lines, dateServer, fields, length, ending } = plan;
  if (start !== null) {
    buf.set(start, pos);
    pos += start.length;
  } else if (status !== null) {
    buf.set(status, pos);
    pos += status.length;
  }
  if (lines !== '') pos += buf.latin1Write(lines, pos, lines.length);
  if (dateServer !== null) {
    buf.set(dateServer, pos);
    pos += dateServer.length;
  }
  if (fields !== null) pos = fields.encodeInto(buf, pos);
  if (length >= 0) {
    if (length < LENGTH_LINES) {
      // The cached line comes with the empty line that usually follows it.
      const line = lengthLine(length);
      if (ending === END) {
        buf.set(line.ended, pos);
        return pos + line.ended.length;
      }
      buf.set(line.line, pos);
      pos += line.line.length;
    } else {
      buf.set(CONTENT_LENGTH, pos);
      pos = putDecimal(buf, pos + CONTENT_LENGTH.length, length);
      buf[pos++] = 0x0d;
      buf[pos++] = 0x0a;
    }
  } else if (plan.chunked) {
    buf.set(CHUNKED, pos);
    pos += CHUNKED.length;
  }
  if (ending === END) {
    buf[pos++] = 0x0d;
    buf[pos++] = 0x0a;
    return pos;
  }
  buf.set(ending, pos);
  return pos + ending.length;
}

// ====================================================================== body pieces

/** The most bytes {@link putChunk} writes for `n` bytes of data. */
export function chunkRoom(n: number): number {
  return n + 18; // up to 14 hex digits, two CRLFs
}

/**
 * Writes `data` (`n` bytes: a string is written as UTF-8) at `buf[pos]`,
 * as a chunk when `chunked` (size line, data, CRLF), and returns the new
 * position; the caller has made room ({@link chunkRoom}).
 */
export function putBody(
  buf: FastBuffer,
  pos: number,
  data: Uint8Array | string,
  n: number,
  chunked: boolean,
): number {
  if (chunked) {
    const size = n.toString(16);
    pos += buf.latin1Write(size, pos, size.length);
    buf[pos++] = 0x0d;
    buf[pos++] = 0x0a;
  }
  if (typeof data === 'string') pos += buf.utf8Write(data, pos, n);
  else {
    buf.set(data, pos);
    pos += n;
  }
  if (chunked) {
    buf[pos++] = 0x0d;
    buf[pos++] = 0x0a;
  }
  return pos;
}
