/**
 * Two protocols connected in memory, with a pump that moves bytes between
 * them only when the test says so (Twisted's `twisted.test.iosim`).
 *
 * Nothing happens behind the test's back: writes are queued on each side's
 * {@link FakeTransport}, and {@link IOPump.pump} delivers them, honours
 * pause/resume in both directions, drives registered producers and carries out
 * close requests. Faults can be injected: deliver in small pieces
 * (`chunkSize: 1` splits every write into single bytes) or break the
 * connection mid-stream.
 *
 * @module
 */

import type { Socket } from 'node:net';
import { IPv4Address } from '../reactor/address.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionLost,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../reactor/errors.js';
import { Failure } from '../reactor/failure.js';
import type {
  IAddress,
  IHalfCloseableProtocol,
  IProtocol,
  IProtocolFactory,
  IPullProducer,
  IPushProducer,
  ITCPTransport,
} from '../reactor/interfaces.js';

/** The high-water mark above which a FakeTransport pauses a streaming producer. */
const DEFAULT_HIGH_WATER = 64 * 1024;

function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function hasReadConnectionLost(p: IProtocol): p is IHalfCloseableProtocol {
  return typeof (p as Partial<IHalfCloseableProtocol>).readConnectionLost === 'function';
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
    this.outgoing.push(buf);
    this.#outgoingBytes += buf.length;
    if (
      this.producer !== null &&
      this.streaming &&
      !this.#producerPaused &&
      this.#outgoingBytes > this.highWaterMark
    ) {
      this.#producerPaused = true;
      (this.producer as IPushProducer).pauseProducing();
    }
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
    this.outgoing.length = 0;
    this.#outgoingBytes = 0;
  }

  loseWriteConnection(): void {
    this.writeClosing = true;
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
    if (!streaming) producer.resumeProducing();
  }

  unregisterProducer(): void {
    this.producer = null;
    this.#producerPaused = false;
  }

  pauseProducing(): void {
    this.readPaused = true;
  }

  resumeProducing(): void {
    this.readPaused = false;
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

/** Options of {@link IOPump} and {@link connectedServerAndClient}. */
export interface PumpOptions {
  /** Deliver at most this many bytes per `dataReceived` (0 = whole buffers). Default 0. */
  chunkSize?: number;
  /** Streaming producers are paused above this many queued bytes. Default 64 KiB. */
  highWaterMark?: number;
}

/** Moves bytes between the two ends of an in-memory connection. */
export class IOPump {
  readonly #chunkSize: number;

  constructor(
    readonly client: IProtocol,
    readonly server: IProtocol,
    readonly clientTransport: FakeTransport,
    readonly serverTransport: FakeTransport,
    options: PumpOptions = {},
  ) {
    this.#chunkSize = options.chunkSize ?? 0;
  }

  /**
   * One round: delivers what each side wrote (as far as the receiving side is
   * not paused), drives producers whose buffers drained, and carries out
   * half-closes and closes. Returns whether anything happened.
   */
  pump(): boolean {
    let moved = false;
    moved = this.#deliver(this.clientTransport, this.serverTransport) || moved;
    moved = this.#deliver(this.serverTransport, this.clientTransport) || moved;
    moved = this.clientTransport.drained() || moved;
    moved = this.serverTransport.drained() || moved;
    moved = this.#halfClose(this.clientTransport, this.serverTransport) || moved;
    moved = this.#halfClose(this.serverTransport, this.clientTransport) || moved;
    moved = this.#close() || moved;
    return moved;
  }

  /**
   * Pumps until nothing more moves, at most `maxRounds` times.
   * Returns the number of rounds that moved something.
   */
  flush(maxRounds = 10_000): number {
    let rounds = 0;
    while (rounds < maxRounds && this.pump()) rounds++;
    return rounds;
  }

  /**
   * Injects a network failure: both sides lose the connection at once, with
   * `ConnectionLost` (or `reason`), and queued bytes are dropped.
   */
  breakConnection(reason: Error = new ConnectionLost()): void {
    this.clientTransport.abortConnection();
    this.serverTransport.abortConnection();
    this.clientTransport.deliverLost(reason);
    this.serverTransport.deliverLost(reason);
  }

  #deliver(from: FakeTransport, to: FakeTransport): boolean {
    let moved = false;
    while (!to.readPaused && !to.lost && !from.aborted) {
      const chunk = from.takeOutgoing(this.#chunkSize);
      if (chunk === null) break;
      moved = true;
      to.protocol.dataReceived(chunk);
    }
    return moved;
  }

  #halfClose(from: FakeTransport, to: FakeTransport): boolean {
    if (to.lost || to.readClosed || !from.takeWriteClose()) return false;
    to.readClosed = true;
    if (hasReadConnectionLost(to.protocol)) to.protocol.readConnectionLost();
    else to.loseConnection();
    return true;
  }

  #close(): boolean {
    const c = this.clientTransport;
    const s = this.serverTransport;
    if (c.lost && s.lost) return false;
    if (c.aborted || s.aborted) {
      c.deliverLost(c.aborted ? new ConnectionAborted() : new ConnectionLost());
      s.deliverLost(s.aborted ? new ConnectionAborted() : new ConnectionLost());
      return true;
    }
    if (c.readyToClose() || s.readyToClose()) {
      // The closing side's last bytes were delivered above; the peer's
      // unread bytes are lost with the connection, as with a real socket.
      c.deliverLost(new ConnectionDone());
      s.deliverLost(new ConnectionDone());
      return true;
    }
    return false;
  }
}

/** A protocol factory or a function that makes one protocol. */
export type ProtocolSource = IProtocolFactory | (() => IProtocol);

function build(source: ProtocolSource, addr: IAddress): IProtocol {
  if (typeof source === 'function') return source();
  const protocol = source.buildProtocol(addr);
  if (protocol === null) throw new TransportClosedError('the factory refused the connection');
  return protocol;
}

/** What {@link connectedServerAndClient} returns. */
export interface ConnectedPair<C extends IProtocol, S extends IProtocol> {
  client: C;
  server: S;
  pump: IOPump;
}

/**
 * Builds a server and a client protocol, connects them in memory and (unless
 * `greet` is false) runs one `flush()` so that greetings written in
 * `connectionMade` are exchanged.
 */
export function connectedServerAndClient<
  S extends IProtocol = IProtocol,
  C extends IProtocol = IProtocol,
>(
  server: ProtocolSource,
  client: ProtocolSource,
  options: PumpOptions & { greet?: boolean } = {},
): ConnectedPair<C, S> {
  const serverAddress = new IPv4Address('TCP', '127.0.0.1', 8080);
  const clientAddress = new IPv4Address('TCP', '127.0.0.1', 41414);
  const serverProtocol = build(server, clientAddress) as S;
  const clientProtocol = build(client, serverAddress) as C;
  const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER;
  const serverTransport = new FakeTransport(
    serverProtocol,
    true,
    serverAddress,
    clientAddress,
    hwm,
  );
  const clientTransport = new FakeTransport(
    clientProtocol,
    false,
    clientAddress,
    serverAddress,
    hwm,
  );
  const pump = new IOPump(
    clientProtocol,
    serverProtocol,
    clientTransport,
    serverTransport,
    options,
  );
  serverProtocol.makeConnection(serverTransport);
  clientProtocol.makeConnection(clientTransport);
  if (options.greet ?? true) pump.flush();
  return { client: clientProtocol, server: serverProtocol, pump };
}
