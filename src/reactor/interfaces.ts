/**
 * The contracts between the reactor, transports, protocols, producers and
 * consumers. Contracts only: no implementation lives here.
 *
 * Each member says who calls it, when, how often, and what it throws, as
 * Twisted's `twisted.internet.interfaces` does. Names follow Twisted so that a
 * Twisted user finds `dataReceived`, `connectionLost` and `registerProducer`
 * where they expect them.
 *
 * @module
 */

import type { Socket } from 'node:net';
import type { ConnectionOptions, PeerCertificate, TlsOptions } from 'node:tls';
import type { Deferred } from './deferred.js';
import type { Failure } from './failure.js';

// ====================================================================== addresses

/** An endpoint address: `'TCP'`/`'UDP'` addresses have host and port; `'UNIX'` a path. */
export interface IAddress {
  /** The transport kind this address belongs to. */
  readonly type: 'TCP' | 'UDP' | 'UNIX';
}

// ====================================================================== time

/**
 * A call scheduled with {@link IReactorTime.callLater}.
 *
 * A delayed call is *active* from the moment it is scheduled until it runs or is
 * cancelled; `cancel`, `delay` and `reset` are only valid while it is active.
 */
export interface IDelayedCall {
  /** The reactor time (seconds, see {@link IReactorTime.seconds}) at which it will run. */
  getTime(): number;

  /**
   * Prevents the call from running.
   * @throws AlreadyCancelled if it was cancelled already.
   * @throws AlreadyCalled if it has already run.
   */
  cancel(): void;

  /**
   * Moves the call `secondsLater` seconds later (negative moves it earlier).
   * @throws AlreadyCancelled / AlreadyCalled when it is no longer active.
   */
  delay(secondsLater: number): void;

  /**
   * Reschedules the call to run `secondsFromNow` seconds from now.
   * @throws AlreadyCancelled / AlreadyCalled when it is no longer active.
   */
  reset(secondsFromNow: number): void;

  /** `true` until the call has run or been cancelled. */
  active(): boolean;
}

/**
 * Time: a monotonic clock in seconds and calls scheduled against it.
 *
 * Calls scheduled for the same time run in the order they were scheduled. A
 * call scheduled (or reset) from inside a running call never runs in that same
 * pass, even with a delay of 0: it waits for the next turn of the loop.
 */
export interface IReactorTime {
  /** Monotonic time in seconds (a float). Only differences are meaningful. */
  seconds(): number;

  /**
   * Runs `fn(...args)` once, `delay` seconds from now (0 means: on the next
   * turn, after pending I/O). An exception from `fn` is logged, never thrown
   * into the reactor.
   * @throws InvalidArgumentError if `delay` is negative or not a finite number.
   */
  callLater<A extends unknown[]>(
    delay: number,
    fn: (...args: A) => unknown,
    ...args: A
  ): IDelayedCall;

  /** Every delayed call that is still active, in no particular order. */
  getDelayedCalls(): IDelayedCall[];
}

// ====================================================================== core

/** The phases of a system event, run in this order. */
export type TriggerPhase = 'before' | 'during' | 'after';

/** The system events a reactor fires. Users may fire their own with `fireSystemEvent`. */
export type SystemEvent = 'startup' | 'shutdown' | (string & {});

/** Opaque handle returned by {@link IReactorCore.addSystemEventTrigger}. */
export type TriggerId = object;

/**
 * Running and stopping, and the start-up/shutdown triggers around them.
 *
 * Firing a system event runs all `before` triggers, then all `during`, then all
 * `after`. A trigger may return a Deferred (or any thenable): the next phase
 * waits until every Deferred returned in the current phase has fired. A
 * trigger that throws or whose Deferred fails is logged and does not stop the
 * event.
 */
export interface IReactorCore {
  /** `true` between `run()` and the end of the shutdown event. */
  readonly running: boolean;

  /**
   * Starts the reactor: fires the `startup` event, then the calls queued with
   * `callWhenRunning`. Returns at once (Node's event loop already runs); the
   * returned Deferred fires when the reactor has stopped.
   * @throws ReactorAlreadyRunning if it is running.
   */
  run(options?: { installSignalHandlers?: boolean }): Deferred<void>;

  /**
   * Stops the reactor: fires the `shutdown` event (the `before` phase closes
   * nothing itself; `during` stops listening ports; `after` runs last).
   * @throws ReactorNotRunning if it is not running, or already stopping.
   */
  stop(): void;

  /**
   * Runs `fn(...args)` when the reactor starts, or at once if it is already
   * running. Returns an id for `removeSystemEventTrigger` while it is pending.
   */
  callWhenRunning<A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId | undefined;

  /**
   * Adds `fn(...args)` to `phase` of `event`. Returns an id that
   * `removeSystemEventTrigger` takes.
   */
  addSystemEventTrigger<A extends unknown[]>(
    phase: TriggerPhase,
    event: SystemEvent,
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId;

  /**
   * Removes a trigger added with `addSystemEventTrigger`.
   * @throws InvalidArgumentError if the id is unknown or was already removed.
   */
  removeSystemEventTrigger(id: TriggerId): void;

  /** Fires a system event now: its triggers, phase by phase. Resolves when all have run. */
  fireSystemEvent(event: SystemEvent): Deferred<void>;
}

// ====================================================================== producers and consumers

/**
 * Something that produces data for a consumer and can be stopped.
 *
 * After `stopProducing()` the producer writes nothing more; it is called at
 * most once, by the consumer, when the consumer closes.
 */
export interface IProducer {
  stopProducing(): void;
}

/**
 * A producer that writes on its own (a socket read loop, a timer) until told to
 * pause. Producers start unpaused. `pauseProducing` may be called when already
 * paused; `resumeProducing` only undoes a pause (calling it on a running
 * producer is harmless).
 */
export interface IPushProducer extends IProducer {
  /** Stop writing to the consumer until `resumeProducing()`. */
  pauseProducing(): void;
  /** Start writing again after `pauseProducing()`. */
  resumeProducing(): void;
}

/**
 * A producer that writes only when asked: the consumer calls
 * `resumeProducing()` each time it wants more data (once per drain of its
 * buffer), and the producer writes some (a chunk) in response.
 */
export interface IPullProducer extends IProducer {
  /** Produce one more chunk of data now. */
  resumeProducing(): void;
}

/**
 * Something data can be written into, with flow control toward one producer.
 *
 * With a streaming producer registered, the consumer calls `pauseProducing()`
 * when its buffer passes its high-water mark and `resumeProducing()` when the
 * buffer has drained. With a pull producer (`streaming = false`) it calls
 * `resumeProducing()` once straight away and once every time its buffer
 * drains. Registering while a producer is registered throws
 * `ProducerAlreadyRegistered`. After the consumer closes, the producer's
 * `stopProducing()` is called once.
 */
export interface IConsumer {
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void;
  unregisterProducer(): void;
  write(data: Uint8Array | string): void;
}

// ====================================================================== transports

/**
 * A connection's write side and control, as seen by its protocol.
 *
 * `write` never blocks and never fails synchronously for I/O reasons: data is
 * buffered and sent in order. After `loseConnection()` (or once the connection
 * is lost) writes are an error: `TransportClosedError`.
 */
export interface ITransport {
  /** Sends `data` (strings are UTF-8). Empty data is ignored. */
  write(data: Uint8Array | string): void;

  /** Sends the buffers in order, as one write where the transport can. */
  writeSequence(data: ReadonlyArray<Uint8Array | string>): void;

  /**
   * Closes the connection once everything written has been sent (and, with a
   * producer registered, after it is unregistered). The protocol's
   * `connectionLost` follows, with `ConnectionDone`. Calling it again does nothing.
   */
  loseConnection(): void;

  /**
   * Closes the connection at once, discarding unsent data. `connectionLost`
   * is delivered on a later turn (never inside the caller's stack), with
   * `ConnectionAborted`.
   */
  abortConnection(): void;

  /** The remote end's address. */
  getPeer(): IAddress;

  /** This end's address. */
  getHost(): IAddress;
}

/**
 * A connected stream transport: TCP or UNIX. It is a consumer for its writes
 * and a push producer for its reads (`pauseProducing` stops reading the socket).
 */
export interface IStreamTransport extends ITransport, IConsumer, IPushProducer {
  /** `true` once `loseConnection()` has been called or the connection is gone. */
  readonly disconnecting: boolean;

  /**
   * Bytes written but not yet handed to the kernel. A registered streaming
   * producer is paused when this passes the high-water mark.
   */
  readonly bufferedAmount: number;

  /**
   * Half-close: sends FIN once the write buffer has flushed, keeps reading.
   * The protocol gets `writeConnectionLost()` if it has one.
   */
  loseWriteConnection(): void;

  /**
   * Takes the socket away from the reactor: the protocol is no longer called
   * (no `connectionLost`), and the caller owns the returned socket, which is
   * left paused and not in flowing mode, plus `head`, the bytes read but not
   * yet delivered to the protocol (empty unless the transport was paused).
   * @throws TransportClosedError once the connection is closed.
   */
  detach(): { socket: Socket; head: Buffer };
}

/** A TCP connection's transport. */
export interface ITCPTransport extends IStreamTransport {
  setTcpNoDelay(enabled: boolean): void;
  getTcpNoDelay(): boolean;
  setTcpKeepAlive(enabled: boolean, initialDelaySeconds?: number): void;
  getTcpKeepAlive(): boolean;
}

// ====================================================================== protocols and factories

/**
 * The per-connection handler. The reactor calls, in order: `makeConnection`
 * once, `dataReceived` zero or more times (never re-entrantly), and
 * `connectionLost` exactly once.
 */
export interface IProtocol {
  /** Attaches the transport and calls `connectionMade()`. Called once. */
  makeConnection(transport: ITransport): void;

  /** The connection is up; the transport is set. */
  connectionMade(): void;

  /**
   * Some bytes arrived. Message boundaries are not preserved: a message may
   * arrive split across calls, or several in one. The buffer belongs to the
   * protocol from then on.
   */
  dataReceived(data: Buffer): void;

  /**
   * The connection is closed. `reason` wraps `ConnectionDone` when it closed
   * cleanly, `ConnectionLost` (or a subclass) otherwise. Called exactly once.
   */
  connectionLost(reason: Failure): void;
}

/** A protocol that wants to know about half-closes (`allowHalfOpen`). */
export interface IHalfCloseableProtocol extends IProtocol {
  /** The peer will send no more data (it sent FIN); writes still work. */
  readConnectionLost(): void;
  /** `loseWriteConnection()` completed: our FIN went out. */
  writeConnectionLost(): void;
}

/**
 * Makes protocols for a listening port or a connector. `doStart` is called when
 * the first port or connector starts using the factory and `doStop` when the
 * last one stops (counted).
 */
export interface IProtocolFactory {
  /**
   * Returns a protocol for a new connection from/to `addr`, or `null` to refuse
   * it (the connection is closed at once).
   */
  buildProtocol(addr: IAddress): IProtocol | null;
  doStart(): void;
  doStop(): void;
}

/** Establishes (and re-establishes) one client connection. */
export interface IConnector {
  /** Stops a connection attempt in progress (`clientConnectionFailed` gets `UserError`). */
  stopConnecting(): void;
  /** Closes the connection, or stops the attempt if still connecting. */
  disconnect(): void;
  /** Tries to connect again (after a failure or loss). */
  connect(): void;
  /** Where it connects to. */
  getDestination(): IAddress;
  /** `'disconnected' | 'connecting' | 'connected'`. */
  readonly state: 'disconnected' | 'connecting' | 'connected';
}

/** The factory side of a client connection. */
export interface IClientFactory extends IProtocolFactory {
  /** A connection attempt started. */
  startedConnecting(connector: IConnector): void;
  /** The attempt failed: `reason` wraps a `ConnectError` subclass. */
  clientConnectionFailed(connector: IConnector, reason: Failure): void;
  /** An established connection was closed: `reason` as in `connectionLost`. */
  clientConnectionLost(connector: IConnector, reason: Failure): void;
}

/** A bound, listening server socket. */
export interface IListeningPort {
  /** The bound address (with the real port when 0 was asked). */
  getHost(): IAddress;

  /**
   * Fires once the port is bound (at once for IP literals: binding is
   * synchronous there), or fails with `CannotListenError`.
   */
  whenListening(): Deferred<this>;

  /**
   * Stops accepting connections. Open connections are not closed. Fires once
   * the socket is closed; calling it again returns a Deferred that fires at
   * the same time.
   */
  stopListening(): Deferred<void>;
}

// ====================================================================== reactor families

/** Options of `listenTCP`. */
export interface ListenTCPOptions {
  /** Pending-connection queue length (default 50, as Twisted). */
  backlog?: number;
  /** The interface to bind: `''` (all IPv4), `'::'`, `'127.0.0.1'`… Default `''`. */
  interface?: string;
}

/** Options of `connectTCP`. */
export interface ConnectTCPOptions {
  /** Seconds before the attempt fails with `ConnectTimeoutError` (default 30). */
  timeout?: number;
  /** Local `[host, port]` to bind before connecting. */
  bindAddress?: readonly [string, number];
}

/** TCP servers and clients. */
export interface IReactorTCP {
  listenTCP(port: number, factory: IProtocolFactory, options?: ListenTCPOptions): IListeningPort;
  connectTCP(
    host: string,
    port: number,
    factory: IClientFactory,
    options?: ConnectTCPOptions,
  ): IConnector;
}

/** Options of `listenUNIX`. */
export interface ListenUNIXOptions {
  backlog?: number;
  /** File mode of the socket, e.g. `0o660`. */
  mode?: number;
  /** Remove a stale socket file left by a dead process (default true). */
  wantPID?: boolean;
}

/** UNIX-domain stream servers and clients. */
export interface IReactorUNIX {
  listenUNIX(path: string, factory: IProtocolFactory, options?: ListenUNIXOptions): IListeningPort;
  connectUNIX(path: string, factory: IClientFactory, options?: { timeout?: number }): IConnector;
}

// ---------------------------------------------------------------------- TLS

/**
 * A TLS server's context: `node:tls` server options (`key`, `cert`, `ca`,
 * `requestCert`, `rejectUnauthorized`, `ALPNProtocols`, `SNICallback`,
 * `minVersion`…), as given to `tls.createServer`, without the socket options
 * the reactor sets itself. (The handshake timeout is an option of
 * `listenSSL`/`startTLS`, in seconds.)
 */
export type TLSServerContextOptions = Omit<
  TlsOptions,
  | 'handshakeTimeout'
  | 'allowHalfOpen'
  | 'pauseOnConnect'
  | 'noDelay'
  | 'keepAlive'
  | 'keepAliveInitialDelay'
  | 'highWaterMark'
>;

/**
 * A TLS client's context: `node:tls` connect options (`ca`, `cert`, `key`,
 * `servername`, `rejectUnauthorized` (default `true`), `checkServerIdentity`,
 * `ALPNProtocols`, `session`, `minVersion`…) without the ones the reactor
 * sets itself (where to connect, the socket, the timeout).
 */
export type TLSClientContextOptions = Omit<
  ConnectionOptions,
  'host' | 'port' | 'path' | 'socket' | 'timeout' | 'lookup' | 'allowHalfOpen' | 'onread'
>;

/** Options of `listenSSL`, beyond those of `listenTCP`. */
export interface ListenSSLOptions extends ListenTCPOptions {
  /**
   * Seconds a client has to complete the handshake after the TCP accept
   * (default 30); past it the socket is destroyed and `onHandshakeError`
   * gets a `TLSHandshakeError` wrapping `ERR_TLS_HANDSHAKE_TIMEOUT`.
   */
  handshakeTimeout?: number;
  /**
   * Told about each accepted client whose handshake failed (not TLS at all,
   * no common protocol or cipher, a rejected client certificate, a hang-up,
   * the timeout). Such clients never reach the factory: their socket is
   * destroyed. Default: nothing is logged (scanners and plaintext clients
   * are routine on a TLS port).
   */
  onHandshakeError?: (error: Error) => void;
}

/**
 * Options of `transport.startTLS()`: the `node:tls` context of the side this
 * end plays, plus the switch's own settings.
 */
export type StartTLSOptions = (
  | ({ readonly isServer: true } & TLSServerContextOptions)
  | ({ readonly isServer?: false } & TLSClientContextOptions)
) & {
  /**
   * Bytes the protocol already received that belong to the TLS stream (a
   * handshake record that arrived in the same read as the command that
   * started TLS); they are fed to TLS before anything else read afterwards.
   */
  readonly head?: Uint8Array;
  /**
   * Seconds the handshake may take (default 30; `Infinity`: no limit). Past
   * it the connection is dropped with a `TLSError`.
   */
  readonly handshakeTimeout?: number;
};

/**
 * A protocol that wants to know when a `startTLS()` handshake has completed
 * (Twisted's `IHandshakeListener`). Over `listenSSL`/`connectSSL` the
 * handshake completes before `connectionMade`, so this is not called there.
 */
export interface IHandshakeListener extends IProtocol {
  /**
   * The handshake begun by `transport.startTLS()` completed: from now on
   * `getPeerCertificate()` answers. Called once, before any decrypted data.
   */
  handshakeCompleted(): void;
}

/**
 * A TCP transport that speaks, or can switch to, TLS (Twisted's
 * `ISSLTransport` plus `ITLSTransport`).
 */
export interface ITLSTransport extends ITCPTransport {
  /**
   * Whether the connection is TLS now (Twisted's `ISSLTransport`): `true`
   * for a connection made by `listenSSL`/`connectSSL` (from
   * `connectionMade` on) and after a `startTLS()` handshake has completed
   * (from `handshakeCompleted()` on); `false` before, while the handshake
   * runs and if it fails. It stays as it was once the connection is closed
   * or detached (it tells what the connection was).
   */
  readonly secure: boolean;

  /**
   * Switches the connection to TLS (STARTTLS), playing the server side with
   * `{ isServer: true }` (which then needs `key`/`cert`) and the client side
   * otherwise. Bytes written before the call go out in plaintext first;
   * bytes written after it are queued and go out encrypted, in order, once
   * the handshake completes. Bytes already received but not yet delivered to
   * the protocol (it was paused), and `options.head`, are fed to TLS; the
   * protocol goes on receiving `dataReceived` with decrypted bytes, with the
   * same pause state, and a registered producer stays registered (its flow
   * control now follows the encrypted stream). `loseConnection()` and
   * `loseWriteConnection()` during the handshake take effect after it.
   * When the handshake completes, a protocol with `handshakeCompleted()`
   * ({@link IHandshakeListener}) is told. When it fails (certificate
   * rejected, no common protocol, peer hung up, timeout), the connection is
   * closed and the protocol gets `connectionLost` with a `TLSError`.
   * @throws TransportClosedError after `loseConnection()`,
   *   `loseWriteConnection()`, `abortConnection()`, `detach()` or the loss.
   * @throws InvalidArgumentError if TLS was already started, or for bad
   *   options (a server side without a usable key and certificate).
   */
  startTLS(options?: StartTLSOptions): void;

  /**
   * The peer's certificate (`tls.TLSSocket#getPeerCertificate(detailed)`),
   * or `null` when the connection is not TLS (yet), the peer sent none, or
   * the connection is closed.
   */
  getPeerCertificate(detailed?: boolean): PeerCertificate | null;
}

/**
 * TLS servers and clients over `node:tls`, with the TCP transport contract
 * (producers, half-close, `connectionLost` once) plus {@link ITLSTransport}.
 *
 * Unlike Twisted, where the protocol is connected at the TCP accept and
 * learns of a failed handshake through `connectionLost`, a TLS connection
 * reaches the factory only once the handshake has completed: a server's
 * `buildProtocol` is called for clients that completed it (the others are
 * dropped, see `ListenSSLOptions.onHandshakeError`), and a client whose
 * handshake fails gets `clientConnectionFailed` with a `TLSHandshakeError`
 * (a `ConnectError`). Failures after that (with TLS 1.3, a server rejecting
 * the client's certificate; an alert; a corrupt record) arrive as
 * `connectionLost` with a `TLSError`.
 */
export interface IReactorTLS {
  /**
   * Listens for TLS connections on TCP `port`, as `listenTCP` (same binding
   * and `getHost()` rules) with each accepted socket's handshake run before
   * the factory sees it.
   * @throws InvalidArgumentError (`TLSContextError`) when `contextOptions`
   *   does not make a usable server context; as `listenTCP` otherwise.
   */
  listenSSL(
    port: number,
    factory: IProtocolFactory,
    contextOptions: TLSServerContextOptions,
    options?: ListenSSLOptions,
  ): IListeningPort;

  /**
   * Connects to `host:port` over TLS, verifying the server's certificate
   * against `contextOptions.ca` (or Node's default roots) and `host` (or
   * `contextOptions.servername`), unless `rejectUnauthorized: false`. The
   * timeout covers the TCP connect and the handshake.
   * @throws InvalidArgumentError as `connectTCP`.
   */
  connectSSL(
    host: string,
    port: number,
    factory: IClientFactory,
    contextOptions: TLSClientContextOptions,
    options?: ConnectTCPOptions,
  ): IConnector;
}

// ====================================================================== datagrams (UDP)

/** A datagram's source or destination: an IP literal and a port. */
export type DatagramAddress = readonly [host: string, port: number];

/**
 * A UDP socket as its datagram protocol sees it (Twisted's `IUDPTransport`).
 *
 * The socket is bound before the protocol gets it, and stays usable until
 * `stopListening()`; after that every method but `getHost` and the getters
 * throws `TransportClosedError`. Addresses are IP literals of the socket's
 * family (an IPv4 socket takes IPv4 literals, an IPv6 socket IPv6 ones, v4-mapped
 * included): host names are refused, as in Twisted, because a lookup per
 * datagram would reorder them.
 */
export interface IUDPTransport {
  /**
   * Sends `data` as one datagram (strings are UTF-8; an empty datagram is
   * sent, not ignored) to `addr`, or to the connected peer. Never blocks.
   * Failures the kernel reports later (unreachable network, refused on a
   * connected socket…) never throw: a connected socket's refusal calls the
   * protocol's `connectionRefused()`, the rest are reported as the
   * implementation documents (torsion: the port's `'sendError'` event, or the
   * log).
   * @throws DestinationRequiredError when `addr` is missing on an unconnected socket.
   * @throws InvalidArgumentError for a host that is not an IP literal of the
   *   socket's family, a bad port, or an `addr` other than the peer on a
   *   connected socket.
   * @throws MessageLengthError when `data` cannot fit in one datagram.
   * @throws TransportClosedError after `stopListening()`.
   */
  write(data: Uint8Array | string, addr?: DatagramAddress): void;

  /**
   * Connected UDP: from now on only datagrams from `host:port` are delivered,
   * and `write` needs no address. Takes effect before it returns. Can be
   * called once (Twisted's rule).
   * @throws AlreadyConnectedError on a second call.
   * @throws InvalidArgumentError for a host that is not an IP literal of the
   *   socket's family or a port outside 1–65535.
   * @throws TransportClosedError after `stopListening()`.
   */
  connect(host: string, port: number): void;

  /** The bound address (`type` `'UDP'`, with the real port when 0 was asked). */
  getHost(): IAddress;

  /**
   * Closes the socket: no datagram is delivered from this call on; the
   * protocol's `doStop()` follows, then the returned Deferred fires. Every
   * call returns a Deferred firing at that same moment.
   */
  stopListening(): Deferred<void>;

  /** Allows or forbids sending to broadcast addresses (`SO_BROADCAST`; default off). */
  setBroadcastAllowed(enabled: boolean): void;

  /** Whether broadcast was allowed with `setBroadcastAllowed` (default `false`). */
  getBroadcastAllowed(): boolean;
}

/**
 * Multicast control of a UDP socket (Twisted's `IMulticastTransport`). The
 * setters take effect at once; the getters report what was last set (the
 * kernel defaults until then). After `stopListening()` they throw
 * `TransportClosedError`.
 */
export interface IMulticastTransport extends IUDPTransport {
  /** The interface (IP literal) multicast is sent from; `''` for the kernel's choice. */
  getOutgoingInterface(): string;

  /**
   * Sends multicast from the interface with address `addr`. The Deferred is
   * already fired: succeeded, or failed with `MulticastJoinError`.
   */
  setOutgoingInterface(addr: string): Deferred<void>;

  /** Whether our own multicast datagrams are looped back to us (default `true`). */
  getLoopbackMode(): boolean;

  /** Enables or disables multicast loopback (`IP_MULTICAST_LOOP`). */
  setLoopbackMode(mode: boolean): void;

  /** The multicast time-to-live (default 1). */
  getTTL(): number;

  /**
   * Sets the multicast time-to-live, 0–255 (`IP_MULTICAST_TTL`).
   * @throws InvalidArgumentError outside that range.
   */
  setTTL(ttl: number): void;

  /**
   * Joins the multicast group `addr` on the interface with address `iface`
   * (default: the kernel's choice). The Deferred is already fired: succeeded,
   * or failed with `MulticastJoinError` (not a multicast address, already
   * joined, no such interface…).
   */
  joinGroup(addr: string, iface?: string): Deferred<void>;

  /** Leaves a group joined with `joinGroup`; fails as `joinGroup` does (not joined…). */
  leaveGroup(addr: string, iface?: string): Deferred<void>;
}

/**
 * A handler of datagrams (Twisted's `AbstractDatagramProtocol`). One protocol
 * may serve several ports. The reactor calls, in order: `makeConnection` once
 * per port (when it is bound, before `listenUDP` returns),
 * `datagramReceived` zero or more times (never re-entrantly),
 * `connectionRefused` (connected sockets only) any number of times, and
 * `doStop` once per port, after the port stopped listening. An exception from
 * a callback is logged; the port keeps running.
 */
export interface IDatagramProtocol {
  /** The port is bound; `transport` is it. */
  makeConnection(transport: IMulticastTransport): void;

  /**
   * One datagram arrived from `addr` (an IP literal and port). The buffer is
   * the protocol's to keep. Datagrams are whole: never split or joined.
   */
  datagramReceived(data: Buffer, addr: DatagramAddress): void;

  /**
   * A connected socket's peer refused a datagram (an ICMP port-unreachable
   * came back). Datagrams sent after it may still be delivered.
   */
  connectionRefused(): void;

  /** The port this protocol was connected to has stopped listening. */
  doStop(): void;
}

/** Options of `listenUDP`. */
export interface ListenUDPOptions {
  /**
   * The IP literal to bind: `''` (default) for all IPv4 interfaces, `'::'`
   * for all IPv6 (and IPv4) ones, `'127.0.0.1'`, `'::1'`… An IPv6 literal
   * makes an IPv6 socket. Host names are refused.
   */
  interface?: string;
  /**
   * Datagrams longer than this are truncated to it, as `recvfrom` with a
   * buffer of this size would (default 65535: nothing is truncated).
   */
  maxPacketSize?: number;
  /** Let several sockets bind the same port (`SO_REUSEADDR`), as multicast listeners do. */
  listenMultiple?: boolean;
}

/** UDP sockets. */
export interface IReactorUDP {
  /**
   * Binds a UDP socket to `port` (0 picks a free one) and connects
   * `protocol` to it before returning.
   * @throws InvalidArgumentError for a bad port, interface or option.
   */
  listenUDP(
    port: number,
    protocol: IDatagramProtocol,
    options?: ListenUDPOptions,
  ): IListeningPort & IMulticastTransport;
}

// ====================================================================== child processes

type Unprefixed<S> = S extends `SIG${infer Name}` ? Name : never;

/**
 * A signal for `signalProcess`: a name with or without `SIG` (`'TERM'`,
 * `'SIGTERM'`), or a number.
 */
export type ProcessSignal = NodeJS.Signals | Unprefixed<NodeJS.Signals> | number;

/**
 * What a child's file descriptor is connected to (Twisted's `childFDs`
 * values): `'r'`, a pipe the parent reads (the child writes); `'w'`, a pipe
 * the parent writes (the child reads); a number, that file descriptor of the
 * parent, shared with the child.
 */
export type ChildFD = 'r' | 'w' | number;

/** Options of `spawnProcess`. */
export interface SpawnProcessOptions {
  /**
   * The child's whole environment. Default: the parent's (`process.env`);
   * given, nothing else is passed (unlike Twisted, whose default is empty).
   */
  env?: Readonly<Record<string, string>>;
  /** The child's working directory (default: the parent's). */
  path?: string;
  /** User id to run the child as. */
  uid?: number;
  /** Group id to run the child as. */
  gid?: number;
  /** Must be `false` (or absent): pseudo-terminals are not supported. */
  usePTY?: boolean;
  /**
   * The child's file descriptors, by number (default
   * `{ 0: 'w', 1: 'r', 2: 'r' }`). Numbers left out are closed in the child,
   * except 0–2, which are connected to `/dev/null`.
   */
  childFDs?: Readonly<Record<number, ChildFD>>;
}

/**
 * A running child process, as its process protocol sees it (Twisted's
 * `IProcessTransport`).
 *
 * Writes go to the child's standard input (fd 0) or, with `writeToChild`, to
 * another fd the parent writes; the transport is an {@link IConsumer} of its
 * stdin with flow control exactly as a TCP transport's writes, and an
 * {@link IPushProducer} of the pipes the parent reads: `pauseProducing()`
 * stops reading the child's stdout/stderr (the child then blocks once the
 * pipe is full).
 */
export interface IProcessTransport extends IConsumer, IPushProducer {
  /**
   * The child's process id while it runs; `null` once it has exited (before
   * `processExited`) or if it could not be started.
   */
  readonly pid: number | null;

  /**
   * Writes to the child's stdin (strings as UTF-8); empty data is ignored.
   * @throws TransportClosedError once stdin is closed: after `closeStdin()`
   *   (unless a producer registered before it is still writing) or after
   *   `childConnectionLost(0)`.
   */
  write(data: Uint8Array | string): void;

  /** Writes the buffers in order, as `write` does. */
  writeSequence(data: ReadonlyArray<Uint8Array | string>): void;

  /**
   * Writes to the child's fd `childFD`, which must be a `'w'` pipe.
   * @throws InvalidArgumentError if `childFD` is not a pipe the parent writes.
   * @throws TransportClosedError once that pipe is closed.
   */
  writeToChild(childFD: number, data: Uint8Array | string): void;

  /**
   * Closes the parent's end of the pipe at `childFD`: a write pipe after the
   * buffered data has been flushed (and after a registered producer
   * unregisters, for stdin), a read pipe at once (unread output is dropped;
   * the child may get `SIGPIPE`). `childConnectionLost(childFD)` follows.
   * Does nothing for an fd that is not a pipe or is already closed.
   */
  closeChildFD(childFD: number): void;

  /** `closeChildFD(0)`: the child reads end-of-file once it has read what was written. */
  closeStdin(): void;

  /** `closeChildFD(1)`. */
  closeStdout(): void;

  /** `closeChildFD(2)`. */
  closeStderr(): void;

  /** Closes stdin, stderr and stdout, in that order. Does not signal the child. */
  loseConnection(): void;

  /**
   * Sends `signal` to the child.
   * @throws ProcessExitedAlready if the child has exited (or never started).
   * @throws InvalidArgumentError for an unknown signal.
   */
  signalProcess(signal: ProcessSignal): void;
}

/**
 * A child process's handler (Twisted's `IProcessProtocol`). The reactor calls,
 * in order: `makeConnection` once (inside `spawnProcess`); then, interleaved,
 * `childDataReceived` for output, `childConnectionLost(fd)` once per pipe as
 * each closes, and `processExited(reason)` once when the child exits; and
 * last, `processEnded(reason)` exactly once, when the child has exited and
 * every pipe has closed. `reason` wraps `ProcessDone` (exit code 0) or
 * `ProcessTerminated` (another exit code, or a signal); for a child that
 * could not be started, `ProcessSpawnError`, given to both `processExited`
 * and `processEnded`. Exceptions from these callbacks are logged.
 */
export interface IProcessProtocol {
  /** The child has been started (or its start has been attempted); `transport` controls it. */
  makeConnection(transport: IProcessTransport): void;
  /** The child wrote `data` to the pipe at its fd `childFD` (1: stdout, 2: stderr). */
  childDataReceived(childFD: number, data: Buffer): void;
  /** The pipe at the child's fd `childFD` has closed (either end closed it). */
  childConnectionLost(childFD: number): void;
  /** The child has exited; pipes may still be open (a grandchild may hold them). */
  processExited(reason: Failure): void;
  /** The child has exited and all its pipes have closed. Called exactly once, last. */
  processEnded(reason: Failure): void;
}

/** Child processes. */
export interface IReactorProcess {
  /**
   * Starts `executable` with `args` (as Twisted: `args[0]` is the child's
   * `argv[0]`, its name; default `[executable]`), no shell, and connects
   * `protocol` to it before returning.
   * @throws InvalidArgumentError for bad arguments or options.
   * @throws PTYNotSupportedError for `usePTY: true`.
   */
  spawnProcess(
    protocol: IProcessProtocol,
    executable: string,
    args?: readonly string[],
    options?: SpawnProcessOptions,
  ): IProcessTransport;
}
