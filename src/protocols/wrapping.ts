/**
 * {@link ProtocolWrapper} and {@link WrappingFactory}, as Twisted's
 * `twisted.protocols.policies`: a factory that wraps another factory's
 * protocols, so that a policy (a timeout, a bandwidth limit, a connection
 * limit, logging) can sit between a transport and a protocol without the
 * protocol knowing.
 *
 * The wrapper is the protocol the transport sees *and* the transport the
 * wrapped protocol sees: every transport call the wrapped protocol makes goes
 * through the wrapper, and every protocol callback the transport makes goes
 * through it too. Policies are subclasses that override a few of those
 * relays (see `policies.ts`, `throttling.ts`, `timeout.ts`).
 *
 * @module
 */

import type { Socket } from 'node:net';
import type { Failure } from '../reactor/failure.js';
import type {
  IAddress,
  IClientFactory,
  IConnector,
  IHalfCloseableProtocol,
  IProtocol,
  IProtocolFactory,
  IPullProducer,
  IPushProducer,
  IStreamTransport,
  ITCPTransport,
  ITransport,
} from '../reactor/interfaces.js';
import { ClientFactory, Protocol } from './protocol.js';

/**
 * What a {@link ProtocolWrapper} reports to: normally its
 * {@link WrappingFactory}. `registerProtocol` is called once, from the
 * wrapper's `makeConnection`, before the wrapped protocol's
 * `makeConnection`; `unregisterProtocol` once, from the wrapper's
 * `connectionLost` (before the wrapped protocol's) or `detach`.
 */
export interface IWrapperRegistry extends IProtocolFactory {
  registerProtocol(wrapper: ProtocolWrapper): void;
  unregisterProtocol(wrapper: ProtocolWrapper): void;
}

type HalfCloseHooks = Partial<
  Pick<IHalfCloseableProtocol, 'readConnectionLost' | 'writeConnectionLost'>
>;

/**
 * Wraps one protocol instance and acts as its transport (Twisted's
 * `ProtocolWrapper`).
 *
 * Protocol side (called by the real transport): `makeConnection` connects
 * the wrapper, registers it with its factory, then calls the wrapped
 * protocol's `makeConnection(this)`; `dataReceived` and `connectionLost` are
 * relayed (the wrapper unregisters itself first on loss);
 * `readConnectionLost`/`writeConnectionLost` are relayed when the wrapped
 * protocol has them. A wrapped protocol without `readConnectionLost` gets what
 * a transport gives such a protocol when the peer half-closes: its registered
 * producer is stopped and the connection is closed (`loseConnection`).
 *
 * Transport side (called by the wrapped protocol): `write`, `writeSequence`,
 * `loseConnection`, `abortConnection`, `loseWriteConnection`, `getPeer`,
 * `getHost`, `registerProducer`, `unregisterProducer`, `pauseProducing`,
 * `resumeProducing`, `stopProducing`, `bufferedAmount`, `disconnecting`,
 * `detach` and the TCP options are relayed to the real transport, which must
 * be an {@link IStreamTransport} (TCP, UNIX, or the testing transports). TCP
 * options on a transport without them are ignored (getters report `false`).
 * Errors the real transport throws (`TransportClosedError`,
 * `ProducerAlreadyRegistered`…) reach the caller unchanged.
 *
 * @typeParam P - the wrapped protocol's type.
 */
export class ProtocolWrapper<P extends IProtocol = IProtocol>
  extends Protocol<IStreamTransport>
  implements ITCPTransport, IHalfCloseableProtocol
{
  /** The protocol this wrapper relays to. Set for the wrapper's whole life. */
  readonly wrappedProtocol: P;

  /** The factory (registry) that made this wrapper. */
  declare factory: IWrapperRegistry;

  #disconnecting = false;
  #registered = false;
  #producer: IPushProducer | IPullProducer | null = null;

  /** A wrapper of `wrappedProtocol` that will report to `factory`. */
  constructor(factory: IWrapperRegistry, wrappedProtocol: P) {
    super();
    this.factory = factory;
    this.wrappedProtocol = wrappedProtocol;
  }

  /** `WrappedClass (WrapperClass)`, for logs (Twisted's `logPrefix`). */
  logPrefix(): string {
    return `${this.wrappedProtocol.constructor.name} (${this.constructor.name})`;
  }

  /** Same as {@link ProtocolWrapper.logPrefix}. */
  override toString(): string {
    return this.logPrefix();
  }

  // ------------------------------------------------------------------ protocol side

  /**
   * Attaches the real transport and runs this wrapper's own `connectionMade()`
   * (a no-op unless a subclass overrides it), then
   * `factory.registerProtocol(this)`, then the wrapped protocol's
   * `makeConnection(this)`. Called once, by the transport.
   */
  override makeConnection(transport: ITransport): void {
    super.makeConnection(transport);
    this.factory.registerProtocol(this);
    this.#registered = true;
    this.wrappedProtocol.makeConnection(this);
  }

  /** Relays the bytes to the wrapped protocol. */
  override dataReceived(data: Buffer): void {
    this.wrappedProtocol.dataReceived(data);
  }

  /**
   * Unregisters from the factory, then relays `reason` to the wrapped
   * protocol's `connectionLost`. Called once, by the transport.
   */
  override connectionLost(reason: Failure): void {
    this.#producer = null;
    this.#unregister();
    this.wrappedProtocol.connectionLost(reason);
  }

  /**
   * The peer half-closed. Relayed to the wrapped protocol's
   * `readConnectionLost`; without one, the registered producer (if any) is
   * unregistered and stopped and the connection closed, as a transport does.
   */
  readConnectionLost(): void {
    const wrapped = this.wrappedProtocol as P & HalfCloseHooks;
    if (typeof wrapped.readConnectionLost === 'function') {
      wrapped.readConnectionLost();
      return;
    }
    const producer = this.#producer;
    if (producer !== null) {
      this.unregisterProducer();
      producer.stopProducing();
    }
    this.loseConnection();
  }

  /** Our FIN went out: relayed to the wrapped protocol's `writeConnectionLost`, if any. */
  writeConnectionLost(): void {
    const wrapped = this.wrappedProtocol as P & HalfCloseHooks;
    if (typeof wrapped.writeConnectionLost === 'function') wrapped.writeConnectionLost();
  }

  // ------------------------------------------------------------------ transport side

  /** Relays to the real transport's `write`. @throws what it throws. */
  write(data: Uint8Array | string): void {
    this.transport.write(data);
  }

  /** Relays to the real transport's `writeSequence`. @throws what it throws. */
  writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    this.transport.writeSequence(data);
  }

  /** Marks the wrapper disconnecting and relays `loseConnection`. Idempotent as the transport is. */
  loseConnection(): void {
    this.#disconnecting = true;
    this.transport.loseConnection();
  }

  /** Marks the wrapper disconnecting and relays `abortConnection`. */
  abortConnection(): void {
    this.#disconnecting = true;
    this.transport.abortConnection();
  }

  /** Relays the half-close (`loseWriteConnection`). */
  loseWriteConnection(): void {
    this.transport.loseWriteConnection();
  }

  /** The real transport's peer address. */
  getPeer(): IAddress {
    return this.transport.getPeer();
  }

  /** The real transport's host address. */
  getHost(): IAddress {
    return this.transport.getHost();
  }

  /** `true` once this wrapper or the real transport is disconnecting (`false` before the connection). */
  get disconnecting(): boolean {
    const transport = this.transport as IStreamTransport | undefined;
    return this.#disconnecting || (transport?.disconnecting ?? false);
  }

  /** The real transport's unflushed byte count. */
  get bufferedAmount(): number {
    return this.transport.bufferedAmount;
  }

  /**
   * Relays the registration and remembers the producer (subclasses see it as
   * {@link ProtocolWrapper.producer}).
   * @throws ProducerAlreadyRegistered if one is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    this.transport.registerProducer(producer, streaming);
    this.#producer = producer;
  }

  /** Relays `unregisterProducer` and forgets the producer. */
  unregisterProducer(): void {
    this.#producer = null;
    this.transport.unregisterProducer();
  }

  /** Pauses the real transport's reads. */
  pauseProducing(): void {
    this.transport.pauseProducing();
  }

  /** Resumes the real transport's reads. */
  resumeProducing(): void {
    this.transport.resumeProducing();
  }

  /** Relays `stopProducing` (a transport then closes). */
  stopProducing(): void {
    this.transport.stopProducing();
  }

  /**
   * Relays `detach()`; the wrapper unregisters from its factory, since no
   * `connectionLost` will follow.
   * @throws TransportClosedError as the real transport does.
   */
  detach(): { socket: Socket; head: Buffer } {
    const detached = this.transport.detach();
    this.#producer = null;
    this.#unregister();
    return detached;
  }

  /** Relays `setTcpNoDelay` when the real transport has it. */
  setTcpNoDelay(enabled: boolean): void {
    (this.transport as Partial<ITCPTransport>).setTcpNoDelay?.(enabled);
  }

  /** The real transport's `getTcpNoDelay()`, or `false` without one. */
  getTcpNoDelay(): boolean {
    return (this.transport as Partial<ITCPTransport>).getTcpNoDelay?.() ?? false;
  }

  /** Relays `setTcpKeepAlive` when the real transport has it. */
  setTcpKeepAlive(enabled: boolean, initialDelaySeconds?: number): void {
    (this.transport as Partial<ITCPTransport>).setTcpKeepAlive?.(enabled, initialDelaySeconds);
  }

  /** The real transport's `getTcpKeepAlive()`, or `false` without one. */
  getTcpKeepAlive(): boolean {
    return (this.transport as Partial<ITCPTransport>).getTcpKeepAlive?.() ?? false;
  }

  // ------------------------------------------------------------------ for subclasses

  /** The producer the wrapped protocol registered, or `null`. */
  protected get producer(): IPushProducer | IPullProducer | null {
    return this.#producer;
  }

  /** Remembers `producer` as registered, without relaying (for subclasses that relay a proxy). */
  protected setProducer(producer: IPushProducer | IPullProducer | null): void {
    this.#producer = producer;
  }

  #unregister(): void {
    if (!this.#registered) return;
    this.#registered = false;
    this.factory.unregisterProtocol(this);
  }
}

/**
 * Wraps a factory and the protocols it builds, and keeps track of the live
 * wrappers in {@link WrappingFactory.protocols} (Twisted's `WrappingFactory`).
 *
 * `buildProtocol(addr)` asks the wrapped factory for a protocol (returning
 * `null` when it refuses) and wraps it with {@link WrappingFactory.wrapProtocol}.
 * `doStart`/`doStop` are relayed to the wrapped factory (before this
 * factory's own counting), and so are `startedConnecting`,
 * `clientConnectionFailed` and `clientConnectionLost` when the wrapped
 * factory has them, so a wrapping factory serves listening ports and
 * connectors alike.
 *
 * @typeParam F - the wrapped factory's type.
 * @typeParam W - the wrapper type `buildProtocol` returns. A subclass that
 *   changes it overrides {@link WrappingFactory.wrapProtocol}.
 */
export class WrappingFactory<
    F extends IProtocolFactory = IProtocolFactory,
    W extends ProtocolWrapper = ProtocolWrapper,
  >
  extends ClientFactory<W>
  implements IWrapperRegistry
{
  /** The factory whose protocols are wrapped. */
  readonly wrappedFactory: F;

  /**
   * The wrappers whose connection is up: added by `registerProtocol` (from
   * the wrapper's `makeConnection`), removed by `unregisterProtocol` (from
   * its `connectionLost` or `detach`).
   */
  readonly protocols = new Set<W>();

  /** A factory wrapping `wrappedFactory`. */
  constructor(wrappedFactory: F) {
    super();
    this.wrappedFactory = wrappedFactory;
  }

  /** `WrappedFactoryClass (WrapperFactoryClass)`, for logs (Twisted's `logPrefix`). */
  logPrefix(): string {
    return `${this.wrappedFactory.constructor.name} (${this.constructor.name})`;
  }

  override toString(): string {
    return `<${this.logPrefix()}>`;
  }

  /** Relays to the wrapped factory's `doStart()`, then counts this factory's start. */
  override doStart(): void {
    this.wrappedFactory.doStart();
    super.doStart();
  }

  /** Relays to the wrapped factory's `doStop()`, then counts this factory's stop. */
  override doStop(): void {
    this.wrappedFactory.doStop();
    super.doStop();
  }

  /** Relayed to the wrapped factory when it is a client factory. */
  override startedConnecting(connector: IConnector): void {
    (this.wrappedFactory as Partial<IClientFactory>).startedConnecting?.(connector);
  }

  /** Relayed to the wrapped factory when it is a client factory. */
  override clientConnectionFailed(connector: IConnector, reason: Failure): void {
    (this.wrappedFactory as Partial<IClientFactory>).clientConnectionFailed?.(connector, reason);
  }

  /** Relayed to the wrapped factory when it is a client factory. */
  override clientConnectionLost(connector: IConnector, reason: Failure): void {
    (this.wrappedFactory as Partial<IClientFactory>).clientConnectionLost?.(connector, reason);
  }

  /**
   * The wrapped factory's protocol for `addr`, wrapped; `null` (refuse the
   * connection) when the wrapped factory returns `null`.
   */
  override buildProtocol(addr: IAddress): W | null {
    const wrapped = this.wrappedFactory.buildProtocol(addr);
    return wrapped === null ? null : this.wrapProtocol(wrapped, addr);
  }

  /**
   * Makes the wrapper of `wrapped`: a plain {@link ProtocolWrapper} here.
   * Subclasses with their own wrapper class override it.
   */
  protected wrapProtocol(wrapped: IProtocol, _addr: IAddress): W {
    return new ProtocolWrapper(this, wrapped) as W;
  }

  /** Called by a wrapper when its connection is made: adds it to `protocols`. */
  registerProtocol(wrapper: W): void {
    this.protocols.add(wrapper);
  }

  /** Called by a wrapper when its connection is gone: removes it from `protocols`. */
  unregisterProtocol(wrapper: W): void {
    this.protocols.delete(wrapper);
  }
}
