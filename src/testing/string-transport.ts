/**
 * `StringTransport`: an in-memory transport that records what a protocol does
 * to it, for unit tests of protocols (Twisted's
 * `twisted.internet.testing.StringTransport`).
 *
 * @module
 */

import type { Socket } from 'node:net';
import { IPv4Address } from '../reactor/address.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../reactor/errors.js';
import { Failure } from '../reactor/failure.js';
import type {
  IAddress,
  IProtocol,
  IPullProducer,
  IPushProducer,
  ITCPTransport,
} from '../reactor/interfaces.js';

/** What the transport's read side was told last: `pauseProducing`, `resumeProducing` or `stopProducing`. */
export type ProducerState = 'producing' | 'paused' | 'stopped';

/** Options of {@link StringTransport}. */
export interface StringTransportOptions {
  hostAddress?: IAddress;
  peerAddress?: IAddress;
  /**
   * When set, `write` throws {@link TransportClosedError} after
   * `loseConnection()`, as a real transport does. Default true.
   */
  strictWrites?: boolean;
}

function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Records writes (read them with {@link StringTransport.value}), producer
 * registration and close requests. Nothing is sent anywhere; nothing calls the
 * protocol back unless a test does (see {@link StringTransportWithDisconnection}).
 */
export class StringTransport implements ITCPTransport {
  /** Every chunk written, in order. */
  readonly written: Buffer[] = [];
  #size = 0;

  /** The registered producer, if any. */
  producer: IPushProducer | IPullProducer | null = null;
  /** Whether the registered producer is a streaming (push) producer. */
  streaming: boolean | null = null;
  /** The state the transport's own read side was put in (it is a push producer too). */
  producerState: ProducerState = 'producing';

  /** `true` after `loseConnection()` or `abortConnection()`. */
  disconnecting = false;
  /** `true` after `abortConnection()`. */
  aborted = false;
  /** `true` after `loseWriteConnection()`. */
  writeClosed = false;
  /** `true` after `detach()`. */
  detached = false;

  #noDelay = false;
  #keepAlive = false;
  readonly #host: IAddress;
  readonly #peer: IAddress;
  readonly #strict: boolean;

  constructor(options: StringTransportOptions = {}) {
    this.#host = options.hostAddress ?? new IPv4Address('TCP', '10.0.0.1', 12345);
    this.#peer = options.peerAddress ?? new IPv4Address('TCP', '10.0.0.2', 54321);
    this.#strict = options.strictWrites ?? true;
  }

  /** Everything written so far, as one Buffer. */
  value(): Buffer {
    return Buffer.concat(this.written, this.#size);
  }

  /** Forgets what was written. */
  clear(): void {
    this.written.length = 0;
    this.#size = 0;
  }

  get bufferedAmount(): number {
    return 0;
  }

  write(data: Uint8Array | string): void {
    if (this.#strict && this.disconnecting) {
      throw new TransportClosedError('write() after loseConnection()');
    }
    const buf = toBuffer(data);
    if (buf.length === 0) return;
    this.written.push(buf);
    this.#size += buf.length;
  }

  writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    for (const chunk of data) this.write(chunk);
  }

  loseConnection(): void {
    this.disconnecting = true;
  }

  abortConnection(): void {
    this.disconnecting = true;
    this.aborted = true;
  }

  loseWriteConnection(): void {
    this.writeClosed = true;
  }

  getPeer(): IAddress {
    return this.#peer;
  }

  getHost(): IAddress {
    return this.#host;
  }

  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.producer !== null) throw new ProducerAlreadyRegistered();
    this.producer = producer;
    this.streaming = streaming;
  }

  unregisterProducer(): void {
    this.producer = null;
    this.streaming = null;
  }

  pauseProducing(): void {
    if (this.producerState !== 'stopped') this.producerState = 'paused';
  }

  resumeProducing(): void {
    if (this.producerState !== 'stopped') this.producerState = 'producing';
  }

  stopProducing(): void {
    this.producerState = 'stopped';
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
   * A StringTransport has no socket to hand over.
   * @throws TransportClosedError always.
   */
  detach(): { socket: Socket; head: Buffer } {
    this.detached = true;
    throw new TransportClosedError('StringTransport has no socket to detach');
  }
}

/**
 * A StringTransport whose `loseConnection()` and `abortConnection()` call the
 * protocol's `connectionLost` at once, once: with `ConnectionDone` and
 * `ConnectionAborted` respectively.
 */
export class StringTransportWithDisconnection extends StringTransport {
  /** The protocol to tell; set it before closing. */
  protocol: IProtocol | null = null;
  #lost = false;

  override loseConnection(): void {
    if (this.disconnecting) return;
    super.loseConnection();
    this.#tellLost(new ConnectionDone());
  }

  override abortConnection(): void {
    if (this.#lost) return;
    super.abortConnection();
    this.#tellLost(new ConnectionAborted());
  }

  #tellLost(reason: Error): void {
    if (this.#lost) return;
    this.#lost = true;
    this.producer?.stopProducing();
    this.protocol?.connectionLost(new Failure(reason));
  }
}
