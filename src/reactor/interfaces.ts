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

/** TLS servers and clients (contextOptions are `node:tls` options). */
export interface IReactorTLS {
  listenSSL(
    port: number,
    factory: IProtocolFactory,
    contextOptions: object,
    options?: ListenTCPOptions,
  ): IListeningPort;
  connectSSL(
    host: string,
    port: number,
    factory: IClientFactory,
    contextOptions: object,
    options?: ConnectTCPOptions,
  ): IConnector;
}

/** A datagram protocol's transport (UDP). */
export interface IUDPTransport {
  write(data: Uint8Array | string, addr?: readonly [string, number]): void;
  connect(host: string, port: number): void;
  getHost(): IAddress;
  stopListening(): Deferred<void>;
}

/** A handler of datagrams. */
export interface IDatagramProtocol {
  makeConnection(transport: IUDPTransport): void;
  datagramReceived(data: Buffer, addr: readonly [string, number]): void;
}

/** UDP. */
export interface IReactorUDP {
  listenUDP(
    port: number,
    protocol: IDatagramProtocol,
    options?: { interface?: string },
  ): IListeningPort;
}

/** Child processes. */
export interface IReactorProcess {
  spawnProcess(
    protocol: object,
    executable: string,
    args: readonly string[],
    options?: { env?: Record<string, string>; path?: string; usePTY?: false },
  ): object;
}
