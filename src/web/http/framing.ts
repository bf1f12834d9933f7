/**
 * The header fields that frame a request message (RFC 9112 §6, RFC 9110
 * §7.2, §7.6.1, §10.1.1), read by the request parser as it scans a head:
 * `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`, `Upgrade`,
 * `Expect`. {@link FramingFields} keeps what one head said and checks the
 * rules that need all of it; the parser turns that into the
 * {@link RequestHead}'s framing.
 *
 * @module
 */

import type { ParseErrorKind } from './errors.js';
import { eqLower, lit, validHost } from './request-line.js';

const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;

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
 * What the framing fields of one head said (reset between heads). Fields
 * are public for the parser, which reads them when the head is complete.
 */
export class FramingFields {
  /** `Host` fields seen. */
  hostCount = 0;
  /** The `Content-Length`, or -1 without one. */
  contentLength = -1;
  /** A `Transfer-Encoding` was seen. */
  teSeen = false;
  /** `chunked` was seen (it must be the last coding). */
  #teChunked = false;
  #teLastChunked = false;
  #teOther = false;
  /** `Connection` options. */
  connClose = false;
  connKeepAlive = false;
  connUpgrade = false;
  /** A non-empty `Upgrade` field. */
  upgradeHeader = false;
  /** `Expect` members: `100-continue`, and anything else. */
  expectContinue = false;
  expectOther = false;

  /** Forgets the head. */
  reset(): void {
    this.hostCount = 0;
    this.contentLength = -1;
    this.teSeen = false;
    this.#teChunked = false;
    this.#teLastChunked = false;
    this.#teOther = false;
    this.connClose = false;
    this.connKeepAlive = false;
    this.connUpgrade = false;
    this.upgradeHeader = false;
    this.expectContinue = false;
    this.expectOther = false;
  }

  /**
   * Notes the framing fields among field records `[from, to)` (4 offsets
   * each into `buf`: name start and end, value start and end); returns the
   * first rule broken, or `null`.
   */
  note(buf: Buffer, rec: Int32Array, from: number, to: number): ParseErrorKind | null {
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
            if (++this.hostCount > 1) kind = 'DUPLICATE_HOST';
            else if (!validHost(buf, vs, ve, false)) kind = 'INVALID_HOST';
          }
          break;
        case 6:
          if (eqLower(buf, ns, ne, L_EXPECT)) this.#listField(buf, vs, ve, true);
          break;
        case 7:
          if (eqLower(buf, ns, ne, L_UPGRADE) && ve > vs) this.upgradeHeader = true;
          break;
        case 10:
          if (eqLower(buf, ns, ne, L_CONNECTION)) this.#listField(buf, vs, ve, false);
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

  /**
   * Walks a comma list (`Connection` options or `Expect` members, `#1`
   * rule: empty members and OWS skipped) and records each member; names
   * compare case-insensitively.
   */
  #listField(buf: Buffer, vs: number, ve: number, expect: boolean): void {
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
      if (expect) this.#expectMember(buf, i, k);
      else this.#connectionOption(buf, i, k);
      i = j;
    }
  }

  /** One `Connection` option. */
  #connectionOption(buf: Buffer, i: number, k: number): void {
    if (eqLower(buf, i, k, L_CLOSE)) this.connClose = true;
    else if (eqLower(buf, i, k, L_KEEP_ALIVE)) this.connKeepAlive = true;
    else if (eqLower(buf, i, k, L_UPGRADE)) this.connUpgrade = true;
  }

  /** One `Expect` member: `100-continue` in any case, or something else. */
  #expectMember(buf: Buffer, i: number, k: number): void {
    if (eqLower(buf, i, k, L_100_CONTINUE)) this.expectContinue = true;
    else this.expectOther = true;
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
      if (this.contentLength === -1) this.contentLength = n;
      else if (this.contentLength !== n) return 'CONFLICTING_CONTENT_LENGTH';
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
    this.teSeen = true;
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
   * The framing rules that need the whole head (HTTP/1.`minor`, a CONNECT
   * or not, the body size limit); `null` when the message is acceptable.
   */
  check(minor: number, connect: boolean, maxBodySize: number): ParseErrorKind | null {
    if (minor === 1 && this.hostCount === 0) return 'MISSING_HOST';
    if (connect && (this.teSeen || this.contentLength > 0)) return 'CONNECT_WITH_BODY';
    if (this.teSeen) {
      if (minor === 0) return 'TRANSFER_ENCODING_HTTP10';
      if (this.contentLength !== -1) return 'CONTENT_LENGTH_WITH_TRANSFER_ENCODING';
      if (!this.#teLastChunked) return 'CHUNKED_NOT_FINAL';
      if (this.#teOther) return 'UNSUPPORTED_TRANSFER_CODING';
    }
    if (this.contentLength > maxBodySize) return 'BODY_TOO_LARGE';
    return null;
  }
}
