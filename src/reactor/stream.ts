/**
 * The connection transport over a `net.Socket`, shared by TCP and UNIX-domain
 * connections: Twisted's `abstract.FileDescriptor` + `tcp.Connection`
 * semantics on top of Node's streams.
 *
 * - Reads are a push producer: `pauseProducing()` pauses the socket, so bytes
 *   stay in the socket (and then the kernel) until `resumeProducing()`.
 * - Writes go straight to `socket.write` (Node buffers them); a registered
 *   streaming producer is paused when `socket.writableLength` passes the
 *   high-water mark and resumed when the buffer drains; a pull producer is
 *   asked for more each time the buffer drains.
 * - `connectionLost` is delivered exactly once, after the transport has
 *   dropped its references to the protocol, producer and owner.
 *
 * Socket listeners are module-wide functions (static private methods) that
 * find their transport through `socket[kTransport]`, as ws does with
 * `this[kWebSocket]`: no closure is allocated per connection or per chunk.
 *
 * @module
 */

import type { Socket } from 'node:net';
import { type PeerCertificate, TLSSocket } from 'node:tls';
import { inetAddress } from './address.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TorsionError,
  TransportClosedError,
} from './errors.js';
import { Failure } from './failure.js';
import type {
  IAddress,
  IProtocol,
  IPullProducer,
  IPushProducer,
  IReactorTime,
  ITLSTransport,
  StartTLSOptions,
} from './interfaces.js';
import { err } from './log.js';
import { ProducerSlot } from './producer-slot.js';
import {
  type ConnectionOwner,
  DEFAULT_HIGH_WATER_MARK,
  type HalfCloseHooks,
  ignoreSocketErrors,
  NULL_PROTOCOL,
  type StreamTransportOptions,
  stopProducer,
} from './stream-contract.js';
import { peerCertificateOf, prepareStartTLS, TLSSwitch } from './stream-tls.js';

// Kept importable from here, where they were first defined.
export {
  type ConnectionOwner,
  DEFAULT_HIGH_WATER_MARK,
  ignoreSocketErrors,
  NullProtocol,
  type StreamTransportOptions,
} from './stream-contract.js';

import { isTLSFailure, startTLSSocket, TLSError } from './tls-socket.js';

/** The socket property through which listeners find their {@link StreamTransport}. */
export const kTransport: unique symbol = Symbol('torsion.transport');

const EMPTY = Buffer.alloc(0);

type TransportSocket = Socket & { [kTransport]?: StreamTransport };

/** `#tlsState`: plain TCP/UNIX, a `startTLS()` handshake in progress, TLS. */
const NO_TLS = 0;
const TLS_HANDSHAKING = 1;
const TLS_ON = 2;

let socketOnData: (this: TransportSocket, chunk: Buffer) => void;
let socketOnEnd: (this: TransportSocket) => void;
let socketOnFinish: (this: TransportSocket) => void;
let socketOnError: (this: TransportSocket, error: Error) => void;
let socketOnClose: (this: TransportSocket) => void;
let socketOnDrain: (this: TransportSocket) => void;

/**
 * A connected stream socket (TCP or UNIX) as a transport: an {@link IConsumer}
 * for its writes and an {@link IPushProducer} for its reads.
 *
 * Created by listening ports and connectors through
 * {@link StreamTransport.attach}; protocols see it as `this.transport`.
 *
 * State, in order: open → (`loseConnection()`: *disconnecting*, writes refused
 * once no producer is registered; FIN sent after the write buffer flushed) →
 * closed (`connectionLost` delivered). `abortConnection()` and errors jump to
 * closed; `detach()` leaves without telling the protocol.
 *
 * When the peer half-closes (sends FIN), a protocol with `readConnectionLost`
 * gets it and may keep writing; any other protocol's connection is closed as
 * by `loseConnection()`, except that a registered producer is stopped
 * (`stopProducing()`) and dropped instead of waited for.
 *
 * The TCP options (`setTcpNoDelay`…) are no-ops on UNIX sockets, where the
 * getters report what was last set.
 *
 * Over a `tls.TLSSocket` (`listenSSL`/`connectSSL`) the same contract holds
 * for the plaintext side: the high-water mark counts bytes not yet
 * encrypted and sent. `startTLS()` switches a live connection to TLS.
 */
export class StreamTransport implements ITLSTransport {
  #socket: TransportSocket;
  readonly #reactor: IReactorTime;
  #protocol: IProtocol;
  #owner: ConnectionOwner | null;
  readonly #peer: IAddress;
  #host: IAddress | null;
  readonly #highWaterMark: number;

  /** `true` while the protocol asked us not to deliver data. */
  #readPaused = false;
  /** `loseConnection()` was called, or the connection is gone. */
  #disconnecting = false;
  /** `loseWriteConnection()` was called. */
  #writeDisconnecting = false;
  /** `write()` is allowed. */
  #writable = true;
  /** `socket.end()` was called: our FIN is queued behind the buffered writes. */
  #ended = false;
  /** The transport is finished with (aborted, closed or detached): no more events. */
  #closed = false;
  /** The first socket error, reported as the `cause` of `ConnectionLost`. */
  #error: Error | null = null;

  /** The producer of our writes, and its flow control. */
  readonly #slot = new ProducerSlot();

  #noDelay = false;
  #keepAlive = false;

  /** {@link NO_TLS}, {@link TLS_HANDSHAKING} or {@link TLS_ON}. */
  #tlsState: number;
  /** During a `startTLS()` handshake: what waits for it; else `null`. */
  #tls: TLSSwitch | null = null;

  /**
   * Wraps `socket` (connected, created with `allowHalfOpen: true`). Prefer
   * {@link StreamTransport.attach}, which also connects the protocol.
   * @throws InvalidArgumentError if `highWaterMark` is not a non-negative number.
   */
  constructor(
    socket: Socket,
    protocol: IProtocol,
    reactor: IReactorTime,
    options: StreamTransportOptions,
  ) {
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    if (!(highWaterMark >= 0) || !Number.isFinite(highWaterMark)) {
      throw new InvalidArgumentError(
        `highWaterMark must be a non-negative number: ${highWaterMark}`,
      );
    }
    this.#socket = socket as TransportSocket;
    this.#reactor = reactor;
    this.#protocol = protocol;
    this.#owner = options.owner ?? null;
    this.#peer = options.peer;
    this.#host = options.host ?? null;
    this.#highWaterMark = highWaterMark;
    this.#tlsState = socket instanceof TLSSocket ? TLS_ON : NO_TLS;
    this.#listen(this.#socket);
  }

  /**
   * Wraps `socket` in a transport, tells the owner (`connectionStarted`), then
   * calls `protocol.makeConnection(transport)`.
   * If `makeConnection` throws, the error is logged and the connection is
   * aborted (the protocol then gets `connectionLost` with `ConnectionLost`
   * whose `cause` is the error).
   */
  static attach(
    socket: Socket,
    protocol: IProtocol,
    reactor: IReactorTime,
    options: StreamTransportOptions,
  ): StreamTransport {
    const transport = new StreamTransport(socket, protocol, reactor, options);
    options.owner?.connectionStarted(transport);
    try {
      protocol.makeConnection(transport);
    } catch (e) {
      transport.#protocolFailed(e, 'makeConnection');
    }
    return transport;
  }

  // ------------------------------------------------------------------ socket listeners

  // Listeners are plain functions (`this` is the socket or server), assigned
  // here because they use private fields; one function object serves all.
  static {
    socketOnData = function socketOnData(this: TransportSocket, chunk: Buffer): void {
      const t = this[kTransport]!;
      if (t.#disconnecting) return; // loseConnection/abort: reads are discarded (Twisted stops reading)
      if (t.#readPaused) {
        // Not expected (the socket is paused), but never drop or reorder bytes:
        // put the chunk back in front of the socket's buffer.
        this.pause();
        this.unshift(chunk);
        return;
      }
      try {
        t.#protocol.dataReceived(chunk);
      } catch (e) {
        t.#protocolFailed(e, 'dataReceived');
      }
    };

    socketOnEnd = function socketOnEnd(this: TransportSocket): void {
      const t = this[kTransport]!;
      if (t.#closed || t.#disconnecting) return;
      const protocol = t.#protocol as IProtocol & HalfCloseHooks;
      if (typeof protocol.readConnectionLost === 'function') {
        try {
          protocol.readConnectionLost();
        } catch (e) {
          t.#protocolFailed(e, 'readConnectionLost');
        }
      } else {
        t.#peerClosed();
      }
    };

    socketOnFinish = function socketOnFinish(this: TransportSocket): void {
      const t = this[kTransport];
      if (t === undefined || t.#closed || t.#disconnecting) return;
      const protocol = t.#protocol as IProtocol & HalfCloseHooks;
      if (typeof protocol.writeConnectionLost === 'function') {
        try {
          protocol.writeConnectionLost();
        } catch (e) {
          t.#protocolFailed(e, 'writeConnectionLost');
        }
      }
    };

    socketOnError = function socketOnError(this: TransportSocket, error: Error): void {
      const t = this[kTransport]!;
      t.#error ??= error;
      // A TLS socket emits errors on an established connection (a bad record,
      // an alert) without destroying itself; 'close' must follow every error.
      if (!this.destroyed) this.destroy();
    };

    socketOnClose = function socketOnClose(this: TransportSocket): void {
      const t = this[kTransport]!;
      if (t.#closed) return;
      t.#closed = true;
      t.#slot.close();
      const error = t.#error;
      const reason =
        error === null
          ? new ConnectionDone()
          : isTLSFailure(error)
            ? new TLSError(`TLS failure: ${error.message}`, { cause: error })
            : new ConnectionLost(`Connection lost: ${error.message}`, { cause: error });
      t.#notifyLost(new Failure(reason));
    };

    socketOnDrain = function socketOnDrain(this: TransportSocket): void {
      const t = this[kTransport]!;
      t.#slot.drained();
    };
  }

  static #deliverLost(transport: StreamTransport, reason: Failure): void {
    transport.#notifyLost(reason);
  }

  // ------------------------------------------------------------------ ITransport

  /**
   * Sends `data` (strings as UTF-8) with one `socket.write`. Empty data is
   * ignored. With a streaming producer registered, pauses it when the
   * unflushed bytes pass the high-water mark.
   *
   * Writing is allowed until `loseConnection()` (or until the producer
   * registered at that time unregisters), `loseWriteConnection()`,
   * `abortConnection()`, `detach()` or the connection's loss.
   * @throws TransportClosedError after that.
   */
  write(data: Uint8Array | string): void {
    if (!this.#writable) throw new TransportClosedError();
    if (data.length === 0) return;
    if (this.#tls === null) this.#send(data);
    else this.#tls.hold(data);
    if (this.#slot.pausable && this.bufferedAmount > this.#highWaterMark) {
      // During a startTLS handshake there is no TLS socket yet: its
      // completion arranges the resume.
      this.#slot.pause(this.#tls === null ? this.#socket : null);
    }
  }

  /** Hands `data` to the socket, with the pull producer's flush callback if one is registered. */
  #send(data: Uint8Array | string): void {
    this.#slot.send(this.#socket, data);
  }

  /**
   * Sends the buffers in order, corked so Node hands them to the kernel in
   * one `writev`. Same rules as {@link StreamTransport.write}.
   * @throws TransportClosedError once writing is no longer allowed.
   */
  writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    if (!this.#writable) throw new TransportClosedError();
    if (this.#tls !== null) {
      for (const chunk of data) this.write(chunk);
      return;
    }
    const socket = this.#socket;
    socket.cork();
    try {
      for (const chunk of data) this.write(chunk);
    } finally {
      socket.uncork();
    }
  }

  /**
   * Closes the connection once the buffered writes have flushed and, if a
   * producer is registered, once it has unregistered (it may keep writing
   * until then; the transport itself registered as its own producer does not
   * count). From this call on no more data is delivered to the protocol.
   * The protocol's `connectionLost` follows with `ConnectionDone` when the
   * socket closes (the peer acknowledged with its FIN). Idempotent; does
   * nothing once the connection is closed.
   */
  loseConnection(): void {
    if (this.#disconnecting || this.#closed) return;
    this.#disconnecting = true;
    if (this.#ended) {
      // The write side is already closing (loseWriteConnection): read on, and
      // discard, until the peer's FIN closes the socket. (During a startTLS
      // handshake there is no TLS socket yet: done when it completes.)
      if (this.#tls === null) this.#socket.resume();
      return;
    }
    // Our own read side registered as the producer of our writes (the echo
    // pattern) cannot hold the close: loseConnection stops reading anyway.
    const producer = this.#slot.producer;
    if (producer === null || producer === this) {
      this.#endSocket();
    } else if (this.#tls === null) {
      // Keep bytes in the kernel while the producer finishes.
      this.#socket.pause();
    }
  }

  /**
   * Destroys the socket at once, discarding unsent data. `connectionLost`
   * with `ConnectionAborted` is delivered through `reactor.callLater(0)`,
   * never inside the caller's stack. Does nothing once the connection is
   * closed or detached.
   */
  abortConnection(): void {
    this.#abort(new Failure(new ConnectionAborted()));
  }

  /** The remote end's address. */
  getPeer(): IAddress {
    return this.#peer;
  }

  /** This end's address (read from the socket on first call, then cached). */
  getHost(): IAddress {
    if (this.#host === null) {
      const a = this.#socket.address();
      this.#host =
        'address' in a
          ? inetAddress('TCP', a.family, a.address, a.port)
          : inetAddress('TCP', undefined, undefined, undefined);
    }
    return this.#host;
  }

  // ------------------------------------------------------------------ IStreamTransport

  /** `true` once `loseConnection()` or `abortConnection()` was called, or the connection is gone. */
  get disconnecting(): boolean {
    return this.#disconnecting;
  }

  /**
   * Bytes written but not yet handed to the kernel (`socket.writableLength`;
   * over TLS, bytes not yet encrypted and sent; during a `startTLS()`
   * handshake, plus the bytes waiting for it).
   */
  get bufferedAmount(): number {
    const tls = this.#tls;
    return tls === null ? this.#socket.writableLength : this.#socket.writableLength + tls.queued;
  }

  /** The high-water mark (bytes) above which a streaming producer is paused. */
  get highWaterMark(): number {
    return this.#highWaterMark;
  }

  /**
   * Whether the connection is TLS (Twisted's `ISSLTransport`): `true` for
   * a connection made by `listenSSL`/`connectSSL` (from `connectionMade`
   * on), and after a `startTLS()` handshake has completed (from the
   * protocol's `handshakeCompleted()` on; `false` while it runs and if it
   * fails). It stays `true` once the connection is closed or detached (it
   * tells what the connection was, e.g. to a request logged after it).
   */
  get secure(): boolean {
    return this.#tlsState === TLS_ON;
  }

  /** Same as {@link StreamTransport.secure} (the form `request.isSecure()` mirrors). */
  isSecure(): boolean {
    return this.#tlsState === TLS_ON;
  }

  /**
   * Half-close: sends FIN after the buffered writes have flushed (and after a
   * registered producer unregisters); reading goes on. Writes are refused from
   * this call on, unless a producer is registered (then until it unregisters).
   * When the FIN has been handed to the kernel, the protocol's
   * `writeConnectionLost()` is called, if it has one. The connection closes
   * (with `ConnectionDone`) once the peer's FIN has arrived as well. Does
   * nothing after `loseConnection()`, a previous call, or the connection's loss.
   */
  loseWriteConnection(): void {
    if (this.#disconnecting || this.#writeDisconnecting || this.#closed) return;
    this.#writeDisconnecting = true;
    if (this.#slot.producer === null) this.#endSocket();
  }

  /**
   * Takes the socket away: the reactor's listeners are removed, the protocol
   * is no longer called (no `connectionLost`), a registered producer gets
   * `stopProducing()`, and the owner (port or connector) forgets the
   * connection. The socket is returned paused and *not* in flowing mode
   * (`readableFlowing === null`), so adding a `'data'` listener starts it, as
   * `ws.handleUpgrade` expects. Bytes the kernel had already handed over but
   * the protocol had not received stay in the socket's own readable buffer and
   * are read first; `head` holds whatever the transport itself still held
   * (normally empty). The caller must add an `'error'` listener. Over TLS
   * the socket is the `tls.TLSSocket` (a Duplex of plaintext).
   * @throws TransportClosedError after `loseConnection()`, `abortConnection()`,
   * `detach()` or the connection's loss.
   * @throws TorsionError (`TORSION_ERR_INVALID_STATE`) during a `startTLS()`
   * handshake.
   */
  detach(): { socket: Socket; head: Buffer } {
    if (this.#closed || this.#disconnecting) throw new TransportClosedError();
    if (this.#tls !== null) {
      throw new TorsionError(
        'cannot detach a transport during its TLS handshake',
        'TORSION_ERR_INVALID_STATE',
      );
    }
    this.#closed = true;
    this.#slot.close();
    this.#disconnecting = true;
    this.#writable = false;
    const socket = this.#socket;
    socket.pause();
    this.#unlisten(socket);
    // `pause()` leaves readableFlowing === false, in which state a new 'data'
    // listener does not start the flow (ws's handleUpgrade would hang).
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;

    const owner = this.#owner;
    const producer = this.#dropReferences();
    if (producer !== null) stopProducer(producer);
    if (owner !== null) owner.connectionDetached(this);
    return { socket, head: EMPTY };
  }

  // ------------------------------------------------------------------ IConsumer

  /**
   * Registers the producer that feeds this transport. A streaming (push)
   * producer is paused when the unflushed bytes pass the high-water mark
   * (checked on each write, and at once here) and resumed when the buffer has
   * drained; only a pause made by the transport is undone. A pull producer
   * (`streaming = false`) gets `resumeProducing()` at once and again each time
   * the bytes written since have all been flushed. On a transport that can no
   * longer be written to (closed, or after `loseConnection()`) the producer
   * gets `stopProducing()` at once instead.
   * @throws ProducerAlreadyRegistered if a producer is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.#slot.producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#closed || !this.#writable) {
      stopProducer(producer);
      return;
    }
    this.#slot.register(
      producer,
      streaming,
      this.bufferedAmount > this.#highWaterMark,
      this.#tls === null ? this.#socket : null,
    );
  }

  /**
   * Forgets the producer (it is not stopped). If `loseConnection()` or
   * `loseWriteConnection()` was waiting for it, the close proceeds: FIN after
   * the buffered writes flush.
   */
  unregisterProducer(): void {
    if (this.#slot.release() === null) return;
    if (this.#closed || this.#ended) return;
    if (this.#disconnecting || this.#writeDisconnecting) this.#endSocket();
  }

  // ------------------------------------------------------------------ IPushProducer (reads)

  /**
   * Stops delivering data: pauses the socket, so unread bytes stay in the
   * socket and the kernel (and the peer is flow-controlled by TCP). Ignored
   * while disconnecting.
   */
  pauseProducing(): void {
    if (this.#disconnecting) return;
    this.#readPaused = true;
    if (this.#tls === null) this.#socket.pause();
  }

  /** Undoes `pauseProducing()`: data is delivered again from the next turn. */
  resumeProducing(): void {
    if (this.#disconnecting) return;
    this.#readPaused = false;
    if (this.#tls === null) this.#socket.resume();
  }

  /** Same as `loseConnection()`. */
  stopProducing(): void {
    this.loseConnection();
  }

  // ------------------------------------------------------------------ ITCPTransport

  /** Enables or disables Nagle's algorithm being off (`TCP_NODELAY`). */
  setTcpNoDelay(enabled: boolean): void {
    this.#noDelay = enabled;
    if (!this.#closed) this.#socket.setNoDelay(enabled);
  }

  /** Whether `TCP_NODELAY` was set through {@link StreamTransport.setTcpNoDelay} (default `false`). */
  getTcpNoDelay(): boolean {
    return this.#noDelay;
  }

  /** Enables or disables `SO_KEEPALIVE`, with the first probe after `initialDelaySeconds`. */
  setTcpKeepAlive(enabled: boolean, initialDelaySeconds = 0): void {
    this.#keepAlive = enabled;
    if (!this.#closed) this.#socket.setKeepAlive(enabled, Math.round(initialDelaySeconds * 1000));
  }

  /** Whether `SO_KEEPALIVE` was set through {@link StreamTransport.setTcpKeepAlive} (default `false`). */
  getTcpKeepAlive(): boolean {
    return this.#keepAlive;
  }

  // ------------------------------------------------------------------ ITLSTransport

  /**
   * Switches the connection to TLS (STARTTLS): the server side with
   * `{ isServer: true, key, cert… }`, the client side otherwise (the server's
   * certificate is checked as by `tls.connect`: against `ca` or Node's
   * roots, and `servername`, unless `rejectUnauthorized: false`).
   *
   * Ordering: bytes written before the call go out in plaintext first (Node
   * holds the TLS records back until the socket's pending writes are done);
   * bytes written from the call on are queued here, counted in
   * `bufferedAmount` (so a streaming producer is paused as usual), and
   * written to TLS in order once the handshake completes. Nothing is
   * delivered to the protocol during the handshake; bytes already received
   * but not delivered (the transport was paused), preceded by
   * `options.head`, are fed to TLS first. After it, `dataReceived` carries
   * decrypted bytes, the pause state is kept, and a registered producer is
   * still registered. `loseConnection()`/`loseWriteConnection()` during the
   * handshake close after it (and after the queued bytes).
   *
   * When the handshake completes, the protocol's `handshakeCompleted()` is
   * called, if it has one, before any decrypted data. When it fails (bad or
   * untrusted certificate, no common protocol, the peer hung up or spoke
   * plaintext, `options.handshakeTimeout` seconds passed, default 30), the
   * socket is destroyed and the protocol gets `connectionLost` with a
   * {@link TLSError}, from the socket's event (never inside this call).
   *
   * The server side makes its context from the options on each call (Node
   * parses the key and certificate again).
   * @throws TransportClosedError after `loseConnection()`,
   *   `loseWriteConnection()`, `abortConnection()`, `detach()` or the loss.
   * @throws InvalidArgumentError if TLS was already started on this
   *   transport, for a bad `handshakeTimeout`, or (`TLSContextError`) for
   *   options that make no context; the connection is then left as it was.
   */
  startTLS(options: StartTLSOptions = {}): void {
    if (this.#closed || this.#disconnecting || this.#writeDisconnecting) {
      throw new TransportClosedError();
    }
    if (this.#tlsState !== NO_TLS) {
      throw new InvalidArgumentError('TLS was already started on this transport');
    }
    // Make the context first: a bad option must leave the connection alone.
    const { server, context, contextOptions, timeout, head } = prepareStartTLS(options);

    this.getHost(); // cached now: the plain socket is about to be handed over
    const raw = this.#socket;
    raw.pause();
    this.#unlisten(raw);
    ignoreSocketErrors(raw);
    if (head !== undefined && head.length > 0) {
      raw.unshift(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
    }
    this.#tlsState = TLS_HANDSHAKING;
    const tls = new TLSSwitch();
    this.#tls = tls;
    if (timeout !== Number.POSITIVE_INFINITY) {
      tls.timer = this.#reactor.callLater(timeout, StreamTransport.#tlsTimedOut, this, timeout);
    }
    startTLSSocket(raw, server, contextOptions, context, (error, socket) =>
      this.#tlsDone(error, socket),
    );
  }

  /**
   * The peer's certificate (`detailed`: with its issuer chain), or `null`
   * when the connection is not TLS, its `startTLS()` handshake has not
   * completed, the peer sent none (a client, unless the server asked with
   * `requestCert`), or the connection is closed.
   */
  getPeerCertificate(detailed = false): PeerCertificate | null {
    if (this.#tlsState !== TLS_ON || this.#closed) return null;
    return peerCertificateOf(this.#socket as unknown as TLSSocket, detailed);
  }

  static #tlsTimedOut(transport: StreamTransport, seconds: number): void {
    if (transport.#closed || transport.#tls === null) return;
    transport.#tlsFailed(new TLSError(`TLS handshake timed out after ${seconds} seconds`));
  }

  /** The `startTLS()` handshake ended: switch to the TLS socket, or drop the connection. */
  #tlsDone(error: Error | null, socket: TLSSocket | null): void {
    if (this.#closed) {
      // Aborted (or timed out) meanwhile.
      if (socket !== null) {
        ignoreSocketErrors(socket);
        socket.destroy();
      }
      return;
    }
    this.#tls?.cancelTimer();
    if (error !== null || socket === null) {
      const why = error === null ? 'no TLS socket' : error.message;
      this.#tlsFailed(new TLSError(`TLS handshake failed: ${why}`, { cause: error }));
      return;
    }
    const tls = this.#tls;
    this.#tls = null;
    this.#tlsState = TLS_ON;
    this.#socket = socket as Socket as TransportSocket;
    this.#listen(this.#socket);
    if (tls !== null) for (const chunk of tls.queue) this.#send(chunk);
    if (tls?.endPending) {
      this.#finishEnd();
    } else if (this.#readPaused || this.#disconnecting) {
      socket.pause();
    }
    this.#slot.switched(socket, this.bufferedAmount > this.#highWaterMark);
    const protocol = this.#protocol as IProtocol & { handshakeCompleted?: unknown };
    if (typeof protocol.handshakeCompleted === 'function') {
      try {
        protocol.handshakeCompleted();
      } catch (e) {
        this.#protocolFailed(e, 'handshakeCompleted');
      }
    }
  }

  /** The `startTLS()` handshake failed: close now and tell the protocol. */
  #tlsFailed(reason: TLSError): void {
    this.#closed = true;
    this.#slot.close();
    this.#disconnecting = true;
    this.#writable = false;
    this.#tls?.cancelTimer();
    this.#tls = null;
    this.#socket.destroy();
    this.#notifyLost(new Failure(reason));
  }

  // ------------------------------------------------------------------ internals

  #listen(socket: TransportSocket): void {
    socket[kTransport] = this;
    socket.on('data', socketOnData);
    socket.on('end', socketOnEnd);
    socket.on('error', socketOnError);
    socket.on('close', socketOnClose);
    socket.on('drain', socketOnDrain);
  }

  #unlisten(socket: TransportSocket): void {
    socket.removeListener('data', socketOnData);
    socket.removeListener('end', socketOnEnd);
    socket.removeListener('error', socketOnError);
    socket.removeListener('close', socketOnClose);
    socket.removeListener('drain', socketOnDrain);
    socket.removeListener('finish', socketOnFinish);
    delete socket[kTransport];
  }

  /** Queues our FIN behind the buffered writes (during a startTLS handshake: after it). */
  #endSocket(): void {
    this.#writable = false;
    this.#ended = true;
    if (this.#tls !== null) {
      this.#tls.endPending = true;
      return;
    }
    this.#finishEnd();
  }

  #finishEnd(): void {
    const socket = this.#socket;
    if (this.#disconnecting) {
      // Full close: read (and discard) until the peer's FIN, which lets the
      // socket close; a paused socket would never see it.
      socket.resume();
    } else {
      socket.once('finish', socketOnFinish);
    }
    socket.end();
  }

  /**
   * The peer sent FIN and the protocol cannot half-close: the connection is
   * over. Flush what was written and close; a registered producer cannot
   * finish, so it is stopped now rather than waited for.
   */
  #peerClosed(): void {
    const producer = this.#slot.release();
    if (producer !== null) stopProducer(producer);
    this.loseConnection();
  }

  #abort(reason: Failure): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#slot.close();
    this.#disconnecting = true;
    this.#writable = false;
    this.#socket.destroy();
    this.#reactor.callLater(0, StreamTransport.#deliverLost, this, reason);
  }

  /** The protocol threw from a callback: log it and drop the connection, as Twisted does. */
  #protocolFailed(error: unknown, where: string): void {
    err(error, `Unhandled error in protocol.${where}()`);
    this.#abort(
      new Failure(new ConnectionLost(`protocol.${where}() raised an error`, { cause: error })),
    );
  }

  /** Lets go of the protocol, the owner and the producer (returned: the caller stops it). */
  #dropReferences(): IPushProducer | IPullProducer | null {
    this.#tls?.cancelTimer();
    this.#protocol = NULL_PROTOCOL;
    this.#owner = null;
    this.#slot.close();
    return this.#slot.release();
  }

  /** Runs once per transport: stops the producer, tells the protocol, then the owner. */
  #notifyLost(reason: Failure): void {
    const protocol = this.#protocol;
    const owner = this.#owner;
    this.#disconnecting = true;
    this.#writable = false;
    const producer = this.#dropReferences();
    if (producer !== null) stopProducer(producer);
    try {
      protocol.connectionLost(reason);
    } catch (e) {
      err(e, 'Unhandled error in protocol.connectionLost()');
    }
    if (owner !== null) {
      try {
        owner.connectionClosed(this, reason);
      } catch (e) {
        err(e, 'Unhandled error in connectionClosed()');
      }
    }
  }
}
