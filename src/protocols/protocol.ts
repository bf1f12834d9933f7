/**
 * Protocol and factory base classes, as Twisted's `twisted.internet.protocol`:
 * {@link Protocol}, {@link Factory}, {@link ServerFactory},
 * {@link ClientFactory}, and {@link ClientCreator} (connect one protocol
 * instance and get it back through a Deferred).
 *
 * Hooks are plain methods to override (not events): they sit on the hot path.
 *
 * @module
 */

import { Deferred } from '../reactor/deferred.js';
import type { Failure } from '../reactor/failure.js';
import type {
  ConnectTCPOptions,
  IAddress,
  IClientFactory,
  IConnector,
  IProtocol,
  IProtocolFactory,
  IReactorTCP,
  IReactorUNIX,
  IStreamTransport,
  ITransport,
} from '../reactor/interfaces.js';
import { BaseFactory, withProtocol } from './base-factory.js';

/**
 * A protocol class: anything `new`-able that makes protocols. Its constructor
 * arguments are checked where they are given ({@link Factory.forProtocol},
 * {@link ClientCreator}).
 */
export type ProtocolClass<P extends IProtocol = IProtocol> = new (...args: never[]) => P;

// ====================================================================== Protocol

/**
 * The base class of stream protocols: override `connectionMade`,
 * `dataReceived` and `connectionLost` (all no-ops here).
 *
 * The reactor calls `makeConnection(transport)` once, then `dataReceived`
 * zero or more times (never re-entrantly), then `connectionLost(reason)`
 * exactly once. An exception from a hook is logged and the connection is
 * dropped.
 *
 * @typeParam T - the transport type `this.transport` is declared as. The
 * reactor's TCP and UNIX transports are {@link IStreamTransport}s (flow
 * control, half-close, `detach`); a protocol only ever given plain
 * transports may say `Protocol<ITransport>`.
 */
export class Protocol<T extends ITransport = IStreamTransport> implements IProtocol {
  /**
   * The connection's transport, set by `makeConnection` before
   * `connectionMade`; `undefined` until then. It stays set after
   * `connectionLost` (writing to it then throws `TransportClosedError`).
   */
  transport!: T;

  /** The factory that built this protocol (set by `Factory.buildProtocol`), else `null`. */
  factory: IProtocolFactory | null = null;

  /** `true` once `makeConnection` has run. */
  connected = false;

  /**
   * Attaches `transport` (it must provide `T`), sets `connected`, and calls
   * `connectionMade()`. Called once, by the transport.
   */
  makeConnection(transport: ITransport): void {
    this.connected = true;
    this.transport = transport as T;
    this.connectionMade();
  }

  /** The connection is up and `this.transport` is set. No-op by default. */
  connectionMade(): void {}

  /**
   * Bytes arrived; message boundaries are not preserved. The buffer is the
   * protocol's to keep. No-op by default.
   */
  dataReceived(_data: Buffer): void {}

  /**
   * The connection closed: `reason` wraps `ConnectionDone` for a clean close,
   * `ConnectionLost` (or a subclass such as `ConnectionAborted`) otherwise.
   * Called exactly once. No-op by default.
   */
  connectionLost(_reason: Failure): void {}
}

// ====================================================================== factories

/**
 * Builds protocols for a listening port or a connector.
 *
 * `buildProtocol(addr)` instantiates {@link Factory.protocol} with
 * {@link Factory.protocolArgs} and sets the instance's `factory` to this
 * factory. Ports and connectors call `doStart()` when they start using the
 * factory and `doStop()` when they stop; the factory counts them in
 * `numPorts`, calling `startFactory()` on the first start and `stopFactory()`
 * on the last stop, as Twisted.
 *
 * @typeParam P - the protocol type `buildProtocol` returns.
 */
export class Factory<P extends IProtocol = Protocol>
  extends BaseFactory<P>
  implements IProtocolFactory
{
  /**
   * A new factory of this class whose `buildProtocol` makes
   * `new protocol(...args)`.
   */
  static forProtocol<P extends IProtocol, A extends unknown[]>(
    this: new () => Factory<NoInfer<P>>,
    protocol: new (...args: A) => P,
    ...args: A
  ): Factory<P> {
    return withProtocol(new this(), protocol, args);
  }

  /**
   * Returns a new protocol for a connection from/to `addr` with its `factory`
   * set to this factory. Override to choose per address; return `null` to
   * refuse the connection (it is closed at once).
   * @throws InvalidArgumentError if {@link Factory.protocol} is not set.
   */
  buildProtocol(_addr: IAddress): P | null {
    const protocol = this.instantiateProtocol();
    (protocol as P & { factory: unknown }).factory = this;
    return protocol;
  }
}

/** A factory for listening ports (same as {@link Factory}, named as Twisted's). */
export class ServerFactory<P extends IProtocol = Protocol> extends Factory<P> {
  /** A new ServerFactory (or subclass) making `new protocol(...args)`. */
  static override forProtocol<P extends IProtocol, A extends unknown[]>(
    this: new () => ServerFactory<NoInfer<P>>,
    protocol: new (...args: A) => P,
    ...args: A
  ): ServerFactory<P> {
    return withProtocol(new this(), protocol, args);
  }
}

/**
 * A factory for connectors, told how the connection attempt goes:
 * `startedConnecting` when an attempt starts, then `clientConnectionFailed`
 * (the attempt failed) or, after the protocol's `connectionLost`,
 * `clientConnectionLost`. A hook may call `connector.connect()` to retry.
 * All hooks are no-ops here.
 */
export class ClientFactory<P extends IProtocol = Protocol>
  extends Factory<P>
  implements IClientFactory
{
  /** A new ClientFactory (or subclass) making `new protocol(...args)`. */
  static override forProtocol<P extends IProtocol, A extends unknown[]>(
    this: new () => ClientFactory<NoInfer<P>>,
    protocol: new (...args: A) => P,
    ...args: A
  ): ClientFactory<P> {
    return withProtocol(new this(), protocol, args);
  }

  /** A connection attempt started (after `connect()`). */
  startedConnecting(_connector: IConnector): void {}

  /** The attempt failed; `reason` wraps a `ConnectError` subclass. */
  clientConnectionFailed(_connector: IConnector, _reason: Failure): void {}

  /** An established connection closed; `reason` as in the protocol's `connectionLost`. */
  clientConnectionLost(_connector: IConnector, _reason: Failure): void {}
}

// ====================================================================== ClientCreator

/**
 * Hands one protocol instance to a connector and settles a Deferred: with the
 * protocol once it is connected, or with the connect failure.
 */
class InstanceFactory<P extends IProtocol> extends ClientFactory<P> {
  readonly #instance: P;
  readonly #deferred: Deferred<P>;
  connector: IConnector | null = null;
  #settled = false;

  constructor(instance: P, deferred: Deferred<P>) {
    super();
    this.#instance = instance;
    this.#deferred = deferred;
  }

  /** The Deferred was cancelled: fire nothing more (it errbacks with CancelledError). */
  abandon(): void {
    this.#settled = true;
  }

  override startedConnecting(connector: IConnector): void {
    this.connector = connector;
  }

  override buildProtocol(_addr: IAddress): P {
    // buildProtocol runs before makeConnection: fire once the current stack
    // (which connects the protocol) has returned.
    queueMicrotask(() => this.#fire());
    return this.#instance;
  }

  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#deferred.errback(reason);
  }

  #fire(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#deferred.callback(this.#instance);
  }

  override toString(): string {
    return `<InstanceFactory: ${String(this.#instance)}>`;
  }
}

/**
 * Connects a single protocol instance, `new ProtocolClass(...args)` made per
 * connect call, and returns it through a Deferred, as Twisted's
 * `ClientCreator`:
 *
 * ```ts
 * const proto = await new ClientCreator(reactor, Echo).connectTCP('127.0.0.1', port);
 * ```
 *
 * The Deferred fires with the protocol after its `connectionMade` has run, or
 * fails with the connect error (`ConnectionRefusedError`,
 * `ConnectTimeoutError`, `DNSLookupError`…). Cancelling it stops the attempt
 * or, once connected (but not yet fired), closes the connection; it then
 * fails with `CancelledError`.
 */
export class ClientCreator<P extends IProtocol, A extends unknown[] = []> {
  readonly #reactor: IReactorTCP & IReactorUNIX;
  readonly #protocolClass: new (
    ...args: A
  ) => P;
  readonly #args: A;

  /**
   * @param reactor - where to connect (the default `reactor`, or any
   *   IReactorTCP & IReactorUNIX, e.g. a test double).
   * @param protocolClass - instantiated with `args` on each connect call.
   */
  constructor(
    reactor: IReactorTCP & IReactorUNIX,
    protocolClass: new (...args: A) => P,
    ...args: A
  ) {
    this.#reactor = reactor;
    this.#protocolClass = protocolClass;
    this.#args = args;
  }

  /** Connects over TCP; see the class documentation for the Deferred. */
  connectTCP(host: string, port: number, options?: ConnectTCPOptions): Deferred<P> {
    return this.#connect((factory) => this.#reactor.connectTCP(host, port, factory, options));
  }

  /** Connects to a UNIX-domain socket; see the class documentation for the Deferred. */
  connectUNIX(path: string, options?: { timeout?: number }): Deferred<P> {
    return this.#connect((factory) => this.#reactor.connectUNIX(path, factory, options));
  }

  #connect(start: (factory: IClientFactory) => IConnector): Deferred<P> {
    let factory: InstanceFactory<P> | null = null;
    let connector: IConnector | null = null;
    const deferred = new Deferred<P>(() => {
      factory?.abandon();
      connector?.disconnect();
    });
    const instance = new this.#protocolClass(...this.#args);
    factory = new InstanceFactory(instance, deferred);
    connector = start(factory);
    return deferred;
  }
}
