/**
 * {@link ProducerSlot}: the one producer a stream transport's writes may
 * have registered, and the flow control Twisted's `FileDescriptor` gives
 * it. A streaming (push) producer is paused when the unflushed bytes pass
 * the transport's high-water mark and resumed once the socket has drained;
 * a pull producer is asked for more each time everything written since its
 * registration has been flushed. The transport decides when (it knows its
 * buffered bytes and its socket); the slot keeps the producer's state and
 * makes the calls.
 *
 * @module
 */

import type { Socket } from 'node:net';
import type { IPullProducer, IPushProducer } from './interfaces.js';
import { err } from './log.js';

const EMPTY = Buffer.alloc(0);

/** A registered producer's state on a transport (see the module documentation). */
export class ProducerSlot {
  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  /** We paused the streaming producer and owe it a `resumeProducing()`. */
  #paused = false;
  /** Bumped on every registration, so flush callbacks of an old producer are ignored. */
  #generation = 0;
  /** Writes carrying a flush callback that have not completed yet. */
  #flushPending = 0;
  /** Flush callback for the current registration, allocated once per registration. */
  #onFlushed: ((error?: Error | null) => void) | null = null;
  /** The transport is closed: flush callbacks are ignored. */
  #closed = false;

  /** The registered producer, or `null`. */
  get producer(): IPushProducer | IPullProducer | null {
    return this.#producer;
  }

  /** Whether a streaming producer is registered and not paused by us (the transport then checks its mark). */
  get pausable(): boolean {
    return this.#streaming && !this.#paused;
  }

  /**
   * Registers `producer` (none may be registered). A streaming one is
   * paused at once when `over` (the buffered bytes are above the mark); a
   * pull one gets `resumeProducing()` at once. `socket` is where a flush is
   * awaited, or `null` while there is none to ask (a TLS handshake).
   */
  register(
    producer: IPushProducer | IPullProducer,
    streaming: boolean,
    over: boolean,
    socket: Socket | null,
  ): void {
    this.#producer = producer;
    this.#streaming = streaming;
    this.#paused = false;
    const generation = ++this.#generation;
    this.#flushPending = 0;
    if (streaming) {
      this.#onFlushed = null;
      if (over) this.pause(socket);
    } else {
      this.#onFlushed = (error) => this.#flushed(generation, error);
      producer.resumeProducing();
    }
  }

  /** Forgets the producer (it is not stopped) and returns it, or `null` if there was none. */
  release(): IPushProducer | IPullProducer | null {
    const producer = this.#producer;
    if (producer === null) return null;
    this.#producer = null;
    this.#streaming = false;
    this.#paused = false;
    this.#onFlushed = null;
    this.#generation++;
    return producer;
  }

  /** No more flush callbacks count (the transport is closed). */
  close(): void {
    this.#closed = true;
  }

  /** Writes `data` to `socket`, with the pull producer's flush callback if one is registered. */
  send(socket: Socket, data: Uint8Array | string): void {
    if (this.#onFlushed === null) {
      socket.write(data);
    } else {
      this.#flushPending++;
      socket.write(data, this.#onFlushed);
    }
  }

  /**
   * Pauses the streaming producer (the buffered bytes passed the mark) and
   * arranges its resume once `socket` has drained (`null`: the caller
   * arranges it, see {@link switched}).
   */
  pause(socket: Socket | null): void {
    this.#paused = true;
    try {
      (this.#producer as IPushProducer).pauseProducing();
    } catch (e) {
      err(e, 'Unhandled error in producer.pauseProducing()');
    }
    if (socket !== null) this.#awaitDrain(socket);
  }

  /** The socket emitted `'drain'`: a paused streaming producer is resumed. */
  drained(): void {
    if (this.#streaming && this.#paused) this.#resume();
  }

  /**
   * The transport has a new socket (a TLS handshake completed): a paused
   * streaming producer waits for it to drain; a running one is paused if
   * `over`.
   */
  switched(socket: Socket, over: boolean): void {
    if (!this.#streaming) return;
    if (this.#paused) this.#awaitDrain(socket);
    else if (over) this.pause(socket);
  }

  /** Arranges for the paused streaming producer to be resumed once `socket` has drained. */
  #awaitDrain(socket: Socket): void {
    // 'drain' only comes if a write found the buffer above the socket's own
    // high-water mark; below it (a small custom mark), ask for a flush callback.
    if (!socket.writableNeedDrain) {
      const generation = this.#generation;
      this.#flushPending++;
      socket.write(EMPTY, (error) => this.#flushed(generation, error));
    }
  }

  #resume(): void {
    this.#paused = false;
    try {
      (this.#producer as IPushProducer).resumeProducing();
    } catch (e) {
      err(e, 'Unhandled error in producer.resumeProducing()');
    }
  }

  /** A write carrying a flush callback completed. */
  #flushed(generation: number, error: Error | null | undefined): void {
    if (generation !== this.#generation || this.#closed || error) return;
    // Writes complete in order: when the last one carrying a callback is done,
    // everything written since the registration has reached the kernel.
    if (--this.#flushPending > 0) return;
    const producer = this.#producer;
    if (producer === null) return;
    if (!this.#streaming) {
      try {
        producer.resumeProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.resumeProducing()');
      }
    } else if (this.#paused) {
      this.#resume();
    }
  }
}
