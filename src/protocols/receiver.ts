/**
 * Shared machinery of the framing receivers ({@link LineReceiver},
 * `IntNStringReceiver`, `NetstringReceiver`): the unread-bytes buffer that
 * hands out views instead of copies, and the pause/resume behaviour Twisted
 * keeps in `_PauseableMixin`.
 *
 * @module
 */

import { TorsionError } from '../reactor/errors.js';
import type { IPushProducer, IStreamTransport } from '../reactor/interfaces.js';
import { Protocol } from './protocol.js';

/** The empty buffer, shared. */
export const EMPTY: Buffer = Buffer.alloc(0);

/** A framing hook a subclass must override was called without being overridden. */
export class NotImplementedError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_NOT_IMPLEMENTED');
  }
}

/**
 * The class of the views {@link ReadBuffer.view} makes: a plain `Uint8Array` subclass
 * whose prototype chain runs through `Buffer.prototype`, so its instances
 * are Buffers in every respect that matters (`Buffer.isBuffer`,
 * `instanceof Buffer`, every Buffer method) but are built by the engine's
 * own typed-array constructor. `buf.subarray()` instead goes through
 * `Buffer`'s species lookup, which costs about three times as much: on a
 * stream of short lines that is most of the parsing time.
 */
// Named `Buffer` so that inspect() and logs show views as the Buffers they
// are. (Re-pointing its prototype's `constructor` at the real Buffer instead
// would disable V8's typed-array fast paths, process-wide.)
const BufferView = class Buffer extends Uint8Array {};
Object.setPrototypeOf(BufferView.prototype, Buffer.prototype);

/** `data` as a Buffer (strings as UTF-8), without copying a Uint8Array. */
export function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * The bytes a receiver has been given but not yet parsed: `buf[start:]`,
 * then `next` (when set).
 *
 * Parsers hand out `subarray` views of `buf`, so bytes before `buf.length`
 * are never written again: appending copies into spare room *after* the
 * end of an owned store, and compaction always allocates a fresh store. A
 * view given to a callback therefore stays valid for as long as the callback's
 * owner keeps it.
 *
 * Copies happen only where a frame spans two chunks: {@link ReadBuffer.bridge}
 * joins the unread tail with just the head of the new chunk that completes
 * the frame, and keeps the rest of the chunk as `next`, uncopied;
 * {@link ReadBuffer.push} (the general case) copies into a store that grows
 * geometrically, so any sequence of pushes costs linear time.
 */
export class ReadBuffer {
  /** The buffer being parsed; its unread part starts at {@link ReadBuffer.start}. */
  buf: Buffer = EMPTY;
  /** `buf.buffer` and `buf.byteOffset`, cached: reading `.buffer` costs more than making a view. */
  #ab: ArrayBuffer = EMPTY.buffer as ArrayBuffer;
  #base = EMPTY.byteOffset;
  /** Offset of the first unread byte in {@link ReadBuffer.buf}. */
  start = 0;
  /** A chunk queued whole behind `buf` (set by {@link ReadBuffer.bridge}). */
  next: Buffer | null = null;
  /** When set, `buf` is a prefix view of this store and the rest of it is free. */
  #store: Buffer | null = null;

  /** How many unread bytes there are in all. */
  get size(): number {
    const next = this.next;
    return this.buf.length - this.start + (next === null ? 0 : next.length);
  }

  /**
   * Appends `data` after everything unread. Adopts it without copying when
   * nothing is unread; otherwise copies it into owned storage, allocating
   * room for at least `expect` unread bytes (a frame's known size) so a large
   * frame arriving in pieces is copied once.
   */
  push(data: Buffer, expect = 0): void {
    if (data.length === 0) return;
    const next = this.next;
    if (next !== null) {
      this.next = null;
      this.#append(next, 0);
    }
    this.#append(data, expect);
  }

  /**
   * Replaces the unread tail with `tail + data[0:n]` and queues `data[n:]`
   * (uncopied) as `next`. Parsers call it with the `n` that completes the
   * frame the tail started, so only that frame is copied.
   * Precondition: `next` is null and `0 < n <= data.length`.
   */
  bridge(data: Buffer, n: number): void {
    const buf = this.buf;
    const unread = buf.length - this.start;
    const joined = Buffer.allocUnsafe(unread + n);
    buf.copy(joined, 0, this.start);
    data.copy(joined, unread, 0, n);
    this.#setBuf(joined);
    this.start = 0;
    this.#store = null;
    this.next = n < data.length ? data.subarray(n) : null;
  }

  /**
   * Makes `buf` hold unread bytes if any are left: moves on to `next` once
   * `buf` is used up. Returns `false` when nothing is unread.
   */
  ready(): boolean {
    if (this.start < this.buf.length) return true;
    const next = this.next;
    if (next === null) return false;
    this.#setBuf(next);
    this.start = 0;
    this.#store = null;
    this.next = null;
    return true;
  }

  /** Joins `next` onto `buf` (a frame spans both). */
  merge(expect = 0): void {
    const next = this.next;
    if (next === null) return;
    this.next = null;
    this.#append(next, expect);
  }

  /**
   * Makes sure `buf` can grow to `expect` unread bytes without another
   * reallocation (a frame of known size is still arriving).
   */
  reserve(expect: number): void {
    if (this.next !== null || this.start === this.buf.length) return;
    const store = this.#store;
    if (store !== null && store.length - this.start >= expect) return;
    this.#grow(EMPTY, expect);
  }

  /** Removes and returns every unread byte (a view when possible). */
  takeAll(): Buffer {
    const buf = this.buf;
    const start = this.start;
    const next = this.next;
    let out: Buffer;
    if (next === null) out = start === 0 ? buf : buf.subarray(start);
    else if (start === buf.length) out = next;
    else out = Buffer.concat([buf.subarray(start), next]);
    this.clear();
    return out;
  }

  /** Forgets every unread byte. */
  clear(): void {
    this.#setBuf(EMPTY);
    this.start = 0;
    this.next = null;
    this.#store = null;
  }

  /**
   * A view of `buf[start:end]`; as `buf.subarray(start, end)`, only faster
   * (see `BufferView`).
   */
  view(start: number, end: number): Buffer {
    return new BufferView(this.#ab, this.#base + start, end - start) as unknown as Buffer;
  }

  #setBuf(buf: Buffer): void {
    this.buf = buf;
    // A Buffer's memory is an ArrayBuffer (or a SharedArrayBuffer, which a
    // typed-array view takes just the same).
    this.#ab = buf.buffer as ArrayBuffer;
    this.#base = buf.byteOffset;
  }

  #append(data: Buffer, expect: number): void {
    const buf = this.buf;
    if (this.start === buf.length) {
      this.#setBuf(data);
      this.start = 0;
      this.#store = null;
      return;
    }
    const store = this.#store;
    const end = buf.length;
    if (store !== null && store.length - end >= data.length) {
      data.copy(store, end);
      this.#setBuf(store.subarray(0, end + data.length));
      return;
    }
    this.#grow(data, expect);
  }

  /** Moves the unread bytes plus `data` into a fresh store with room to grow. */
  #grow(data: Buffer, expect: number): void {
    const buf = this.buf;
    const unread = buf.length - this.start;
    const need = unread + data.length;
    // Geometric growth keeps repeated appends linear; a known frame size
    // (expect) sizes the store exactly instead.
    const capacity = Math.max(need, expect, expect > 0 ? 0 : need + (need >>> 1), 256);
    const store = Buffer.allocUnsafe(capacity);
    buf.copy(store, 0, this.start);
    data.copy(store, unread);
    this.#store = store;
    this.#setBuf(store.subarray(0, need));
    this.start = 0;
  }
}

/**
 * A protocol that is also a push producer of what it receives, as Twisted's
 * `_PauseableMixin`: a consumer (or the protocol itself) can pause it, and
 * then no more frames are delivered, even from data already buffered, until
 * `resumeProducing()`.
 *
 * - `pauseProducing()` sets {@link PauseableProtocol.paused} and pauses the
 *   transport's reading. A frame callback that pauses stops delivery right
 *   after it returns; the rest of the current buffer is kept.
 * - `resumeProducing()` clears `paused`, resumes the transport, and delivers
 *   what was buffered at once (synchronously, from inside the call; called
 *   from inside a frame callback it only clears the flag and the running
 *   loop carries on).
 * - `stopProducing()` sets `paused` for good and calls the transport's
 *   `stopProducing()` (which closes the connection).
 */
export abstract class PauseableProtocol extends Protocol implements IPushProducer {
  /** `true` while paused (by `pauseProducing` or `stopProducing`). */
  paused = false;

  /** Stops delivering frames and pauses the transport's reading. */
  pauseProducing(): void {
    this.paused = true;
    this.transport.pauseProducing();
  }

  /** Resumes the transport's reading and delivers the frames already buffered. */
  resumeProducing(): void {
    this.paused = false;
    this.transport.resumeProducing();
    this.dataReceived(EMPTY);
  }

  /** Stops delivering frames for good and tells the transport to stop (close). */
  stopProducing(): void {
    this.paused = true;
    this.transport.stopProducing();
  }

  /** `true` when the connection is closing: no more frames are delivered. */
  protected get closing(): boolean {
    const transport = this.transport as IStreamTransport | undefined;
    return transport?.disconnecting === true;
  }
}
