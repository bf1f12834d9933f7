/**
 * Length-prefixed string protocols, as Twisted's `IntNStringReceiver`
 * family: each string travels as a big-endian unsigned length (1, 2 or 4
 * bytes) followed by that many bytes.
 *
 * @module
 */

import { TorsionError } from '../reactor/errors.js';
import { PauseableProtocol, ReadBuffer, toBuffer } from './receiver.js';

/** `sendString` was given more bytes than the length prefix can express. */
export class StringTooLongError extends TorsionError {
  /** The length that was asked for. */
  readonly length: number;
  /** The largest length the prefix can carry. */
  readonly maximum: number;

  constructor(length: number, maximum: number) {
    super(
      `Tried to send ${length} bytes whereas maximum is ${maximum}`,
      'TORSION_ERR_STRING_TOO_LONG',
    );
    this.length = length;
    this.maximum = maximum;
  }
}

/**
 * The base of the length-prefixed receivers; use {@link Int8StringReceiver},
 * {@link Int16StringReceiver} or {@link Int32StringReceiver}.
 *
 * Each complete string goes to `stringReceived` as a `subarray` view of the
 * received data (a string split across chunks is copied once, into a buffer
 * of its exact size). A prefix announcing more than
 * {@link IntNStringReceiver.MAX_LENGTH} bytes calls `lengthLimitExceeded`
 * (which closes the connection by default) before any of the string is
 * buffered; parsing stops there.
 *
 * As a push producer (see {@link PauseableProtocol}), `pauseProducing()` stops
 * delivery after the current string, keeping the rest buffered. Data handed
 * to `dataReceived` from inside `stringReceived` is queued behind the buffer
 * and handled by the running loop. Once the transport is disconnecting no
 * more strings are delivered.
 */
export abstract class IntNStringReceiver extends PauseableProtocol {
  /** The size of the length prefix in bytes (1, 2 or 4). */
  abstract readonly prefixLength: 1 | 2 | 4;

  /** The longest string accepted, in bytes (default 99999). */
  MAX_LENGTH = 99999;

  readonly #rb = new ReadBuffer();
  #busy = false;

  /** A complete string arrived (without its prefix). The buffer is a view the protocol may keep. */
  abstract stringReceived(data: Buffer): void;

  /**
   * A prefix announced `length` bytes, more than `MAX_LENGTH`. The announced
   * string is not read; nothing more is delivered from the current data.
   * Closes the connection (`loseConnection()`) by default.
   */
  lengthLimitExceeded(_length: number): void {
    this.transport.loseConnection();
  }

  /**
   * Sends `data` (strings as UTF-8) with its length prefix, as one write.
   * @throws StringTooLongError if it is too long for the prefix
   *   (2^(8·prefixLength) bytes or more); nothing is written then.
   * @throws TransportClosedError once the transport refuses writes.
   */
  sendString(data: Uint8Array | string): void {
    const payload = toBuffer(data);
    const P = this.prefixLength;
    const maximum = 2 ** (8 * P);
    if (payload.length >= maximum) throw new StringTooLongError(payload.length, maximum);
    const out = Buffer.allocUnsafe(P + payload.length);
    out.writeUIntBE(payload.length, 0, P);
    payload.copy(out, P);
    this.transport.write(out);
  }

  /** Splits received bytes into strings for `stringReceived`; see the class documentation. */
  override dataReceived(data: Buffer): void {
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

  /**
   * Buffers `data`. When a string started in the unread tail, only the part
   * of `data` completing it is copied (joined to the tail) and the rest is
   * queued as it is.
   */
  #append(data: Buffer): void {
    const rb = this.#rb;
    const P = this.prefixLength;
    const unread = rb.buf.length - rb.start;
    if (unread === 0 || rb.next !== null || this.paused || unread + data.length < P) {
      rb.push(data);
      return;
    }
    // The prefix may itself straddle the tail and `data` (at most 4 bytes).
    let length = 0;
    for (let i = 0; i < P; i++) {
      length = length * 256 + (i < unread ? rb.buf[rb.start + i] : data[i - unread]);
    }
    const total = P + length;
    const need = total - unread;
    // need <= 0: the tail already holds a whole string (left there by a close).
    if (length > this.MAX_LENGTH || need <= 0) rb.push(data);
    else if (need <= data.length) rb.bridge(data, need);
    else rb.push(data, total);
  }

  #deliver(): void {
    const rb = this.#rb;
    const P = this.prefixLength;
    while (!this.paused && !this.closing && rb.ready()) {
      const buf = rb.buf;
      const start = rb.start;
      if (buf.length - start < P) {
        if (rb.next === null) return;
        rb.merge();
        continue;
      }
      const length =
        P === 1 ? buf[start] : P === 2 ? buf.readUInt16BE(start) : buf.readUInt32BE(start);
      if (length > this.MAX_LENGTH) {
        this.lengthLimitExceeded(length);
        return;
      }
      const end = start + P + length;
      if (end > buf.length) {
        if (rb.next === null) {
          rb.reserve(P + length);
          return;
        }
        rb.merge(P + length);
        continue;
      }
      rb.start = end;
      this.stringReceived(rb.view(start + P, end));
    }
  }
}

/** Strings prefixed with their length as one unsigned byte (at most 255 bytes). */
export abstract class Int8StringReceiver extends IntNStringReceiver {
  /** One byte. */
  readonly prefixLength = 1;
}

/** Strings prefixed with their length as a big-endian unsigned 16-bit integer. */
export abstract class Int16StringReceiver extends IntNStringReceiver {
  /** Two bytes. */
  readonly prefixLength = 2;
}

/** Strings prefixed with their length as a big-endian unsigned 32-bit integer. */
export abstract class Int32StringReceiver extends IntNStringReceiver {
  /** Four bytes. */
  readonly prefixLength = 4;
}
