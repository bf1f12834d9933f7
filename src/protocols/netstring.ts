/**
 * Netstrings (<http://cr.yp.to/proto/netstrings.txt>), as Twisted's
 * `NetstringReceiver`: `<length>:<data>,`, with the length in decimal ASCII.
 *
 * @module
 */

import { TorsionError } from '../reactor/errors.js';
import { msg } from '../reactor/log.js';
import { PauseableProtocol, ReadBuffer, toBuffer } from './receiver.js';

/** Why a netstring was refused (the `reason` of a {@link NetstringParseError}). */
export type NetstringParseReason = 'missing-length' | 'too-long' | 'missing-comma';

const MESSAGES: Record<NetstringParseReason, string> = {
  'missing-length': 'The received netstring does not start with a length specification.',
  'too-long': 'The received netstring is longer than the maximum specified by MAX_LENGTH',
  'missing-comma': 'The received netstring is not terminated by a comma.',
};

/** The peer sent bytes that are not a valid netstring. */
export class NetstringParseError extends TorsionError {
  /** What was wrong. */
  readonly reason: NetstringParseReason;

  constructor(reason: NetstringParseReason, detail = '') {
    super(MESSAGES[reason] + detail, 'TORSION_ERR_NETSTRING_PARSE');
    this.reason = reason;
  }
}

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;

/** Parsing the `<length>:` part. */
const LENGTH = 0;
/** Parsing the `<data>,` part. */
const PAYLOAD = 1;

/**
 * Checks the length digits `buf[from:to]` (the colon excluded) of a length
 * specification, complete or not: decimal digits without a leading zero (`0`
 * alone is fine), at most `maxDigits` of them. Returns the reason they are
 * invalid, or `null`.
 */
function checkDigits(
  buf: Buffer,
  from: number,
  to: number,
  maxDigits: number,
): NetstringParseReason | null {
  if (to === from) return 'missing-length';
  if (buf[from] === ZERO && to - from > 1) return 'missing-length';
  // Bounded: callers never pass more than maxDigits + 1 bytes.
  for (let i = from; i < to; i++) {
    const c = buf[i];
    if (c < ZERO || c > NINE) return 'missing-length';
  }
  return to - from > maxDigits ? 'too-long' : null;
}

/** The value of the checked digits `buf[from:to]`. */
function digitsValue(buf: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + (buf[i] - ZERO);
  return n;
}

/**
 * A protocol that sends and receives netstrings (Twisted's `NetstringReceiver`).
 *
 * Each netstring's data goes to `stringReceived` as a `subarray` view of the
 * received bytes (copied once if it spans chunks). Invalid input closes the
 * connection: a length that is not decimal digits or has a leading zero
 * (`007:`), a missing colon, a length over {@link NetstringReceiver.MAX_LENGTH}
 * (refused as soon as its digits show it, before the data is buffered), or
 * data not followed by a comma. Then `brokenPeer` and `parseError` are set,
 * `handleParseError(error)` runs (it logs the error and calls
 * `loseConnection()` by default) and everything received afterwards is
 * ignored. Strings already parsed before the error were delivered.
 *
 * As a push producer (see {@link PauseableProtocol}), `pauseProducing()` stops
 * delivery after the current string, keeping the rest buffered. Data handed
 * to `dataReceived` from inside `stringReceived` is queued and handled by the
 * running loop. Once the transport is disconnecting no more strings are
 * delivered.
 */
export abstract class NetstringReceiver extends PauseableProtocol {
  /** The longest netstring data accepted, in bytes (default 99999). */
  MAX_LENGTH = 99999;

  /** `true` once the peer sent an invalid netstring. */
  brokenPeer = false;

  /** The error that made the peer broken, if any. */
  parseError: NetstringParseError | null = null;

  readonly #rb = new ReadBuffer();
  #busy = false;
  #state = LENGTH;
  /** The data length of the netstring being read (valid in PAYLOAD). */
  #expected = 0;

  /** A netstring's data arrived. The buffer is a view the protocol may keep. */
  abstract stringReceived(data: Buffer): void;

  /**
   * Sends `data` (strings as UTF-8) as a netstring, in one write.
   * @throws TransportClosedError once the transport refuses writes.
   */
  sendString(data: Uint8Array | string): void {
    const payload = toBuffer(data);
    const head = `${payload.length}:`;
    const out = Buffer.allocUnsafe(head.length + payload.length + 1);
    out.write(head, 0, 'latin1');
    payload.copy(out, head.length);
    out[out.length - 1] = COMMA;
    this.transport.write(out);
  }

  /**
   * The peer sent an invalid netstring. Logs `error` (as information: it is
   * the peer's fault) and closes the connection. Override to answer
   * differently; nothing more is parsed either way.
   */
  protected handleParseError(error: NetstringParseError): void {
    msg(`${this.constructor.name}: closing the connection: ${error.message}`);
    this.transport.loseConnection();
  }

  /** Parses received bytes into netstrings; see the class documentation. */
  override dataReceived(data: Buffer): void {
    if (this.brokenPeer) return;
    const rb = this.#rb;
    if (this.#busy) {
      rb.push(data);
      return;
    }
    if (data.length > 0) this.#append(data);
    this.#busy = true;
    try {
      this.#deliver();
    } finally {
      this.#busy = false;
    }
  }

  /** Buffers `data`, copying only what completes a part begun in the unread tail. */
  #append(data: Buffer): void {
    const rb = this.#rb;
    const unread = rb.buf.length - rb.start;
    if (unread === 0 || rb.next !== null || this.paused) {
      rb.push(data);
      return;
    }
    if (this.#state === PAYLOAD) {
      const need = this.#expected + 1 - unread;
      if (need <= 0) rb.push(data);
      else if (need <= data.length) rb.bridge(data, need);
      else rb.push(data, this.#expected + 1);
      return;
    }
    // The tail holds length digits: bridge through the colon if it is near.
    const colon = data.indexOf(COLON);
    if (colon !== -1 && unread + colon <= this.#maxDigits() + 1) rb.bridge(data, colon + 1);
    else rb.push(data);
  }

  #deliver(): void {
    const rb = this.#rb;
    const maxDigits = this.#maxDigits();
    while (!this.paused && !this.closing && rb.ready()) {
      const buf = rb.buf;
      const start = rb.start;
      if (this.#state === LENGTH) {
        // Only the first maxDigits + 1 bytes can hold the colon.
        const limit = Math.min(buf.length, start + maxDigits + 1);
        let colon = buf.indexOf(COLON, start);
        if (colon >= limit) colon = -1;
        if (colon === -1) {
          const bad = checkDigits(buf, start, limit, maxDigits);
          if (bad !== null) {
            this.#fail(new NetstringParseError(bad));
            return;
          }
          if (rb.next !== null) {
            rb.merge();
            continue;
          }
          return;
        }
        const bad = checkDigits(buf, start, colon, maxDigits);
        if (bad !== null) {
          this.#fail(new NetstringParseError(bad));
          return;
        }
        const length = digitsValue(buf, start, colon);
        if (length > this.MAX_LENGTH) {
          this.#fail(new NetstringParseError('too-long', ` (${this.MAX_LENGTH})`));
          return;
        }
        this.#expected = length;
        this.#state = PAYLOAD;
        rb.start = colon + 1;
        continue;
      }
      const end = start + this.#expected;
      if (end >= buf.length) {
        if (rb.next === null) {
          rb.reserve(this.#expected + 1);
          return;
        }
        rb.merge(this.#expected + 1);
        continue;
      }
      if (buf[end] !== COMMA) {
        this.#fail(new NetstringParseError('missing-comma'));
        return;
      }
      rb.start = end + 1;
      this.#state = LENGTH;
      this.stringReceived(rb.view(start, end));
    }
  }

  /** How many digits a length up to MAX_LENGTH can have. */
  #maxDigits(): number {
    return String(Math.max(0, Math.floor(this.MAX_LENGTH))).length;
  }

  #fail(error: NetstringParseError): void {
    this.brokenPeer = true;
    this.parseError = error;
    this.#rb.clear();
    this.handleParseError(error);
  }
}
