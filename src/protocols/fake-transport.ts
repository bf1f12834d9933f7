/**
 * {@link FakeTransport}: one end of an in-memory connection, behaving as a
 * TCP transport toward its protocol. The pumps in `loopback.ts` move its
 * queued writes to the other end.
 *
 * @module
 */

import type { Socket } from 'node:net';
import { ProducerAlreadyRegistered, TransportClosedError } from '../reactor/errors.js';
import { Failure } from '../reactor/failure.js';
import type {
  IAddress,
  IHalfCloseableProtocol,
  IProtocol,
  IPullProducer,
  IPushProducer,
  ITCPTransport,
} from '../reactor/interfaces.js';

/** The high-water mark above which a FakeTransport pauses a streaming producer (64 KiB). */
export const DEFAULT_HIGH_WATER = 64 * 1024;

function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function hasWriteConnectionLost(p: IProtocol): p is IHalfCloseableProtocol {
  return typeof (p as Partial<IHalfCloseableProtocol>).writeConnectionLost === 'function';
}

/**
 * One end of an in-memory connection. Behaves as a TCP transport: writes are
 * buffered (and pause a streaming producer above the high-water mark), the
 * read side can be paused, close requests wait for the buffer to drain.
 */
export class FakeTransport implements ITCPTransport {
  /** Bytes written and not yet delivered by the pump. */
  readonly outgoing: Buffer[] = [];
  #outgoingBytes = 0;

  producer: IPushProducer | IPullProducer | null = null;
  streaming = false;
  #producerPaused = false;
  /** Bytes were written since the pull producer was last asked for more. */
  #pullOwed = false;

  /** `true` while the protocol asked not to receive data (`pauseProducing`). */
  readPaused = false;
  /** `true` after `loseConnection()`/`abortConnection()`. */
  disconnecting = false;
  /** `true` after `abortConnection()`. */
  aborted = false;
  /** `true` after `loseWriteConnection()`. */
  writeClosing = false;
  /** `true` once `connectionLost` was delivered to this side's protocol. */
  lost = false;
  /** `true` once the peer's FIN (a half-close) was delivered here. */
  readClosed = false;
  #writeClosedDelivered = false;

  /**
   * Fault injection: when set, each write for which it returns `true` is
   * discarded instead of queued (counted in {@link FakeTransport.dropped}).
   */
  dropWrite: ((data: Buffer) => boolean) | null = null;
  /** How many writes `dropWrite` discarded. */
  dropped = 0;

  /**
   * Called after anything the pump should act on: a write, a close or
   * half-close request, a read resume, a producer (un)registration. The async
   * loopback schedules its next turn here; `null` (the default) for the
   * synchronous pump.
   */
  onActivity: (() => void) | null = null;

  /**
   * When `true`, a pull producer is asked for more only once what it wrote
   * has been delivered, as a TCP transport does after a flush; when `false`
   * (the default, for the synchronous pump), on every pump round that finds
   * the buffer empty.
   */
  pullPerDrain = false;

  #noDelay = false;
  #keepAlive = false;

  constructor(
    readonly protocol: IProtocol,
    readonly isServer: boolean,
    readonly hostAddress: IAddress,
    readonly peerAddress: IAddress,
    readonly highWaterMark = DEFAULT_HIGH_WATER,
  ) {}

  get bufferedAmount(): number {
    return this.#outgoingBytes;
  }

  write(data: Uint8Array | string): void {
    if (this.disconnecting || this.writeClosing || this.lost) {
      throw new TransportClosedError('write() on a closed or closing transport');
    }
    const buf = toBuffer(data);
    if (buf.length === 0) return;
    if (this.dropWrite?.(buf)) {
      this.dropped++;
      return;
    }
    this.outgoing.push(buf);
    this.#outgoingBytes += buf.length;
    this.#pullOwed = true;
    if (
      this.producer !== null &&
      this.streaming &&
      !this.#producerPaused &&
      this.#outgoingBytes > this.highWaterMark
    ) {
      this.#producerPaused = true;
      (this.producer as IPushProducer).pauseProducing();
    }
    this.onActivity?.();
  }

  writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    for (const chunk of data) this.write(chunk);
  }

  loseConnection(): void {
    this.disconnecting = true;
    this.onActivity?.();
  }

  abortConnection(): void {
    this.disconnecting = true;
    this.aborted = true;
    this.outgoing.length = 0;
    this.#outgoingBytes = 0;
    this.onActivity?.();
  }

  loseWriteConnection(): void {
    this.writeClosing = true;
    this.onActivity?.();
  }

  getPeer(): IAddress {
    return this.peerAddress;
  }

  getHost(): IAddress {
    return this.hostAddress;
  }

  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.producer !== null) throw new ProducerAlreadyRegistered();
    if (this.lost) {
      producer.stopProducing();
      return;
    }
    this.producer = producer;
    this.streaming = streaming;
    this.#producerPaused = false;
    this.#pullOwed = false;
    if (!streaming) producer.resumeProducing();
    this.onActivity?.();
  }

  unregisterProducer(): void {
    this.producer = null;
    this.#producerPaused = false;
    this.onActivity?.();
  }

  pauseProducing(): void {
    this.readPaused = true;
  }

  resumeProducing(): void {
    this.readPaused = false;
    this.onActivity?.();
  }

  stopProducing(): void {
    this.loseConnection();
  }

  setTcpNoDelay(enabled: boolean): void {
    this.#noDelay = enabled;
  }

  getTcpNoDelay(): boolean {
    return this.#noDelay;
  }

  setTcpKeepAlive(enabled: boolean): void {
    this.#keepAlive = enabled;
  }

  getTcpKeepAlive(): boolean {
    return this.#keepAlive;
  }

  /**
   * An in-memory connection has no socket to hand over.
   * @throws TransportClosedError always.
   */
  detach(): { socket: Socket; head: Buffer } {
    throw new TransportClosedError('an in-memory transport has no socket to detach');
  }

  /** Takes up to `max` queued bytes for delivery (all when `max` is 0). */
  takeOutgoing(max: number): Buffer | null {
    if (this.#outgoingBytes === 0) return null;
    let chunk: Buffer;
    if (max === 0 || max >= this.#outgoingBytes) {
      chunk =
        this.outgoing.length === 1
          ? this.outgoing[0]
          : Buffer.concat(this.outgoing, this.#outgoingBytes);
      this.outgoing.length = 0;
    } else {
      const first = this.outgoing[0];
      if (first.length <= max) {
        chunk = first;
        this.outgoing.shift();
      } else {
        chunk = first.subarray(0, max);
        this.outgoing[0] = first.subarray(max);
      }
    }
    this.#outgoingBytes -= chunk.length;
    return chunk;
  }

  /** Called by the pump once the buffer has drained: resume or pull the producer. */
  drained(): boolean {
    const producer = this.producer;
    if (producer === null || this.#outgoingBytes > 0) return false;
    if (this.streaming) {
      if (!this.#producerPaused) return false;
      this.#producerPaused = false;
      (producer as IPushProducer).resumeProducing();
      return true;
    }
    if (this.pullPerDrain) {
      if (!this.#pullOwed) return false;
      this.#pullOwed = false;
    }
    producer.resumeProducing();
    return true;
  }

  /** Whether a write-side half-close is ready to be delivered to the peer. */
  takeWriteClose(): boolean {
    if (!this.writeClosing || this.#writeClosedDelivered || this.#outgoingBytes > 0) return false;
    if (this.producer !== null) return false;
    this.#writeClosedDelivered = true;
    if (hasWriteConnectionLost(this.protocol)) this.protocol.writeConnectionLost();
    return true;
  }

  /** Whether a close request can be carried out now (buffer empty, no producer). */
  readyToClose(): boolean {
    return (
      this.aborted || (this.disconnecting && this.#outgoingBytes === 0 && this.producer === null)
    );
  }

  /** Delivers `connectionLost` to this side's protocol, once. */
  deliverLost(reason: Error): void {
    if (this.lost) return;
    this.lost = true;
    this.disconnecting = true;
    const producer = this.producer;
    this.producer = null;
    producer?.stopProducing();
    this.protocol.connectionLost(new Failure(reason));
  }
}
