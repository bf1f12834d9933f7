/**
 * `Connector`: makes (and can remake) one client stream connection (TCP or
 * UNIX), as Twisted's `Connector`. What differs between families is a
 * {@link ConnectSpec}.
 *
 * @module
 */

import net, { type NetConnectOpts, type Socket } from 'node:net';
import {
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
  IAddress,
  IClientFactory,
  IConnector,
  IDelayedCall,
  IProtocol,
  IReactorTime,
} from './interfaces.js';
import { err } from './log.js';
import type { StreamOptions } from './port.js';
import {
  type ConnectionOwner,
  ignoreSocketErrors,
  NullProtocol,
  StreamTransport,
} from './stream.js';

/** Default seconds before a connection attempt fails with `ConnectTimeoutError`. */
export const DEFAULT_CONNECT_TIMEOUT = 30;

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
  /**
   * Creates the connecting socket from `options` (with `allowHalfOpen: true`
   * added); default `net.connect` (TLS: `tls.connect`).
   */
  createSocket?(options: NetConnectOpts): Socket;
  /** The socket event that completes the attempt: default `'connect'` (TLS: `'secureConnect'`). */
  readonly connectedEvent?: string;
  /**
   * Maps an error the socket reports before `connectedEvent` to the
   * `clientConnectionFailed` reason; default {@link connectError}.
   */
  connectError?(error: NodeJS.ErrnoException, socket: Socket): ConnectError;
}

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
    const spec = this.#spec;
    try {
      const options: NetConnectOpts = { ...spec.options, allowHalfOpen: true };
      socket = spec.createSocket === undefined ? net.connect(options) : spec.createSocket(options);
    } catch (e) {
      // As Twisted: report on the next turn, after startedConnecting.
      this.#reactor.callLater(0, Connector.#failIfConnecting, this, e);
      this.#notifyStarted();
      return;
    }
    socket[kConnector] = this;
    socket.on(spec.connectedEvent ?? 'connect', connectOnConnect);
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
      const map = connector.#spec.connectError;
      connector.#connectionFailed(
        new Failure(map === undefined ? connectError(error) : map(error, this)),
      );
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
    socket.removeListener(this.#spec.connectedEvent ?? 'connect', connectOnConnect);
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
