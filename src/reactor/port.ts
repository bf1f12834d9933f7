/**
 * `Port`: a listening stream socket (TCP or UNIX) that makes a
 * {@link StreamTransport} and a protocol for each connection. What differs
 * between families (how to bind, how to name the ends) is a {@link ListenSpec}.
 *
 * @module
 */

import net, { type Server, type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { Deferred, fail, succeed } from './deferred.js';
import { CannotListenError, InvalidArgumentError } from './errors.js';
import { Failure } from './failure.js';
import type {
  IAddress,
  IListeningPort,
  IProtocol,
  IProtocolFactory,
  IReactorTime,
} from './interfaces.js';
import { err } from './log.js';
import { type ConnectionOwner, ignoreSocketErrors, StreamTransport } from './stream.js';

/** Options every stream port and connector takes, beyond the family's own. */
export interface StreamOptions {
  /**
   * Unflushed bytes above which a connection's streaming producer is paused
   * (default 64 KiB).
   */
  highWaterMark?: number;
}

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
  /**
   * Prepares each accepted socket before it gets a protocol (TLS: runs the
   * handshake). Calls `ready` at most once, possibly on a later turn, with
   * the socket to connect (e.g. a `tls.TLSSocket` over the accepted one);
   * a socket that fails is the hook's to destroy, and `ready` is then never
   * called. A socket that becomes ready after `stopListening()` is still
   * connected, as an accepted connection outlives its port. Without this
   * hook, accepted sockets are connected at once.
   */
  accept?(socket: Socket, ready: (socket: Socket) => void): void;
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
  /** `ListenSpec.accept`'s callback: one function for the port's lifetime. */
  readonly #prepared = (socket: Socket): void => this.#connect(socket);

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
    if (spec.accept !== undefined) spec.accept(socket, this.#prepared);
    else this.#connect(socket);
  }

  /** Builds the protocol for an accepted (and prepared) socket and connects it. */
  #connect(socket: Socket): void {
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

/** @internal Validates a listen backlog (positive integer). */
export function checkBacklog(backlog: number | undefined): number {
  if (backlog === undefined) return DEFAULT_BACKLOG;
  if (!Number.isInteger(backlog) || backlog < 1) {
    throw new InvalidArgumentError(`backlog must be a positive integer: ${backlog}`);
  }
  return backlog;
}
