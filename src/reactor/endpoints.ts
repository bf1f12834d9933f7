/**
 * Endpoints, as Twisted's `twisted.internet.endpoints`: an object that knows
 * where to listen or connect, so code that serves or speaks a protocol does
 * not care whether it runs over TCP, UNIX sockets or TLS.
 *
 * - Server endpoints ({@link IStreamServerEndpoint}): `listen(factory)` →
 *   `Deferred<IListeningPort>`, failing with `CannotListenError`.
 * - Client endpoints ({@link IStreamClientEndpoint}): `connect(factory)` →
 *   `Deferred<protocol>` firing once the protocol is connected (after its
 *   `connectionMade`), failing with a `ConnectError`; cancelling it stops
 *   the attempt ({@link ConnectingCancelledError}).
 * - `serverFromString` / `clientFromString` (in `endpoint-strings.ts`)
 *   build them from Twisted's description strings.
 * - {@link HostnameEndpoint} resolves a name and races the addresses.
 *
 * @module
 */

import dns from 'node:dns';
import net from 'node:net';
import { Deferred, fail } from './deferred.js';
import { CancelledError, ConnectError, DNSLookupError, InvalidArgumentError } from './errors.js';
import { Failure } from './failure.js';
import type {
  IAddress,
  IClientFactory,
  IConnector,
  IDelayedCall,
  IListeningPort,
  IProtocol,
  IProtocolFactory,
  IReactorTCP,
  IReactorTime,
  IReactorTLS,
  IReactorUNIX,
  TLSClientContextOptions,
  TLSServerContextOptions,
} from './interfaces.js';

// ====================================================================== contracts

/** A protocol factory whose protocols are `P`s (any {@link IProtocolFactory} is one for `IProtocol`). */
export interface ProtocolFactoryOf<P extends IProtocol = IProtocol> extends IProtocolFactory {
  buildProtocol(addr: IAddress): P | null;
}

/** Where a stream server listens (Twisted's `IStreamServerEndpoint`). */
export interface IStreamServerEndpoint {
  /**
   * Listens with `factory`. Fires with the listening port once it is bound;
   * fails with `CannotListenError` when it cannot bind (or with the error
   * the reactor raised for its arguments). Each call makes a new port.
   */
  listen(factory: IProtocolFactory): Deferred<IListeningPort>;
}

/** Where a stream client connects (Twisted's `IStreamClientEndpoint`). */
export interface IStreamClientEndpoint {
  /**
   * Connects, building one protocol with `factory` (its `doStart()` before,
   * `doStop()` after the connection, as with `connectTCP`). Fires with the
   * protocol once connected (after its `connectionMade` returned); fails
   * with a `ConnectError` (`ConnectionRefusedError`, `DNSLookupError`,
   * `ConnectTimeoutError`, `TLSHandshakeError`, {@link NoProtocol}…).
   * Cancelling the Deferred before it fires stops the attempt (a connection
   * already made is closed) and fails it with {@link ConnectingCancelledError}.
   */
  connect<P extends IProtocol>(factory: ProtocolFactoryOf<P>): Deferred<P>;
}

/** The reactor the string parsers and endpoints need (TLS only for `ssl:`/`tls:`). */
export type EndpointReactor = IReactorTCP & IReactorUNIX & IReactorTime & Partial<IReactorTLS>;

// ====================================================================== errors

/** A client endpoint's `connect()` was cancelled before it connected (Twisted's name). */
export class ConnectingCancelledError extends CancelledError {
  /** Where it was connecting to (`host:port`, or the UNIX path). */
  readonly destination: string;

  constructor(destination: string) {
    super(`connecting to ${destination} was cancelled`);
    this.destination = destination;
  }
}

/** The factory's `buildProtocol` returned `null`: the connection was closed (Twisted's name). */
export class NoProtocol extends ConnectError {
  constructor(message = 'the factory returned no protocol for the connection') {
    super(message, undefined, 'TORSION_ERR_NO_PROTOCOL');
  }
}

// ====================================================================== argument checks

function checkPort(port: number, allowZero: boolean): number {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new InvalidArgumentError(`invalid port: ${port}`);
  }
  return port;
}

function checkHost(host: string): string {
  if (typeof host !== 'string' || host.length === 0) {
    throw new InvalidArgumentError(`invalid host: ${String(host)}`);
  }
  return host;
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidArgumentError(`invalid UNIX socket path: ${String(path)}`);
  }
}

function checkTimeout(timeout: number | undefined): void {
  if (timeout !== undefined && !(timeout >= 0)) {
    throw new InvalidArgumentError(`timeout must be a non-negative number of seconds: ${timeout}`);
  }
}

/** `fn()`'s port's `whenListening()`, or a failed Deferred if `fn` throws. */
function listenWith(fn: () => IListeningPort): Deferred<IListeningPort> {
  let port: IListeningPort;
  try {
    port = fn();
  } catch (e) {
    return fail(e);
  }
  return port.whenListening();
}

// ====================================================================== connecting one protocol

/**
 * The client factory behind every client endpoint: builds one protocol with
 * the user's factory and settles the endpoint's Deferred. `doStart`/`doStop`
 * are forwarded when `forwardStartStop` (a plain connector); HostnameEndpoint
 * forwards them itself, for the winning attempt only.
 */
class OneShot<P extends IProtocol> implements IClientFactory {
  connector: IConnector | null = null;
  /** The protocol built, once built. */
  protocol: P | null = null;
  #settled = false;

  constructor(
    readonly factory: ProtocolFactoryOf<P>,
    readonly deferred: Deferred<P>,
    readonly forwardStartStop: boolean,
  ) {}

  get settled(): boolean {
    return this.#settled;
  }

  doStart(): void {
    if (this.forwardStartStop) this.factory.doStart();
  }

  doStop(): void {
    if (this.forwardStartStop) this.factory.doStop();
  }

  startedConnecting(connector: IConnector): void {
    this.connector = connector;
  }

  buildProtocol(addr: IAddress): P | null {
    if (this.#settled) return null; // cancelled meanwhile: close the connection
    let protocol: P | null;
    try {
      protocol = this.factory.buildProtocol(addr);
    } catch (e) {
      this.fail(new Failure(e));
      return null;
    }
    if (protocol === null) {
      this.fail(new Failure(new NoProtocol()));
      return null;
    }
    this.protocol = protocol;
    // buildProtocol runs before makeConnection: fire once the current stack
    // (which connects the protocol) has returned.
    queueMicrotask(() => this.#fire());
    return protocol;
  }

  clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    this.fail(reason);
  }

  clientConnectionLost(_connector: IConnector, _reason: Failure): void {}

  /** Fails the Deferred with `reason`, unless it is settled. */
  fail(reason: Failure): void {
    if (this.#settled) return;
    this.#settled = true;
    this.deferred.errback(reason);
  }

  /** Stops the attempt or closes the connection made; the Deferred is then settled by the caller. */
  abandon(): void {
    this.#settled = true;
    const connector = this.connector;
    if (connector === null) return;
    if (connector.state === 'connecting') connector.stopConnecting();
    else if (connector.state === 'connected') connector.disconnect();
  }

  #fire(): void {
    if (this.#settled || this.protocol === null) return;
    this.#settled = true;
    this.deferred.callback(this.protocol);
  }
}

/** Connects through `start(factory)` with cancellation; `destination` names it in errors. */
function connectWith<P extends IProtocol>(
  factory: ProtocolFactoryOf<P>,
  destination: string,
  start: (clientFactory: IClientFactory) => IConnector,
): Deferred<P> {
  let oneShot: OneShot<P> | null = null;
  const deferred = new Deferred<P>((d) => {
    oneShot?.abandon();
    d.errback(new ConnectingCancelledError(destination));
  });
  oneShot = new OneShot(factory, deferred, true);
  try {
    start(oneShot);
  } catch (e) {
    oneShot.fail(new Failure(e));
  }
  return deferred;
}

// ====================================================================== server endpoints

/** `listenTCP` options an endpoint passes on. */
export interface TCPServerEndpointOptions {
  /** Pending-connection queue length (default 50). */
  backlog?: number;
  /** The interface to bind (TCP4 default `''`: all IPv4; TCP6 default `'::'`). */
  interface?: string;
}

/** Listens on a TCP port over IPv4 (`listenTCP`). */
export class TCP4ServerEndpoint implements IStreamServerEndpoint {
  /** @throws InvalidArgumentError for a bad port. */
  constructor(
    protected readonly reactor: IReactorTCP,
    readonly port: number,
    readonly options: TCPServerEndpointOptions = {},
  ) {
    checkPort(port, true);
  }

  /** `reactor.listenTCP(port, factory, options)`; see {@link IStreamServerEndpoint.listen}. */
  listen(factory: IProtocolFactory): Deferred<IListeningPort> {
    return listenWith(() => this.reactor.listenTCP(this.port, factory, this.options));
  }
}

/** Listens on a TCP port over IPv6 (and IPv4-mapped), interface `'::'` unless given. */
export class TCP6ServerEndpoint extends TCP4ServerEndpoint {
  /** @throws InvalidArgumentError for a bad port. */
  constructor(reactor: IReactorTCP, port: number, options: TCPServerEndpointOptions = {}) {
    super(reactor, port, { ...options, interface: options.interface ?? '::' });
  }
}

/** Options of a {@link UNIXServerEndpoint} (`listenUNIX`). */
export interface UNIXServerEndpointOptions {
  backlog?: number;
  /** File mode of the socket, e.g. `0o660`. */
  mode?: number;
  /** Remove a stale socket file left by a dead process (default true). */
  wantPID?: boolean;
}

/** Listens on a UNIX-domain socket path (`listenUNIX`). */
export class UNIXServerEndpoint implements IStreamServerEndpoint {
  /** @throws InvalidArgumentError for an empty path. */
  constructor(
    protected readonly reactor: IReactorUNIX,
    readonly path: string,
    readonly options: UNIXServerEndpointOptions = {},
  ) {
    checkPath(path);
  }

  /** `reactor.listenUNIX(path, factory, options)`; see {@link IStreamServerEndpoint.listen}. */
  listen(factory: IProtocolFactory): Deferred<IListeningPort> {
    return listenWith(() => this.reactor.listenUNIX(this.path, factory, this.options));
  }
}

/** Listens for TLS on a TCP port (`listenSSL`). */
export class SSL4ServerEndpoint implements IStreamServerEndpoint {
  /** @throws InvalidArgumentError for a bad port. */
  constructor(
    protected readonly reactor: Pick<IReactorTLS, 'listenSSL'>,
    readonly port: number,
    readonly contextOptions: TLSServerContextOptions,
    readonly options: TCPServerEndpointOptions = {},
  ) {
    checkPort(port, true);
  }

  /**
   * `reactor.listenSSL(port, factory, contextOptions, options)`; see
   * {@link IStreamServerEndpoint.listen} (a bad context fails the Deferred
   * with `TLSContextError`).
   */
  listen(factory: IProtocolFactory): Deferred<IListeningPort> {
    return listenWith(() =>
      this.reactor.listenSSL(this.port, factory, this.contextOptions, this.options),
    );
  }
}

// ====================================================================== client endpoints

/** Options of the TCP and TLS client endpoints. */
export interface TCPClientEndpointOptions {
  /** Seconds before the attempt fails with `ConnectTimeoutError` (default 30). */
  timeout?: number;
  /** Local `[host, port]` to bind before connecting. */
  bindAddress?: readonly [string, number];
}

/**
 * Connects over TCP (`connectTCP`). A host name is handed to Node's resolver
 * as it is (any family); {@link HostnameEndpoint} gives control over that.
 */
export class TCP4ClientEndpoint implements IStreamClientEndpoint {
  /** @throws InvalidArgumentError for a bad host, port or timeout. */
  constructor(
    protected readonly reactor: IReactorTCP,
    readonly host: string,
    readonly port: number,
    readonly options: TCPClientEndpointOptions = {},
  ) {
    checkHost(host);
    checkPort(port, false);
    checkTimeout(options.timeout);
  }

  /** See {@link IStreamClientEndpoint.connect}. */
  connect<P extends IProtocol>(factory: ProtocolFactoryOf<P>): Deferred<P> {
    return connectWith(factory, `${this.host}:${this.port}`, (f) =>
      this.reactor.connectTCP(this.host, this.port, f, this.options),
    );
  }
}

/** Connects over TCP to an IPv6 address (same as {@link TCP4ClientEndpoint}; Twisted's name). */
export class TCP6ClientEndpoint extends TCP4ClientEndpoint {}

/** Connects to a UNIX-domain socket (`connectUNIX`). */
export class UNIXClientEndpoint implements IStreamClientEndpoint {
  /** @throws InvalidArgumentError for an empty path or a bad timeout. */
  constructor(
    protected readonly reactor: IReactorUNIX,
    readonly path: string,
    readonly options: { timeout?: number } = {},
  ) {
    checkPath(path);
    checkTimeout(options.timeout);
  }

  /** See {@link IStreamClientEndpoint.connect}. */
  connect<P extends IProtocol>(factory: ProtocolFactoryOf<P>): Deferred<P> {
    return connectWith(factory, this.path, (f) =>
      this.reactor.connectUNIX(this.path, f, this.options),
    );
  }
}

/** Connects over TLS (`connectSSL`): fails with `TLSHandshakeError` when the handshake does. */
export class SSL4ClientEndpoint implements IStreamClientEndpoint {
  /** @throws InvalidArgumentError for a bad host, port or timeout. */
  constructor(
    protected readonly reactor: Pick<IReactorTLS, 'connectSSL'>,
    readonly host: string,
    readonly port: number,
    readonly contextOptions: TLSClientContextOptions,
    readonly options: TCPClientEndpointOptions = {},
  ) {
    checkHost(host);
    checkPort(port, false);
    checkTimeout(options.timeout);
  }

  /** See {@link IStreamClientEndpoint.connect}. */
  connect<P extends IProtocol>(factory: ProtocolFactoryOf<P>): Deferred<P> {
    return connectWith(factory, `${this.host}:${this.port}`, (f) =>
      this.reactor.connectSSL(this.host, this.port, f, this.contextOptions, this.options),
    );
  }
}

/**
 * Connects `protocol` itself through `endpoint` (Twisted's
 * `connectProtocol`): fires with it once connected, fails as
 * `endpoint.connect()`.
 */
export function connectProtocol<P extends IProtocol>(
  endpoint: IStreamClientEndpoint,
  protocol: P,
): Deferred<P> {
  const factory: ProtocolFactoryOf<P> = {
    buildProtocol: () => protocol,
    doStart() {},
    doStop() {},
  };
  return endpoint.connect(factory);
}

// ====================================================================== HostnameEndpoint

/** One resolved address. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to its addresses, in the resolver's order. */
export type HostResolver = (host: string) => PromiseLike<readonly ResolvedAddress[]>;

/** `dns.lookup(host, { all: true })`: both families, in the system's order. */
export const systemResolver: HostResolver = (host) =>
  dns.promises.lookup(host, { all: true, family: 0 }) as Promise<ResolvedAddress[]>;

/** Options of a {@link HostnameEndpoint}. */
export interface HostnameEndpointOptions extends TCPClientEndpointOptions {
  /**
   * Seconds between the start of one attempt and the next while none has
   * connected (default 0.3, as Twisted; RFC 8305 suggests 0.25).
   */
  attemptDelay?: number;
  /** How the name is resolved (default {@link systemResolver}). */
  resolver?: HostResolver;
  /**
   * Connect with TLS (`connectSSL`) using these options; the certificate is
   * checked against the host name (sent as SNI), not the address.
   */
  tls?: TLSClientContextOptions;
}

/** Orders addresses as RFC 8305 does: families alternate, starting with the first one's. */
function interleave(addresses: readonly ResolvedAddress[]): string[] {
  const first = addresses[0]?.family;
  const same = addresses.filter((a) => a.family === first).map((a) => a.address);
  const other = addresses.filter((a) => a.family !== first).map((a) => a.address);
  const ordered: string[] = [];
  for (let i = 0; i < same.length || i < other.length; i++) {
    if (i < same.length) ordered.push(same[i]!);
    if (i < other.length) ordered.push(other[i]!);
  }
  return [...new Set(ordered)];
}

/**
 * Connects to a host name (Twisted's `HostnameEndpoint`): resolves it (both
 * families) and tries the addresses in RFC 8305 order (families
 * alternating), Happy-Eyeballs style: a new attempt starts every
 * `attemptDelay` seconds, or at once when the previous one fails, until one
 * connects. The first to connect gets the protocol; the others are stopped
 * (a connection that completes anyway is closed without a protocol). The
 * factory's `doStart()`/`doStop()` are called for the winning connection
 * only. When every address fails, the Deferred fails with the last
 * attempt's error; a name that does not resolve fails with `DNSLookupError`.
 * `timeout` applies to each attempt. An IP literal is not resolved.
 *
 * With `options.tls` each attempt is a `connectSSL` (the host name as SNI
 * and as the name the certificate must match), and an attempt counts as
 * connected once its handshake has completed, so a server that accepts TCP
 * but fails the handshake does not win the race.
 */
export class HostnameEndpoint implements IStreamClientEndpoint {
  readonly #attemptDelay: number;
  readonly #resolver: HostResolver;

  /** @throws InvalidArgumentError for a bad host, port, timeout or delay, or `tls` without a TLS reactor. */
  constructor(
    protected readonly reactor: IReactorTCP & IReactorTime & Partial<IReactorTLS>,
    readonly host: string,
    readonly port: number,
    readonly options: HostnameEndpointOptions = {},
  ) {
    checkHost(host);
    checkPort(port, false);
    checkTimeout(options.timeout);
    const delay = options.attemptDelay ?? 0.3;
    if (!(delay >= 0) || !Number.isFinite(delay)) {
      throw new InvalidArgumentError(`attemptDelay must be a non-negative number: ${delay}`);
    }
    if (options.tls !== undefined && typeof reactor.connectSSL !== 'function') {
      throw new InvalidArgumentError('HostnameEndpoint with tls needs a reactor with connectSSL');
    }
    this.#attemptDelay = delay;
    this.#resolver = options.resolver ?? systemResolver;
  }

  /** See {@link IStreamClientEndpoint.connect} and the class documentation. */
  connect<P extends IProtocol>(factory: ProtocolFactoryOf<P>): Deferred<P> {
    const race = new Race(this, this.reactor, factory, this.#attemptDelay);
    const family = net.isIP(this.host);
    if (family !== 0) {
      race.start([{ address: this.host, family: family as 4 | 6 }]);
    } else {
      let resolving: PromiseLike<readonly ResolvedAddress[]>;
      try {
        resolving = this.#resolver(this.host);
      } catch (e) {
        resolving = Promise.reject(e);
      }
      resolving.then(
        (addresses) => race.start(addresses),
        (e: unknown) => race.resolveFailed(e),
      );
    }
    return race.deferred;
  }

  /** @internal Starts one attempt at `address` for {@link Race}. */
  attempt(address: string, factory: IClientFactory): IConnector {
    const { timeout, bindAddress, tls } = this.options;
    const options = { timeout, bindAddress };
    if (tls === undefined) return this.reactor.connectTCP(address, this.port, factory, options);
    const servername = net.isIP(this.host) === 0 ? this.host : undefined;
    const connectSSL = this.reactor.connectSSL as IReactorTLS['connectSSL'];
    return connectSSL.call(
      this.reactor,
      address,
      this.port,
      factory,
      { servername, ...tls },
      options,
    );
  }

  /** `<HostnameEndpoint host:port>`, for logs. */
  toString(): string {
    return `<HostnameEndpoint ${this.host}:${this.port}>`;
  }
}

/** One `HostnameEndpoint.connect()`: the attempts and their outcome. */
class Race<P extends IProtocol> {
  readonly deferred: Deferred<P>;
  #addresses: string[] = [];
  readonly #attempts = new Set<OneShot<P>>();
  #timer: IDelayedCall | null = null;
  /** The attempt that connected first, once one has. */
  #winner: OneShot<P> | null = null;
  #done = false;

  constructor(
    readonly endpoint: HostnameEndpoint,
    readonly clock: IReactorTime,
    readonly factory: ProtocolFactoryOf<P>,
    readonly attemptDelay: number,
  ) {
    this.deferred = new Deferred<P>((d) => {
      this.#finish();
      d.errback(new ConnectingCancelledError(`${endpoint.host}:${endpoint.port}`));
    });
  }

  start(addresses: readonly ResolvedAddress[]): void {
    if (this.#done) return;
    this.#addresses = interleave(addresses);
    if (this.#addresses.length === 0) {
      this.#fail(new Failure(new DNSLookupError(`no address for ${this.endpoint.host}`)));
      return;
    }
    this.#next();
  }

  resolveFailed(error: unknown): void {
    if (this.#done) return;
    const why = error instanceof Error ? error.message : String(error);
    this.#fail(
      new Failure(
        new DNSLookupError(`DNS lookup of ${this.endpoint.host} failed: ${why}`, { cause: error }),
      ),
    );
  }

  /** Starts the attempt at the next address, and arms the timer for the one after. */
  #next(): void {
    this.#cancelTimer();
    const address = this.#addresses.shift();
    if (address === undefined) return;
    const attempt = new Attempt(this, this.factory);
    this.#attempts.add(attempt);
    try {
      this.endpoint.attempt(address, attempt);
    } catch (e) {
      attempt.fail(new Failure(e));
      return;
    }
    if (!this.#done && this.#addresses.length > 0 && this.#timer === null) {
      this.#timer = this.clock.callLater(this.attemptDelay, Race.#onTimer, this);
    }
  }

  static #onTimer(race: Race<IProtocol>): void {
    race.#timer = null;
    if (!race.#done) race.#next();
  }

  /** An attempt connected and built the protocol: it wins, the rest are stopped. */
  won(winner: OneShot<P>): void {
    this.#done = true;
    this.#winner = winner;
    this.#cancelTimer();
    for (const attempt of this.#attempts) if (attempt !== winner) attempt.abandon();
    this.#attempts.clear();
  }

  /** An attempt failed: try the next address now, or fail when none is left. */
  lost(attempt: OneShot<P>, reason: Failure): void {
    this.#attempts.delete(attempt);
    if (this.#done) return;
    if (this.#addresses.length > 0) this.#next();
    else if (this.#attempts.size === 0) this.#fail(reason);
  }

  get done(): boolean {
    return this.#done;
  }

  #fail(reason: Failure): void {
    this.#finish();
    this.deferred.errback(reason);
  }

  /** Stops everything in flight (cancel, or the final failure). */
  #finish(): void {
    this.#done = true;
    this.#cancelTimer();
    this.#winner?.abandon();
    for (const attempt of this.#attempts) attempt.abandon();
    this.#attempts.clear();
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    this.#timer = null;
    if (timer?.active()) timer.cancel();
  }
}

/** One connection attempt of a {@link Race}: builds the protocol only if it is the first to connect. */
class Attempt<P extends IProtocol> extends OneShot<P> {
  #won = false;

  constructor(
    readonly race: Race<P>,
    factory: ProtocolFactoryOf<P>,
  ) {
    super(factory, race.deferred, false);
  }

  override buildProtocol(addr: IAddress): P | null {
    if (this.race.done || this.settled) return null;
    this.race.won(this);
    this.#won = true;
    this.factory.doStart();
    const protocol = super.buildProtocol(addr);
    if (protocol === null) this.factory.doStop();
    return protocol;
  }

  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    if (this.settled) return;
    this.race.lost(this, reason);
  }

  override clientConnectionLost(_connector: IConnector, _reason: Failure): void {
    if (this.#won && this.protocol !== null) this.factory.doStop();
  }

  /** An attempt that could not even start: counts as failed. */
  override fail(reason: Failure): void {
    if (this.#won) super.fail(reason);
    else this.race.lost(this, reason);
  }
}
