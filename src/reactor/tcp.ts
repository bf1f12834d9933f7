/**
 * TCP servers and clients: `listenTCP` and `connectTCP`, and the {@link Port}
 * and {@link Connector} classes they return.
 *
 * `Port` and `Connector` are shared with UNIX-domain sockets (`unix.ts`): what
 * differs (how to bind, how to name the ends) is a small spec object.
 * Connections are {@link StreamTransport}s.
 *
 * @module
 */

import net, { type NetConnectOpts, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { IPv4Address, IPv6Address, inetAddress } from './address.js';
import { Deferred, fail, succeed } from './deferred.js';
import {
  CannotListenError,
  ConnectError,
  ConnectionRefusedError,
  ConnectTimeoutError,
  DNSLookupError,
  InvalidArgumentError,
  NotConnectingError,
  TorsionError,
  UserError,
} from './errors.js';
import { Failure } from './failure.js';
import type {
  ConnectTCPOptions,
  IAddress,
  IClientFactory,
  IConnector,
  IDelayedCall,
  IListeningPort,
  IProtocol,
  IProtocolFactory,
  IReactorTime,
  ListenTCPOptions,
} from './interfaces.js';
import { err } from './log.js';
import {
  type ConnectionOwner,
  ignoreSocketErrors,
  NullProtocol,
  StreamTransport,
} from './stream.js';

/** Options every stream port and connector takes, beyond the family's own. */
export interface StreamOptions {
  /**
   * Unflushed bytes above which a connection's streaming producer is paused
   * (default 64 KiB).
   */
  highWaterMark?: number;
}

/** Default seconds before a connection attempt fails with `ConnectTimeoutError`. */
export const DEFAULT_CONNECT_TIMEOUT = 30;

/** Default listen backlog, as Twisted. */
export const DEFAULT_BACKLOG = 50;

// ====================================================================== specs

/**
 * What a {@link Port} needs to know about its address family. Built by
 * `listenTCP` and `listenUNIX`; not meant for users.
 */
export interface ListenSpec {
  /** For `CannotListenError`: the interface asked for (`'unix'` for UNIX ports). */
  readonly iface: string;
  /** For `CannotListenError`: the port asked for (the path for UNIX ports). */
  readonly port: number | string;
  /** Starts binding `server`; synchronously where Node allows it. */
  bind(server: Server): void;
  /** The bound address (`server` is listening), or the requested one (`server` null). */
  address(server: Server | null): IAddress;
  /** The remote address of an accepted socket. */
  peerOf(socket: Socket): IAddress;
  /** The local address of an accepted socket, or `undefined` to read it from the socket. */
  hostOf(socket: Socket): IAddress | undefined;
  /** Runs once bound (UNIX: `chmod`); a throw fails the bind. */
  bound?(server: Server): void;
  /**
   * A bind failed with `error`; resolves `true` if it cleared the cause (UNIX:
   * removed a stale socket file) and the bind should be tried once more.
   */
  recover?(error: NodeJS.ErrnoException): Promise<boolean>;
}

/** What a {@link Connector} needs to know about its address family. */
export interface ConnectSpec {
  /** What `getDestination()` returns. */
  readonly destination: IAddress;
  /** Given to `net.connect` (with `allowHalfOpen: true` added). */
  readonly options: NetConnectOpts;
  /** The remote address of the connected socket. */
  peerOf(socket: Socket): IAddress;
  /** The local address of the connected socket, or `undefined` to read it from the socket. */
  hostOf(socket: Socket): IAddress | undefined;
}

// ====================================================================== Port

/** Events of a {@link Port}, for observers. */
export interface PortEvents {
  /** The port is bound and accepting (emitted on a later turn than `listenTCP`'s return). */
  listening: [];
  /** A connection was accepted and its protocol connected (after `connectionMade`). */
  connection: [transport: StreamTransport];
  /** The port stopped listening (when `stopListening()`'s Deferred fires). */
  close: [];
  /** Binding failed. */
  error: [error: CannotListenError];
}

const BINDING = 0;
const LISTENING = 1;
const FAILED = 2;
const CLOSED = 3;

const kPort = Symbol('torsion.port');
type PortServer = Server & { [kPort]: Port };

let serverOnConnection: (this: PortServer, socket: Socket) => void;
let serverOnListening: (this: PortServer) => void;
let serverOnError: (this: PortServer, error: NodeJS.ErrnoException) => void;

/**
 * A listening stream socket (TCP or UNIX): accepts connections, asks the
 * factory for a protocol for each (`buildProtocol(peerAddress)`; `null` closes
 * the socket) and connects it over a {@link StreamTransport}.
 *
 * The factory's `doStart()` is called once the port is bound and `doStop()`
 * once it has stopped listening. Open connections are not closed by
 * `stopListening()`; {@link Port.connections} lists them.
 */
export class Port extends EventEmitter<PortEvents> implements IListeningPort, ConnectionOwner {
  readonly #reactor: IReactorTime;
  readonly #factory: IProtocolFactory;
  readonly #spec: ListenSpec;
  readonly #server: PortServer;
  readonly #highWaterMark: number | undefined;
  readonly #connections = new Set<StreamTransport>();
  #state = BINDING;
  #host: IAddress | null = null;
  #failure: Failure | null = null;
  #listenWaiters: Deferred<this>[] = [];
  #closeWaiters: Deferred<void>[] = [];
  #stopRequested = false;
  #recovered = false;
  #factoryStarted = false;

  /**
   * Creates the server and starts binding it (`listenTCP`/`listenUNIX` are the
   * usual way). Bind failures are reported through `whenListening()`, the
   * `'error'` event, or, if neither is used by then, the log.
   */
  constructor(
    reactor: IReactorTime,
    factory: IProtocolFactory,
    spec: ListenSpec,
    options: StreamOptions = {},
  ) {
    super();
    this.#reactor = reactor;
    this.#factory = factory;
    this.#spec = spec;
    this.#highWaterMark = options.highWaterMark;
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }) as PortServer;
    server[kPort] = this;
    server.on('connection', serverOnConnection);
    server.on('error', serverOnError);
    server.on('listening', serverOnListening);
    this.#server = server;
    this.#bind();
  }

  /** The open connections accepted by this port (they leave the set when they close). */
  get connections(): ReadonlySet<StreamTransport> {
    return this.#connections;
  }

  /** The factory that builds this port's protocols. */
  get factory(): IProtocolFactory {
    return this.#factory;
  }

  /** `true` from the moment the port is bound until `stopListening()`. */
  get listening(): boolean {
    return this.#state === LISTENING;
  }

  /**
   * The bound address, with the real port when 0 was asked. Before the bind
   * has completed (only when binding was not synchronous: a host name, a
   * stale UNIX socket), the requested address.
   */
  getHost(): IAddress {
    return this.#host ?? this.#spec.address(null);
  }

  /**
   * Fires with the port once it is bound (already fired when binding was
   * synchronous, as for IP literals and UNIX paths), or fails with
   * `CannotListenError`. A port that has since stopped still reports how
   * binding went.
   */
  whenListening(): Deferred<this> {
    if (this.#state === BINDING) {
      const d = new Deferred<this>();
      this.#listenWaiters.push(d);
      return d;
    }
    if (this.#failure !== null) return fail(this.#failure);
    return succeed(this);
  }

  /**
   * Stops accepting connections: closes the listening socket at once, then
   * calls the factory's `doStop()`, emits `'close'` and fires the returned
   * Deferred on the next reactor turn (`callLater(0)`). Open connections stay
   * open. Every call returns a Deferred that fires at that same moment (at
   * once if the port has already stopped, or never bound).
   */
  stopListening(): Deferred<void> {
    if (this.#state === CLOSED && this.#closeWaiters.length === 0) return succeed(undefined);
    if (this.#state === FAILED) return succeed(undefined);
    const d = new Deferred<void>();
    this.#closeWaiters.push(d);
    if (this.#state === BINDING) {
      this.#stopRequested = true;
    } else if (this.#state === LISTENING) {
      this.#close();
    }
    return d;
  }

  /** `<Port ADDRESS>`, for logs. */
  override toString(): string {
    return `<Port ${String(this.getHost())}>`;
  }

  // ------------------------------------------------------------------ ConnectionOwner

  /** Called by the transport: a connection starts. */
  connectionStarted(transport: StreamTransport): void {
    this.#connections.add(transport);
  }

  /** Called by the transport: a connection ended. */
  connectionClosed(transport: StreamTransport, _reason: Failure): void {
    this.#connections.delete(transport);
  }

  /** Called by the transport: a connection was detached. */
  connectionDetached(transport: StreamTransport): void {
    this.#connections.delete(transport);
  }

  // ------------------------------------------------------------------ server listeners

  // Listeners are plain functions (`this` is the socket or server), assigned
  // here because they use private fields; one function object serves all.
  static {
    serverOnConnection = function serverOnConnection(this: PortServer, socket: Socket): void {
      this[kPort].#accept(socket);
    };

    serverOnListening = function serverOnListening(this: PortServer): void {
      const port = this[kPort];
      if (port.#state === BINDING) port.#listened();
      if (port.#state === LISTENING) port.emit('listening');
    };

    serverOnError = function serverOnError(this: PortServer, error: NodeJS.ErrnoException): void {
      const port = this[kPort];
      if (port.#state !== BINDING) {
        err(error, `Error on listening ${String(port)}`);
        return;
      }
      const spec = port.#spec;
      if (!port.#recovered && spec.recover !== undefined && !port.#stopRequested) {
        port.#recovered = true;
        spec.recover(error).then(
          (retry) => {
            if (retry && port.#state === BINDING && !port.#stopRequested) port.#bind();
            else port.#bindFailed(error);
          },
          () => port.#bindFailed(error),
        );
        return;
      }
      port.#bindFailed(error);
    };
  }

  // ------------------------------------------------------------------ internals

  #bind(): void {
    try {
      this.#spec.bind(this.#server);
    } catch (e) {
      // Node reports bind errors through 'error'; a throw here is an argument
      // error. Report it the same way, after the caller had a chance to call
      // whenListening().
      queueMicrotask(() => {
        if (this.#state === BINDING) this.#bindFailed(e);
      });
      return;
    }
    if (this.#server.listening) this.#listened();
  }

  #listened(): void {
    const server = this.#server;
    try {
      this.#spec.bound?.(server);
    } catch (e) {
      server.close();
      this.#bindFailed(e);
      return;
    }
    this.#state = LISTENING;
    this.#host = this.#spec.address(server);
    this.#factoryStarted = true;
    try {
      this.#factory.doStart();
    } catch (e) {
      err(e, 'Unhandled error in factory.doStart()');
    }
    const waiters = this.#listenWaiters;
    this.#listenWaiters = [];
    for (const d of waiters) d.callback(this);
    if (this.#stopRequested) this.#close();
  }

  #bindFailed(cause: unknown): void {
    const spec = this.#spec;
    const error = new CannotListenError(spec.iface, spec.port, cause);
    const failure = new Failure(error);
    this.#state = FAILED;
    this.#failure = failure;
    let reported = this.#stopRequested;
    if (this.listenerCount('error') > 0) {
      this.emit('error', error);
      reported = true;
    }
    const waiters = this.#listenWaiters;
    this.#listenWaiters = [];
    for (const d of waiters) {
      d.errback(failure);
      reported = true;
    }
    if (!reported) err(failure, 'Port could not listen');
    const closers = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const d of closers) d.callback(undefined);
  }

  #close(): void {
    this.#state = CLOSED;
    this.#server.close();
    this.#reactor.callLater(0, Port.#closed, this);
  }

  static #closed(port: Port): void {
    if (port.#factoryStarted) {
      port.#factoryStarted = false;
      try {
        port.#factory.doStop();
      } catch (e) {
        err(e, 'Unhandled error in factory.doStop()');
      }
    }
    port.emit('close');
    const closers = port.#closeWaiters;
    port.#closeWaiters = [];
    for (const d of closers) d.callback(undefined);
  }

  #accept(socket: Socket): void {
    if (this.#state !== LISTENING) {
      ignoreSocketErrors(socket);
      socket.destroy();
      return;
    }
    const spec = this.#spec;
    const peer = spec.peerOf(socket);
    let protocol: IProtocol | null;
    try {
      protocol = this.#factory.buildProtocol(peer);
    } catch (e) {
      err(e, 'Unhandled error in factory.buildProtocol()');
      protocol = null;
    }
    if (protocol === null) {
      ignoreSocketErrors(socket);
      socket.destroy();
      return;
    }
    const transport = StreamTransport.attach(socket, protocol, this.#reactor, {
      peer,
      host: spec.hostOf(socket),
      owner: this,
      highWaterMark: this.#highWaterMark,
    });
    if (this.listenerCount('connection') > 0) this.emit('connection', transport);
  }
}

// ====================================================================== Connector

/** Maps a Node connect error to Twisted's `ConnectError` family. */
export function connectError(error: NodeJS.ErrnoException): ConnectError {
  switch (error.code) {
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(`Connection was refused by other side: ${error.message}`, {
        cause: error,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME':
    case 'EAI_NODATA':
      return new DNSLookupError(`DNS lookup failed: ${error.message}`, { cause: error });
    default:
      return new ConnectError(`An error occurred while connecting: ${error.message}`, {
        cause: error,
      });
  }
}

const kConnector = Symbol('torsion.connector');
type ConnectorSocket = Socket & { [kConnector]?: Connector };

let connectOnConnect: (this: ConnectorSocket) => void;
let connectOnError: (this: ConnectorSocket, error: NodeJS.ErrnoException) => void;

/**
 * Makes (and can remake) one client connection, as Twisted's `Connector`.
 *
 * `connect()` → the factory's `doStart()` (first time), `startedConnecting`;
 * then either `buildProtocol(peer)` and the protocol's `makeConnection`, and
 * later, after the protocol's `connectionLost`, `clientConnectionLost`; or
 * `clientConnectionFailed` with a `ConnectError` (`ConnectionRefusedError`,
 * `ConnectTimeoutError`, `DNSLookupError`, `UserError`…). After either, unless
 * the factory called `connect()` again from the hook, `doStop()`.
 */
export class Connector implements IConnector, ConnectionOwner {
  readonly #reactor: IReactorTime;
  readonly #factory: IClientFactory;
  readonly #spec: ConnectSpec;
  readonly #timeout: number;
  readonly #highWaterMark: number | undefined;
  #state: 'disconnected' | 'connecting' | 'connected' = 'disconnected';
  #socket: ConnectorSocket | null = null;
  #timer: IDelayedCall | null = null;
  #transport: StreamTransport | null = null;
  #factoryStarted = false;

  /**
   * Creates a connector in the `'disconnected'` state; `connectTCP` and
   * `connectUNIX` create one and call `connect()`. `timeout` is in seconds;
   * `Infinity` means none.
   */
  constructor(
    reactor: IReactorTime,
    factory: IClientFactory,
    spec: ConnectSpec,
    options: StreamOptions & { timeout?: number } = {},
  ) {
    this.#reactor = reactor;
    this.#factory = factory;
    this.#spec = spec;
    this.#timeout = checkTimeout(options.timeout);
    this.#highWaterMark = options.highWaterMark;
  }

  /** `'disconnected'`, `'connecting'` (attempt in progress) or `'connected'`. */
  get state(): 'disconnected' | 'connecting' | 'connected' {
    return this.#state;
  }

  /** The connection's transport while `'connected'`, else `null`. */
  get transport(): StreamTransport | null {
    return this.#transport;
  }

  /** The factory this connector reports to. */
  get factory(): IClientFactory {
    return this.#factory;
  }

  /**
   * Starts a connection attempt: `doStart()` on the factory if this connector
   * has not started it yet, arms the timeout, then `startedConnecting(this)`.
   * Failures are reported to `clientConnectionFailed`, never thrown.
   * @throws TorsionError (`TORSION_ERR_INVALID_STATE`) unless `'disconnected'`.
   */
  connect(): void {
    if (this.#state !== 'disconnected') {
      throw new TorsionError(`can't connect in state ${this.#state}`, 'TORSION_ERR_INVALID_STATE');
    }
    this.#state = 'connecting';
    if (!this.#factoryStarted) {
      this.#factoryStarted = true;
      try {
        this.#factory.doStart();
      } catch (e) {
        err(e, 'Unhandled error in factory.doStart()');
      }
    }
    let socket: ConnectorSocket;
    try {
      socket = net.connect({ ...this.#spec.options, allowHalfOpen: true });
    } catch (e) {
      // As Twisted: report on the next turn, after startedConnecting.
      this.#reactor.callLater(0, Connector.#failIfConnecting, this, e);
      this.#notifyStarted();
      return;
    }
    socket[kConnector] = this;
    socket.on('connect', connectOnConnect);
    socket.on('error', connectOnError);
    this.#socket = socket;
    if (this.#timeout !== Number.POSITIVE_INFINITY) {
      this.#timer = this.#reactor.callLater(this.#timeout, Connector.#onTimeout, this);
    }
    this.#notifyStarted();
  }

  /**
   * Abandons the attempt in progress: the factory's `clientConnectionFailed`
   * gets `UserError` before this returns.
   * @throws NotConnectingError unless `'connecting'`.
   */
  stopConnecting(): void {
    if (this.#state !== 'connecting') throw new NotConnectingError();
    this.#connectionFailed(new Failure(new UserError()));
  }

  /**
   * Stops the attempt (`stopConnecting()`) when connecting, closes the
   * connection (`loseConnection()`) when connected; does nothing otherwise.
   */
  disconnect(): void {
    if (this.#state === 'connecting') this.stopConnecting();
    else if (this.#state === 'connected') this.#transport?.loseConnection();
  }

  /** The address this connector connects to. */
  getDestination(): IAddress {
    return this.#spec.destination;
  }

  // ------------------------------------------------------------------ ConnectionOwner

  /** Called by the transport before the protocol's `makeConnection`. */
  connectionStarted(transport: StreamTransport): void {
    this.#transport = transport;
  }

  /** Called by the transport after the protocol's `connectionLost`. */
  connectionClosed(transport: StreamTransport, reason: Failure): void {
    if (this.#transport !== transport) return;
    this.#transport = null;
    this.#state = 'disconnected';
    try {
      this.#factory.clientConnectionLost(this, reason);
    } catch (e) {
      err(e, 'Unhandled error in factory.clientConnectionLost()');
    }
    this.#maybeStopFactory();
  }

  /** Called by the transport when its socket is detached: the connector is done with it. */
  connectionDetached(transport: StreamTransport): void {
    if (this.#transport !== transport) return;
    this.#transport = null;
    this.#state = 'disconnected';
    this.#maybeStopFactory();
  }

  // ------------------------------------------------------------------ socket listeners

  // Plain functions (`this` is the socket), assigned here to reach private fields.
  static {
    connectOnConnect = function connectOnConnect(this: ConnectorSocket): void {
      this[kConnector]!.#connected(this);
    };

    connectOnError = function connectOnError(
      this: ConnectorSocket,
      error: NodeJS.ErrnoException,
    ): void {
      const connector = this[kConnector];
      if (connector === undefined || connector.#socket !== this) return;
      connector.#connectionFailed(new Failure(connectError(error)));
    };
  }

  // ------------------------------------------------------------------ internals

  static #onTimeout(connector: Connector): void {
    connector.#timer = null;
    if (connector.#state === 'connecting') {
      connector.#connectionFailed(new Failure(new ConnectTimeoutError()));
    }
  }

  static #failIfConnecting(connector: Connector, error: unknown): void {
    if (connector.#state !== 'connecting' || connector.#socket !== null) return;
    const failure =
      error instanceof ConnectError
        ? new Failure(error)
        : new Failure(
            new ConnectError(
              `An error occurred while connecting: ${error instanceof Error ? error.message : String(error)}`,
              { cause: error },
            ),
          );
    connector.#connectionFailed(failure);
  }

  #notifyStarted(): void {
    try {
      this.#factory.startedConnecting(this);
    } catch (e) {
      err(e, 'Unhandled error in factory.startedConnecting()');
    }
  }

  #releaseSocket(): ConnectorSocket | null {
    const socket = this.#socket;
    if (socket === null) return null;
    this.#socket = null;
    socket.removeListener('connect', connectOnConnect);
    socket.removeListener('error', connectOnError);
    delete socket[kConnector];
    return socket;
  }

  #cancelTimeout(): void {
    const timer = this.#timer;
    if (timer !== null) {
      this.#timer = null;
      if (timer.active()) timer.cancel();
    }
  }

  #connected(socket: ConnectorSocket): void {
    this.#releaseSocket();
    this.#cancelTimeout();
    this.#state = 'connected';
    const spec = this.#spec;
    const peer = spec.peerOf(socket);
    let protocol: IProtocol | null;
    try {
      protocol = this.#factory.buildProtocol(peer);
    } catch (e) {
      err(e, 'Unhandled error in factory.buildProtocol()');
      protocol = null;
    }
    const transport = StreamTransport.attach(
      socket,
      protocol ?? new NullProtocol(),
      this.#reactor,
      {
        peer,
        host: spec.hostOf(socket),
        owner: this,
        highWaterMark: this.#highWaterMark,
      },
    );
    // As Twisted: no protocol means the connection is closed (cleanly).
    if (protocol === null) transport.loseConnection();
  }

  #connectionFailed(reason: Failure): void {
    this.#cancelTimeout();
    const socket = this.#releaseSocket();
    if (socket !== null) {
      ignoreSocketErrors(socket);
      socket.destroy();
    }
    this.#state = 'disconnected';
    try {
      this.#factory.clientConnectionFailed(this, reason);
    } catch (e) {
      err(e, 'Unhandled error in factory.clientConnectionFailed()');
    }
    this.#maybeStopFactory();
  }

  /** After a failure or loss: `doStop()`, unless the factory reconnected from its hook. */
  #maybeStopFactory(): void {
    if (this.#state !== 'disconnected' || !this.#factoryStarted) return;
    this.#factoryStarted = false;
    try {
      this.#factory.doStop();
    } catch (e) {
      err(e, 'Unhandled error in factory.doStop()');
    }
  }

  /** `<Connector to ADDRESS (STATE)>`, for logs. */
  toString(): string {
    return `<Connector to ${String(this.#spec.destination)} (${this.#state})>`;
  }
}

function checkTimeout(timeout: number | undefined): number {
  if (timeout === undefined) return DEFAULT_CONNECT_TIMEOUT;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new InvalidArgumentError(`timeout must be a non-negative number of seconds: ${timeout}`);
  }
  return timeout;
}

function checkPort(port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new InvalidArgumentError(`invalid port: ${port}`);
  }
}

/** @internal Validates a listen backlog (positive integer). */
export function checkBacklog(backlog: number | undefined): number {
  if (backlog === undefined) return DEFAULT_BACKLOG;
  if (!Number.isInteger(backlog) || backlog < 1) {
    throw new InvalidArgumentError(`backlog must be a positive integer: ${backlog}`);
  }
  return backlog;
}

// ====================================================================== TCP

function tcpPeer(socket: Socket): IAddress {
  return inetAddress('TCP', socket.remoteFamily, socket.remoteAddress, socket.remotePort);
}

function tcpUnknownHost(): undefined {
  return undefined;
}

type Listen2 = (
  address: string,
  port: number,
  addressType: number,
  backlog: number,
  fd: undefined,
  flags: number,
) => void;

/**
 * Binds `server` to `host:port`. For an IP literal this binds synchronously
 * through `Server#_listen2` (what `listen()` ends in once its DNS step, which
 * is asynchronous even for literals, is done), so the port is known when
 * `listenTCP` returns, as in Twisted. Falls back to `listen()` for host names,
 * or if a future Node drops `_listen2`.
 */
function bindTCP(server: Server, host: string, port: number, backlog: number): void {
  const family = net.isIP(host);
  const listen2 = (server as unknown as { _listen2?: Listen2 })._listen2;
  if (family !== 0 && typeof listen2 === 'function') {
    listen2.call(server, host, port, family, backlog, undefined, 0);
  } else {
    server.listen({ port, host, backlog });
  }
}

/**
 * Listens for TCP connections on `port` (0 picks a free one) of
 * `options.interface` (default `''`: all IPv4 interfaces, `0.0.0.0`; `'::'`
 * for all IPv6 and IPv4). Each connection gets `factory.buildProtocol(peer)`.
 *
 * For IP literal interfaces the socket is bound before this returns, so
 * `port.getHost()` has the real port at once; a bind failure
 * (`CannotListenError`) is reported on a later turn through
 * `port.whenListening()` (or the `'error'` event, or the log if neither is
 * used).
 * @throws InvalidArgumentError for a bad port or backlog.
 */
export function listenTCP(
  reactor: IReactorTime,
  port: number,
  factory: IProtocolFactory,
  options: ListenTCPOptions & StreamOptions = {},
): Port {
  checkPort(port, true);
  const backlog = checkBacklog(options.backlog);
  const iface = options.interface ?? '';
  const host = iface === '' ? '0.0.0.0' : iface;
  const spec: ListenSpec = {
    iface,
    port,
    bind: (server) => bindTCP(server, host, port, backlog),
    address(server) {
      const a = server?.address();
      if (a !== null && a !== undefined && typeof a === 'object') {
        return inetAddress('TCP', a.family, a.address, a.port);
      }
      return net.isIPv6(host)
        ? new IPv6Address('TCP', host, port)
        : new IPv4Address('TCP', host, port);
    },
    peerOf: tcpPeer,
    hostOf: tcpUnknownHost,
  };
  return new Port(reactor, factory, spec, options);
}

/**
 * Connects to `host:port` over TCP and reports to `factory` (see
 * {@link Connector}). The attempt starts at once; it fails with
 * `ConnectTimeoutError` after `options.timeout` seconds (default 30), with
 * `ConnectionRefusedError` on `ECONNREFUSED`, `DNSLookupError` when `host`
 * does not resolve. `options.bindAddress` binds the local end first.
 * @throws InvalidArgumentError for a bad port, timeout or bind address.
 */
export function connectTCP(
  reactor: IReactorTime,
  host: string,
  port: number,
  factory: IClientFactory,
  options: ConnectTCPOptions & StreamOptions = {},
): Connector {
  checkPort(port, false);
  const connectOptions: NetConnectOpts = { host, port };
  if (options.bindAddress !== undefined) {
    const [localAddress, localPort] = options.bindAddress;
    checkPort(localPort, true);
    connectOptions.localAddress = localAddress;
    if (localPort !== 0) connectOptions.localPort = localPort;
  }
  const destination = net.isIPv6(host)
    ? new IPv6Address('TCP', host, port)
    : new IPv4Address('TCP', host, port);
  const spec: ConnectSpec = {
    destination,
    options: connectOptions,
    peerOf: tcpPeer,
    hostOf: tcpUnknownHost,
  };
  const connector = new Connector(reactor, factory, spec, options);
  connector.connect();
  return connector;
}

/** A TCP listening port. */
export type TCPPort = Port;
/** A TCP client connector. */
export type TCPConnector = Connector;
