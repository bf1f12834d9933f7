/**
 * `MemoryReactor`: a reactor for unit tests that records every listen and
 * connect call instead of touching the network, with simulated time (it is a
 * {@link Clock}), as Twisted's `MemoryReactorClock`.
 *
 * @module
 */

import { IPv4Address, UNIXAddress } from '../reactor/address.js';
import { Clock } from '../reactor/clock.js';
import { Deferred, succeed } from '../reactor/deferred.js';
import {
  ConnectionRefusedError,
  InvalidArgumentError,
  NotConnectingError,
  ReactorAlreadyRunning,
  ReactorNotRunning,
  UserError,
} from '../reactor/errors.js';
import { Failure } from '../reactor/failure.js';
import type {
  ConnectTCPOptions,
  IAddress,
  IClientFactory,
  IConnector,
  IListeningPort,
  IProtocol,
  IProtocolFactory,
  IReactorCore,
  IReactorTCP,
  IReactorUNIX,
  ITransport,
  ListenTCPOptions,
  ListenUNIXOptions,
  SystemEvent,
  TriggerId,
  TriggerPhase,
} from '../reactor/interfaces.js';
import { SystemEventTriggers } from '../reactor/triggers.js';
import { StringTransport } from './string-transport.js';

/** A port handed out by {@link MemoryReactor}: it listens nowhere. */
export class FakeListeningPort implements IListeningPort {
  /** `true` after `stopListening()`. */
  stopped = false;

  constructor(
    readonly factory: IProtocolFactory,
    readonly address: IAddress,
  ) {
    factory.doStart();
  }

  getHost(): IAddress {
    return this.address;
  }

  whenListening(): Deferred<this> {
    return succeed(this);
  }

  /** Stops "listening": the factory's `doStop()` runs the first time. */
  stopListening(): Deferred<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.factory.doStop();
    }
    return succeed(undefined);
  }
}

/** A connector handed out by {@link MemoryReactor}: the test decides how it ends. */
export class FakeConnector implements IConnector {
  state: 'disconnected' | 'connecting' | 'connected' = 'disconnected';
  /** How many times a connection was attempted (`connect()` calls). */
  attempts = 0;
  /** The protocol of the established connection, once `connectClient` made it. */
  protocol: IProtocol | null = null;
  /** The transport of the established connection. */
  transport: ITransport | null = null;

  constructor(
    readonly factory: IClientFactory,
    readonly destination: IAddress,
  ) {}

  connect(): void {
    this.state = 'connecting';
    this.attempts++;
    this.factory.startedConnecting(this);
  }

  /** @throws NotConnectingError unless a connection attempt is in progress. */
  stopConnecting(): void {
    if (this.state !== 'connecting') throw new NotConnectingError();
    this.state = 'disconnected';
    this.factory.clientConnectionFailed(this, new Failure(new UserError()));
  }

  disconnect(): void {
    if (this.state === 'connecting') this.stopConnecting();
    else if (this.state === 'connected') this.transport?.loseConnection();
  }

  getDestination(): IAddress {
    return this.destination;
  }
}

/** A recorded `listenTCP` call. */
export interface TCPServerRecord {
  port: number;
  factory: IProtocolFactory;
  backlog: number;
  interface: string;
  listeningPort: FakeListeningPort;
}

/** A recorded `connectTCP` call. */
export interface TCPClientRecord {
  host: string;
  port: number;
  factory: IClientFactory;
  timeout: number;
  bindAddress: readonly [string, number] | undefined;
  connector: FakeConnector;
}

/** A recorded `listenUNIX` call. */
export interface UNIXServerRecord {
  path: string;
  factory: IProtocolFactory;
  backlog: number;
  mode: number;
  listeningPort: FakeListeningPort;
}

/** A recorded `connectUNIX` call. */
export interface UNIXClientRecord {
  path: string;
  factory: IClientFactory;
  timeout: number;
  connector: FakeConnector;
}

/**
 * A reactor that records instead of doing I/O, with the simulated time of a
 * {@link Clock}. Start-up and shutdown triggers run as on the real reactor,
 * but synchronously: `run()` runs the start-up event at once, `stop()` the
 * shutdown event at once (a trigger returning an unfired Deferred holds the
 * event until it fires).
 */
export class MemoryReactor extends Clock implements IReactorCore, IReactorTCP, IReactorUNIX {
  readonly tcpServers: TCPServerRecord[] = [];
  readonly tcpClients: TCPClientRecord[] = [];
  readonly unixServers: UNIXServerRecord[] = [];
  readonly unixClients: UNIXClientRecord[] = [];

  /** `true` once `run()` has been called. */
  hasRun = false;
  /** `true` once `stop()` has been called. */
  hasStopped = false;

  #running = false;
  #started = false;
  #whenStopped: Deferred<void> | null = null;
  readonly #triggers = new SystemEventTriggers();

  get running(): boolean {
    return this.#running;
  }

  /** Runs the start-up event now. @throws ReactorAlreadyRunning if running. */
  run(): Deferred<void> {
    if (this.#running) throw new ReactorAlreadyRunning();
    this.#running = true;
    this.hasRun = true;
    const deferred = new Deferred<void>();
    this.#whenStopped = deferred;
    this.#triggers.fire('startup').addCallback(() => {
      if (this.#whenStopped === deferred) this.#started = true;
    });
    return deferred;
  }

  /** Runs the shutdown event now. @throws ReactorNotRunning if not running. */
  stop(): void {
    if (!this.#running || this.hasStopped) throw new ReactorNotRunning();
    this.hasStopped = true;
    this.#triggers
      .fire('shutdown', (phase, waits) => {
        if (phase !== 'during') return;
        for (const server of [...this.tcpServers, ...this.unixServers]) {
          waits.push(server.listeningPort.stopListening());
        }
      })
      .addCallback(() => {
        this.#running = false;
        this.#started = false;
        this.hasStopped = false;
        const whenStopped = this.#whenStopped;
        this.#whenStopped = null;
        whenStopped?.callback(undefined);
      });
  }

  callWhenRunning<A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId | undefined {
    if (this.#started) {
      fn(...args);
      return undefined;
    }
    return this.addSystemEventTrigger('after', 'startup', fn, ...args);
  }

  addSystemEventTrigger<A extends unknown[]>(
    phase: TriggerPhase,
    event: SystemEvent,
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId {
    return this.#triggers.add(phase, event, fn, args);
  }

  removeSystemEventTrigger(id: TriggerId): void {
    this.#triggers.remove(id);
  }

  fireSystemEvent(event: SystemEvent): Deferred<void> {
    return this.#triggers.fire(event);
  }

  // ------------------------------------------------------------------ TCP and UNIX

  listenTCP(
    port: number,
    factory: IProtocolFactory,
    options: ListenTCPOptions = {},
  ): IListeningPort {
    checkPort(port);
    const iface = options.interface ?? '';
    const listeningPort = new FakeListeningPort(
      factory,
      new IPv4Address(
        'TCP',
        iface || '0.0.0.0',
        port === 0 ? 30000 + this.tcpServers.length : port,
      ),
    );
    this.tcpServers.push({
      port,
      factory,
      backlog: options.backlog ?? 50,
      interface: iface,
      listeningPort,
    });
    return listeningPort;
  }

  connectTCP(
    host: string,
    port: number,
    factory: IClientFactory,
    options: ConnectTCPOptions = {},
  ): IConnector {
    checkPort(port);
    const connector = new FakeConnector(factory, new IPv4Address('TCP', host, port));
    this.tcpClients.push({
      host,
      port,
      factory,
      timeout: options.timeout ?? 30,
      bindAddress: options.bindAddress,
      connector,
    });
    connector.connect();
    return connector;
  }

  listenUNIX(
    path: string,
    factory: IProtocolFactory,
    options: ListenUNIXOptions = {},
  ): IListeningPort {
    const listeningPort = new FakeListeningPort(factory, new UNIXAddress(path));
    this.unixServers.push({
      path,
      factory,
      backlog: options.backlog ?? 50,
      mode: options.mode ?? 0o666,
      listeningPort,
    });
    return listeningPort;
  }

  connectUNIX(
    path: string,
    factory: IClientFactory,
    options: { timeout?: number } = {},
  ): IConnector {
    const connector = new FakeConnector(factory, new UNIXAddress(path));
    this.unixClients.push({ path, factory, timeout: options.timeout ?? 30, connector });
    connector.connect();
    return connector;
  }

  // ------------------------------------------------------------------ driving connections

  /**
   * Completes the connection attempt of `connector` (default: the latest
   * TCP client): the factory builds a protocol, which is connected to
   * `transport` (a new {@link StringTransport} by default).
   * @throws InvalidArgumentError if the connector is not connecting, or the factory refuses.
   */
  connectClient<P extends IProtocol = IProtocol, T extends ITransport = StringTransport>(
    connector: FakeConnector = this.#latestConnector(),
    transport?: T,
  ): { protocol: P; transport: T } {
    if (connector.state !== 'connecting') {
      throw new InvalidArgumentError('connectClient(): that connector is not connecting');
    }
    const protocol = connector.factory.buildProtocol(connector.destination) as P | null;
    if (protocol === null) throw new InvalidArgumentError('the client factory refused to build');
    const t = transport ?? (new StringTransport() as unknown as T);
    connector.state = 'connected';
    connector.protocol = protocol;
    connector.transport = t;
    protocol.makeConnection(t);
    return { protocol, transport: t };
  }

  /**
   * Fails the connection attempt of `connector` (default: the latest TCP
   * client) with `reason` (default {@link ConnectionRefusedError}).
   */
  failClient(
    connector: FakeConnector = this.#latestConnector(),
    reason: Error = new ConnectionRefusedError(),
  ): void {
    if (connector.state !== 'connecting') {
      throw new InvalidArgumentError('failClient(): that connector is not connecting');
    }
    connector.state = 'disconnected';
    connector.factory.clientConnectionFailed(connector, new Failure(reason));
  }

  /**
   * Simulates an incoming connection on a listening port (default: the latest
   * TCP server): the port's factory builds a protocol for `peer`, connected to
   * `transport`. Returns `null` for the protocol if the factory refused.
   */
  acceptConnection<P extends IProtocol = IProtocol, T extends ITransport = StringTransport>(
    port: FakeListeningPort = this.#latestServer(),
    transport?: T,
    peer: IAddress = new IPv4Address('TCP', '127.0.0.1', 54321),
  ): { protocol: P | null; transport: T } {
    const t = transport ?? (new StringTransport() as unknown as T);
    const protocol = port.factory.buildProtocol(peer) as P | null;
    if (protocol === null) t.loseConnection();
    else protocol.makeConnection(t);
    return { protocol, transport: t };
  }

  #latestConnector(): FakeConnector {
    const last = this.tcpClients.at(-1);
    if (last === undefined) throw new InvalidArgumentError('no connectTCP() call was recorded');
    return last.connector;
  }

  #latestServer(): FakeListeningPort {
    const last = this.tcpServers.at(-1);
    if (last === undefined) throw new InvalidArgumentError('no listenTCP() call was recorded');
    return last.listeningPort;
  }
}

/** Alias with Twisted's name: the MemoryReactor already keeps simulated time. */
export const MemoryReactorClock = MemoryReactor;

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`port must be an integer from 0 to 65535, got ${port}`);
  }
}
