/**
 * Policies: ProtocolWrapper/WrappingFactory relaying, ProtocolTimeout and
 * TimeoutFactory (Clock-driven), ThrottlingFactory (pause counts), the
 * connection limits and SpewingFactory; over StringTransport, MemoryReactor
 * and the in-memory pump, and over real TCP for wrapping, throttling and
 * timeouts.
 */

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  LimitConnectionsByPeer,
  LimitTotalConnectionsFactory,
  ProtocolTimeout,
  ProtocolWrapper,
  peerKey,
  SpewingFactory,
  ThrottlingFactory,
  type ThrottlingProtocol,
  TimeoutFactory,
  TimeoutProtocol,
  WrappingFactory,
} from '../src/protocols/policies.js';
import { ClientFactory, Factory, Protocol } from '../src/protocols/protocol.js';
import { IPv4Address, IPv6Address, UNIXAddress } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionRefusedError,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import type {
  IAddress,
  IConnector,
  IProtocol,
  IProtocolFactory,
  IPullProducer,
  IPushProducer,
  ITransport,
} from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { MemoryReactor } from '../src/testing/memory-reactor.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import {
  StringTransport,
  StringTransportWithDisconnection,
} from '../src/testing/string-transport.js';

// ---------------------------------------------------------------------- helpers

/** Records everything that happens to it. */
class Recorder extends Protocol {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  reason: Failure | null = null;
  lostCount = 0;
  readonly made = new Deferred<void>();
  readonly lost = new Deferred<void>();
  #waiters: Array<{ n: number; d: Deferred<void> }> = [];

  override connectionMade(): void {
    this.made.callback(undefined);
  }

  override dataReceived(data: Buffer): void {
    this.chunks.push(data);
    this.bytes += data.length;
    this.#waiters = this.#waiters.filter((w) => {
      if (this.bytes < w.n) return true;
      w.d.callback(undefined);
      return false;
    });
  }

  override connectionLost(reason: Failure): void {
    this.reason = reason;
    this.lostCount++;
    this.lost.callback(undefined);
  }

  /** Fires once `n` bytes in total have arrived. */
  received(n: number): Promise<void> {
    const d = new Deferred<void>();
    if (this.bytes >= n) d.callback(undefined);
    else this.#waiters.push({ n, d });
    return d.asPromise();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

class Echo extends Recorder {
  override dataReceived(data: Buffer): void {
    super.dataReceived(data);
    this.transport.write(data);
  }
}

class HalfCloser extends Recorder {
  readLost = 0;
  writeLost = 0;
  readConnectionLost(): void {
    this.readLost++;
    this.transport.write('bye');
    this.transport.loseWriteConnection();
  }
  writeConnectionLost(): void {
    this.writeLost++;
  }
}

/** A factory remembering what it built. */
class Keeper<P extends IProtocol = Recorder> extends ClientFactory<P> {
  readonly built: P[] = [];
  readonly calls: string[] = [];
  override buildProtocol(addr: IAddress): P | null {
    const p = super.buildProtocol(addr);
    if (p !== null) this.built.push(p);
    return p;
  }
  override startFactory(): void {
    this.calls.push('startFactory');
  }
  override stopFactory(): void {
    this.calls.push('stopFactory');
  }
  override startedConnecting(_c: IConnector): void {
    this.calls.push('startedConnecting');
  }
  override clientConnectionFailed(_c: IConnector, r: Failure): void {
    this.calls.push(`clientConnectionFailed:${r.value.name}`);
  }
  override clientConnectionLost(_c: IConnector, r: Failure): void {
    this.calls.push(`clientConnectionLost:${r.value.name}`);
  }
}

function keeper<P extends IProtocol>(protocol: new () => P): Keeper<P> {
  const k = new Keeper<P>();
  k.protocol = protocol;
  return k;
}

/** A push producer that counts what it is told. */
class CountingProducer implements IPushProducer {
  pauses = 0;
  resumes = 0;
  stops = 0;
  paused = false;
  pauseProducing(): void {
    this.pauses++;
    this.paused = true;
  }
  resumeProducing(): void {
    this.resumes++;
    this.paused = false;
  }
  stopProducing(): void {
    this.stops++;
  }
}

class CountingPullProducer implements IPullProducer {
  pulls = 0;
  stops = 0;
  resumeProducing(): void {
    this.pulls++;
  }
  stopProducing(): void {
    this.stops++;
  }
}

const PEER = new IPv4Address('TCP', '192.0.2.7', 5555);

/** Builds a wrapper from `factory` and connects it to a new StringTransport. */
function connect<W extends ProtocolWrapper>(
  factory: { buildProtocol(addr: IAddress): W | null },
  peer: IAddress = PEER,
): { wrapper: W; transport: StringTransportWithDisconnection } {
  const wrapper = factory.buildProtocol(peer);
  assert.ok(wrapper !== null);
  const transport = new StringTransportWithDisconnection({ peerAddress: peer });
  transport.protocol = wrapper;
  wrapper.makeConnection(transport);
  return { wrapper, transport };
}

function captureLog(): { events: LogEvent[]; stop: () => void } {
  const events: LogEvent[] = [];
  const stop = addObserver((e) => events.push(e));
  return { events, stop };
}

const openPorts = new Set<Port>();
const openSockets = new Set<Socket>();
after(async () => {
  for (const s of openSockets) s.destroy();
  for (const p of openPorts) await p.stopListening();
});

async function listen(factory: IProtocolFactory): Promise<{ port: Port; portNumber: number }> {
  const port = listenTCP(reactor, 0, factory, { interface: '127.0.0.1' });
  openPorts.add(port);
  await port.whenListening();
  return { port, portNumber: (port.getHost() as IPv4Address).port };
}

async function closePort(port: Port): Promise<void> {
  openPorts.delete(port);
  await port.stopListening();
}

/** A raw client socket with a byte counter and close promise. */
async function rawClient(portNumber: number): Promise<{
  socket: Socket;
  received: () => Buffer;
  closed: Promise<void>;
  waitFor: (n: number) => Promise<void>;
}> {
  const socket = net.connect({ host: '127.0.0.1', port: portNumber });
  openSockets.add(socket);
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    total += c.length;
    for (const w of waiters.splice(0)) {
      if (total >= w.n) w.resolve();
      else waiters.push(w);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.on('close', () => {
      openSockets.delete(socket);
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => Buffer.concat(chunks),
    closed,
    waitFor: (n) =>
      new Promise<void>((resolve) => {
        if (total >= n) resolve();
        else waiters.push({ n, resolve });
      }),
  };
}

/** `n` turns of the event loop (only to check that something did NOT happen). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------------- ProtocolWrapper

describe('ProtocolWrapper / WrappingFactory', () => {
  test('the wrapper is the transport the wrapped protocol sees; data and loss are relayed', () => {
    const inner = keeper(Echo);
    const factory = new WrappingFactory(inner);
    const { client, server, pump } = connectedServerAndClient<ProtocolWrapper, Recorder>(
      factory,
      () => new Recorder(),
    );
    const echo = server.wrappedProtocol as Echo;
    assert.equal(inner.built[0], echo);
    assert.equal(echo.factory, inner);
    assert.equal(echo.transport, server);
    assert.equal(server.factory, factory);
    assert.deepEqual([...factory.protocols], [server]);
    client.transport.write('hello');
    pump.flush();
    assert.equal(echo.text(), 'hello');
    assert.equal(client.text(), 'hello');
    assert.equal(server.getPeer(), server.transport.getPeer());
    assert.equal(server.getHost(), server.transport.getHost());
    echo.transport.loseConnection();
    assert.equal(server.disconnecting, true);
    pump.flush();
    assert.ok(echo.reason?.check(ConnectionDone));
    assert.equal(echo.lostCount, 1);
    assert.equal(factory.protocols.size, 0);
  });

  test('transport calls are relayed to the real transport', () => {
    const factory = new WrappingFactory(keeper(Recorder));
    const { wrapper, transport } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    inner.transport.write('a');
    inner.transport.write(Buffer.from('b'));
    inner.transport.writeSequence(['c', Buffer.from('d')]);
    assert.equal(transport.value().toString(), 'abcd');
    assert.equal(wrapper.bufferedAmount, 0);

    inner.transport.pauseProducing();
    assert.equal(transport.producerState, 'paused');
    inner.transport.resumeProducing();
    assert.equal(transport.producerState, 'producing');

    const producer = new CountingProducer();
    inner.transport.registerProducer(producer, true);
    assert.equal(transport.producer, producer);
    assert.equal(transport.streaming, true);
    assert.throws(
      () => inner.transport.registerProducer(producer, true),
      ProducerAlreadyRegistered,
    );
    inner.transport.unregisterProducer();
    assert.equal(transport.producer, null);

    wrapper.setTcpNoDelay(true);
    assert.equal(wrapper.getTcpNoDelay(), true);
    assert.equal(transport.getTcpNoDelay(), true);
    wrapper.setTcpKeepAlive(true);
    assert.equal(wrapper.getTcpKeepAlive(), true);

    inner.transport.loseWriteConnection();
    assert.equal(transport.writeClosed, true);
    assert.equal(String(wrapper), 'Recorder (ProtocolWrapper)');
    assert.equal(factory.logPrefix(), 'Keeper (WrappingFactory)');

    inner.transport.abortConnection();
    assert.equal(transport.aborted, true);
    assert.ok(inner.reason?.check(ConnectionAborted));
    assert.equal(factory.protocols.size, 0);
    assert.throws(() => inner.transport.write('x'), TransportClosedError);
  });

  test('stopProducing is relayed (a transport closes)', () => {
    const { wrapper, transport } = connect(new WrappingFactory(keeper(Recorder)));
    wrapper.stopProducing();
    assert.equal(transport.producerState, 'stopped');
  });

  test('TCP options are ignored on a transport without them', () => {
    const factory = new WrappingFactory(keeper(Recorder));
    const wrapper = factory.buildProtocol(PEER)!;
    const plain: ITransport = {
      write() {},
      writeSequence() {},
      loseConnection() {},
      abortConnection() {},
      getPeer: () => PEER,
      getHost: () => PEER,
    };
    wrapper.makeConnection(plain);
    wrapper.setTcpNoDelay(true);
    wrapper.setTcpKeepAlive(true);
    assert.equal(wrapper.getTcpNoDelay(), false);
    assert.equal(wrapper.getTcpKeepAlive(), false);
  });

  test('a refusing wrapped factory refuses through the wrapper', () => {
    class Refuser extends Factory {
      override buildProtocol(): null {
        return null;
      }
    }
    assert.equal(new WrappingFactory(new Refuser()).buildProtocol(PEER), null);
  });

  test('half-close: relayed to a protocol that has the hooks', () => {
    const factory = new WrappingFactory(keeper(HalfCloser));
    const { client, server, pump } = connectedServerAndClient<ProtocolWrapper, Recorder>(
      factory,
      () => new Recorder(),
    );
    const inner = server.wrappedProtocol as HalfCloser;
    client.transport.write('hi');
    client.transport.loseWriteConnection();
    pump.flush();
    assert.equal(inner.text(), 'hi');
    assert.equal(inner.readLost, 1);
    assert.equal(inner.writeLost, 1);
    assert.equal(client.text(), 'bye');
  });

  test('half-close: a protocol without hooks gets its producer stopped and the connection closed', () => {
    const factory = new WrappingFactory(keeper(Recorder));
    const { client, server, pump } = connectedServerAndClient<ProtocolWrapper, Recorder>(
      factory,
      () => new Recorder(),
    );
    const inner = server.wrappedProtocol as Recorder;
    const producer = new CountingProducer();
    inner.transport.registerProducer(producer, true);
    client.transport.loseWriteConnection();
    pump.flush();
    assert.equal(producer.stops, 1);
    assert.ok(inner.reason?.check(ConnectionDone));
    assert.equal(client.lostCount, 1);
    assert.equal(factory.protocols.size, 0);
  });

  test('detach() is relayed and unregisters the wrapper', () => {
    class DetachableTransport extends StringTransport {
      override detach(): { socket: Socket; head: Buffer } {
        return { socket: new net.Socket(), head: Buffer.from('h') };
      }
    }
    const factory = new WrappingFactory(keeper(Recorder));
    const wrapper = factory.buildProtocol(PEER)!;
    wrapper.makeConnection(new DetachableTransport());
    assert.equal(factory.protocols.size, 1);
    const { head, socket } = (wrapper.wrappedProtocol as Recorder).transport.detach();
    socket.destroy();
    assert.equal(head.toString(), 'h');
    assert.equal(factory.protocols.size, 0);
  });

  test('doStart/doStop and the client hooks are relayed to the wrapped factory', () => {
    const r = new MemoryReactor();
    const inner = keeper(Recorder);
    const factory = new WrappingFactory(inner);
    const port = r.listenTCP(0, factory);
    assert.deepEqual(inner.calls, ['startFactory']);
    assert.equal(factory.numPorts, 1);
    port.stopListening();
    assert.deepEqual(inner.calls, ['startFactory', 'stopFactory']);
    assert.equal(factory.numPorts, 0);

    inner.calls.length = 0;
    const connector = r.connectTCP('127.0.0.1', 1, factory);
    r.failClient();
    assert.deepEqual(inner.calls, [
      'startedConnecting',
      `clientConnectionFailed:${ConnectionRefusedError.name}`,
    ]);
    connector.connect();
    const { protocol } = r.connectClient<ProtocolWrapper>();
    factory.clientConnectionLost(connector, new Failure(new ConnectionDone()));
    assert.ok(protocol.wrappedProtocol instanceof Recorder);
    assert.equal(inner.calls.at(-1), 'clientConnectionLost:ConnectionDone');
  });

  test('client hooks are skipped for a wrapped server-only factory', () => {
    const inner: IProtocolFactory = {
      buildProtocol: () => new Recorder(),
      doStart() {},
      doStop() {},
    };
    const factory = new WrappingFactory(inner);
    const r = new MemoryReactor();
    const connector = r.connectTCP('127.0.0.1', 1, factory);
    r.failClient();
    connector.connect();
    const { protocol } = r.connectClient<ProtocolWrapper>();
    assert.ok(protocol instanceof ProtocolWrapper);
    factory.clientConnectionLost(connector, new Failure(new ConnectionDone()));
  });

  test('real TCP: a wrapped echo server echoes and tracks its connections', async () => {
    const inner = keeper(Echo);
    const factory = new WrappingFactory(inner);
    const { port, portNumber } = await listen(factory);
    const c = await rawClient(portNumber);
    c.socket.write('ping');
    await c.waitFor(4);
    assert.equal(c.received().toString(), 'ping');
    assert.equal(factory.protocols.size, 1);
    const echo = inner.built[0] as Echo;
    assert.ok([...factory.protocols][0].wrappedProtocol === echo);
    c.socket.end();
    await echo.lost;
    await c.closed;
    assert.equal(factory.protocols.size, 0);
    await closePort(port);
  });
});

// ---------------------------------------------------------------------- ProtocolTimeout

describe('ProtocolTimeout', () => {
  function owner(): { transport: StringTransport } {
    return { transport: new StringTransport() };
  }

  test('fires after the period and loses the connection by default', () => {
    const clock = new Clock();
    const o = owner();
    const t = new ProtocolTimeout(o, { clock });
    assert.equal(t.timeout, null);
    assert.equal(t.setTimeout(5), null);
    assert.equal(t.pending, true);
    clock.advance(4.999);
    assert.equal(o.transport.disconnecting, false);
    clock.advance(0.001);
    assert.equal(o.transport.disconnecting, true);
    assert.equal(o.transport.aborted, false);
    assert.equal(t.pending, false);
    assert.equal(t.timeout, 5);
  });

  test("action 'abort' aborts; onTimeout replaces the action", () => {
    const clock = new Clock();
    const o = owner();
    new ProtocolTimeout(o, { clock, action: 'abort', timeout: 1 });
    clock.advance(1);
    assert.equal(o.transport.aborted, true);

    let fired = 0;
    const o2 = owner();
    new ProtocolTimeout(o2, { clock, timeout: 1, onTimeout: () => fired++ });
    clock.advance(1);
    assert.equal(fired, 1);
    assert.equal(o2.transport.disconnecting, false);

    let fired3 = 0;
    new ProtocolTimeout(null, { clock, timeout: 2, onTimeout: () => fired3++ });
    clock.advance(2);
    assert.equal(fired3, 1);
  });

  test('one delayed call, reset on activity and on a new period', () => {
    const clock = new Clock();
    const o = owner();
    const t = new ProtocolTimeout(o, { clock, timeout: 10 });
    const [call] = clock.getDelayedCalls();
    for (let i = 0; i < 5; i++) {
      clock.advance(9);
      t.resetTimeout();
    }
    assert.equal(o.transport.disconnecting, false);
    assert.deepEqual(clock.getDelayedCalls(), [call]);
    assert.equal(call.getTime(), 45 + 10);
    assert.equal(t.setTimeout(3), 10);
    assert.deepEqual(clock.getDelayedCalls(), [call]);
    assert.equal(call.getTime(), 45 + 3);
    clock.advance(3);
    assert.equal(o.transport.disconnecting, true);
  });

  test('setTimeout(null) and cancelTimeout disarm; resetTimeout after firing does nothing', () => {
    const clock = new Clock();
    const o = owner();
    const t = new ProtocolTimeout(o, { clock, timeout: 1 });
    assert.equal(t.setTimeout(null), 1);
    assert.equal(clock.getDelayedCalls().length, 0);
    t.resetTimeout();
    assert.equal(clock.getDelayedCalls().length, 0);
    t.setTimeout(2);
    t.cancelTimeout();
    t.cancelTimeout();
    assert.equal(t.timeout, null);
    assert.equal(clock.getDelayedCalls().length, 0);

    let fired = 0;
    const t2 = new ProtocolTimeout(null, { clock, timeout: 1, onTimeout: () => fired++ });
    clock.advance(1);
    t2.resetTimeout();
    assert.equal(clock.getDelayedCalls().length, 0);
    t2.setTimeout(1); // re-arms after firing
    clock.advance(1);
    assert.equal(fired, 2);
  });

  test('timeoutConnection can be overridden by a subclass', () => {
    const clock = new Clock();
    const seen: string[] = [];
    class Mine extends ProtocolTimeout {
      override timeoutConnection(): void {
        seen.push('custom');
      }
    }
    new Mine(owner(), { clock, timeout: 1 });
    clock.advance(1);
    assert.deepEqual(seen, ['custom']);
  });

  test('bad arguments throw InvalidArgumentError', () => {
    const clock = new Clock();
    assert.throws(() => new ProtocolTimeout(null, { clock }), InvalidArgumentError);
    assert.throws(
      () => new ProtocolTimeout(owner(), { clock, action: 'x' as 'lose' }),
      InvalidArgumentError,
    );
    assert.throws(() => new ProtocolTimeout(owner(), { clock, timeout: -1 }), InvalidArgumentError);
    const t = new ProtocolTimeout(owner(), { clock });
    assert.throws(() => t.setTimeout(Number.NaN), InvalidArgumentError);
    assert.throws(() => t.setTimeout(Number.POSITIVE_INFINITY), InvalidArgumentError);
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('composed into a protocol: idle clients are dropped, active ones kept', () => {
    const clock = new Clock();
    class Session extends Recorder {
      readonly idle = new ProtocolTimeout(this, { clock });
      override connectionMade(): void {
        this.idle.setTimeout(5);
        super.connectionMade();
      }
      override dataReceived(data: Buffer): void {
        this.idle.resetTimeout();
        super.dataReceived(data);
      }
      override connectionLost(reason: Failure): void {
        this.idle.cancelTimeout();
        super.connectionLost(reason);
      }
    }
    const { client, server, pump } = connectedServerAndClient<Session, Recorder>(
      () => new Session(),
      () => new Recorder(),
    );
    for (let i = 0; i < 3; i++) {
      clock.advance(4);
      client.transport.write('x');
      pump.flush();
    }
    assert.equal(server.lostCount, 0);
    clock.advance(5);
    pump.flush();
    assert.equal(server.lostCount, 1);
    assert.equal(client.lostCount, 1);
    assert.equal(clock.getDelayedCalls().length, 0);
  });
});

// ---------------------------------------------------------------------- TimeoutFactory

describe('TimeoutFactory', () => {
  test('drops a connection idle for timeoutPeriod; data either way resets', () => {
    const clock = new Clock();
    const factory = new TimeoutFactory(keeper(Recorder), { timeoutPeriod: 10, clock });
    assert.equal(factory.timeoutPeriod, 10);
    const { wrapper, transport } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    assert.ok(wrapper instanceof TimeoutProtocol);
    assert.equal(wrapper.timeoutPeriod, 10);
    clock.advance(9);
    wrapper.dataReceived(Buffer.from('in'));
    clock.advance(9);
    inner.transport.write('out');
    clock.advance(9);
    inner.transport.writeSequence(['a', 'b']);
    clock.advance(9);
    assert.equal(transport.disconnecting, false);
    clock.advance(1);
    assert.equal(transport.disconnecting, true);
    assert.ok(inner.reason?.check(ConnectionDone));
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('connectionLost cancels the timer; the timer starts at makeConnection', () => {
    const clock = new Clock();
    const factory = new TimeoutFactory(keeper(Recorder), { timeoutPeriod: 10, clock });
    const built = factory.buildProtocol(PEER)!;
    assert.equal(clock.getDelayedCalls().length, 0, 'no timer before the connection');
    built.makeConnection(new StringTransport());
    assert.equal(clock.getDelayedCalls().length, 1);
    built.connectionLost(new Failure(new ConnectionDone()));
    assert.equal(clock.getDelayedCalls().length, 0);
    assert.equal(factory.protocols.size, 0);
  });

  test('setTimeout / cancelTimeout / timeoutFunc override', () => {
    const clock = new Clock();
    class Soft extends TimeoutProtocol {
      timedOut = 0;
      override timeoutFunc(): void {
        this.timedOut++;
      }
    }
    class SoftFactory extends TimeoutFactory {
      protected override wrapProtocol(wrapped: IProtocol): TimeoutProtocol {
        return new Soft(this, wrapped, this.timeoutPeriod, this.clock);
      }
    }
    const factory = new SoftFactory(keeper(Recorder), { timeoutPeriod: 10, clock });
    const { wrapper, transport } = connect(factory);
    const soft = wrapper as Soft;
    soft.setTimeout(2);
    clock.advance(2);
    assert.equal(soft.timedOut, 1);
    assert.equal(transport.disconnecting, false);
    soft.setTimeout(3);
    soft.cancelTimeout();
    clock.advance(5);
    assert.equal(soft.timedOut, 1);
    soft.setTimeout(1);
    soft.resetTimeout();
    clock.advance(1);
    assert.equal(soft.timedOut, 2);
  });

  test('setTimeout before the connection changes the starting period', () => {
    const clock = new Clock();
    const factory = new TimeoutFactory(keeper(Recorder), { timeoutPeriod: 10, clock });
    const wrapper = factory.buildProtocol(PEER)!;
    wrapper.setTimeout(null);
    wrapper.makeConnection(new StringTransport());
    assert.equal(clock.getDelayedCalls().length, 0);
    assert.throws(() => wrapper.setTimeout(-3), InvalidArgumentError);
    assert.throws(
      () => new TimeoutFactory(keeper(Recorder), { timeoutPeriod: -1 }),
      InvalidArgumentError,
    );
  });

  test('real TCP: an idle client is disconnected when the clock passes the period', async () => {
    const clock = new Clock();
    const inner = keeper(Recorder);
    const factory = new TimeoutFactory(inner, { timeoutPeriod: 30, clock });
    const { port, portNumber } = await listen(factory);
    const c = await rawClient(portNumber);
    // Activity keeps it open.
    for (let i = 1; i <= 3; i++) {
      clock.advance(20);
      c.socket.write('x');
      while (inner.built.length === 0) await turns(1);
      await (inner.built[0] as Recorder).received(i);
    }
    const server = inner.built[0] as Recorder;
    assert.equal(server.lostCount, 0);
    clock.advance(30);
    await server.lost;
    await c.closed;
    assert.ok(server.reason?.check(ConnectionDone));
    assert.equal(clock.getDelayedCalls().length, 0);
    await closePort(port);
  });
});

// ---------------------------------------------------------------------- ThrottlingFactory

describe('ThrottlingFactory', () => {
  // Throttling is logged (as in Twisted); keep it out of the test output.
  let quiet: () => void = () => {};
  before(() => {
    quiet = addObserver(() => {});
  });
  after(() => quiet());

  test('reads over readLimit pause every connection for read/limit - 1 seconds', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { readLimit: 10, clock });
    const a = connect(factory);
    const b = connect(factory, new IPv4Address('TCP', '192.0.2.8', 1));
    assert.equal(factory.connectionCount, 2);
    a.wrapper.dataReceived(Buffer.alloc(20));
    b.wrapper.dataReceived(Buffer.alloc(20));
    assert.equal(factory.readThisSecond, 40);
    assert.equal((a.wrapper.wrappedProtocol as Recorder).bytes, 20);
    clock.advance(1);
    assert.equal(factory.readsThrottled, true);
    assert.equal(factory.readThisSecond, 0);
    assert.equal(a.transport.producerState, 'paused');
    assert.equal(b.transport.producerState, 'paused');
    assert.equal(a.wrapper.readsThrottled, true);
    // 40 bytes at 10/s: 3 more seconds paused.
    clock.advance(1);
    clock.advance(1);
    assert.equal(a.transport.producerState, 'paused');
    clock.advance(1);
    assert.equal(factory.readsThrottled, false);
    assert.equal(a.transport.producerState, 'producing');
    assert.equal(b.transport.producerState, 'producing');
  });

  test('at or under the limit nothing is paused', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { readLimit: 10, clock });
    const a = connect(factory);
    for (let i = 0; i < 5; i++) {
      a.wrapper.dataReceived(Buffer.alloc(10));
      clock.advance(1);
      assert.equal(a.transport.producerState, 'producing');
    }
  });

  test("the protocol's own pause survives the unthrottle; a throttled pause survives its resume", () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { readLimit: 10, clock });
    const { wrapper, transport } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    inner.transport.pauseProducing();
    wrapper.dataReceived(Buffer.alloc(20));
    clock.advance(1); // throttle, 1 s
    clock.advance(1); // unthrottle
    assert.equal(factory.readsThrottled, false);
    assert.equal(transport.producerState, 'paused', 'the protocol still wants a pause');
    inner.transport.resumeProducing();
    assert.equal(transport.producerState, 'producing');

    wrapper.dataReceived(Buffer.alloc(30));
    clock.advance(1);
    assert.equal(transport.producerState, 'paused');
    inner.transport.resumeProducing();
    assert.equal(transport.producerState, 'paused', 'still throttled');
  });

  test('a connection made while reads are throttled starts paused', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { readLimit: 10, clock });
    const a = connect(factory);
    a.wrapper.dataReceived(Buffer.alloc(50));
    clock.advance(1);
    const b = connect(factory);
    assert.equal(b.transport.producerState, 'paused');
    clock.advance(4);
    assert.equal(b.transport.producerState, 'producing');
  });

  test('writes over writeLimit pause the registered streaming producer, combined with the transport', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { writeLimit: 100, clock });
    const { wrapper, transport } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    const producer = new CountingProducer();
    inner.transport.registerProducer(producer, true);
    const proxy = transport.producer as IPushProducer;
    assert.notEqual(proxy, producer, 'the transport sees a proxy');
    inner.transport.write(Buffer.alloc(150));
    inner.transport.writeSequence(['x'.repeat(50), Buffer.alloc(100)]);
    assert.equal(factory.writtenThisSecond, 300);
    clock.advance(1); // throttled for 2 s
    assert.equal(factory.writesThrottled, true);
    assert.equal(wrapper.writesThrottled, true);
    assert.deepEqual([producer.pauses, producer.resumes], [1, 0]);
    // The transport's buffer fills and drains meanwhile: no resume while throttled.
    proxy.pauseProducing();
    proxy.resumeProducing();
    assert.deepEqual([producer.pauses, producer.resumes], [1, 0]);
    // The transport's buffer is full when the throttle lifts: still paused.
    proxy.pauseProducing();
    clock.advance(2);
    assert.equal(factory.writesThrottled, false);
    assert.deepEqual([producer.pauses, producer.resumes], [1, 0]);
    proxy.resumeProducing();
    assert.deepEqual([producer.pauses, producer.resumes], [1, 1]);
    proxy.stopProducing();
    assert.equal(producer.stops, 1);
    inner.transport.unregisterProducer();
    assert.equal(transport.producer, null);
  });

  test('string writes are counted in bytes', () => {
    const factory = new ThrottlingFactory(keeper(Recorder), {
      writeLimit: 100,
      clock: new Clock(),
    });
    const { wrapper } = connect(factory);
    (wrapper.wrappedProtocol as Recorder).transport.write('é€');
    assert.equal(factory.writtenThisSecond, 5);
  });

  test("a pull producer's requests are held back while writes are throttled", () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { writeLimit: 10, clock });
    const { wrapper, transport } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    const producer = new CountingPullProducer();
    inner.transport.registerProducer(producer, false);
    const proxy = transport.producer as IPullProducer;
    proxy.resumeProducing();
    assert.equal(producer.pulls, 1);
    inner.transport.write(Buffer.alloc(20));
    clock.advance(1); // throttled for 1 s
    proxy.resumeProducing();
    proxy.resumeProducing();
    assert.equal(producer.pulls, 1);
    clock.advance(1);
    assert.equal(producer.pulls, 2, 'one held-back pull delivered');
  });

  test('a producer registered while writes are throttled starts paused', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { writeLimit: 10, clock });
    const { wrapper } = connect(factory);
    const inner = wrapper.wrappedProtocol as Recorder;
    inner.transport.write(Buffer.alloc(30));
    clock.advance(1);
    const producer = new CountingProducer();
    inner.transport.registerProducer(producer, true);
    assert.equal(producer.paused, true);
    clock.advance(2);
    assert.equal(producer.paused, false);
  });

  test('maxConnectionCount refuses connections beyond the count', () => {
    const factory = new ThrottlingFactory(keeper(Recorder), { maxConnectionCount: 2 });
    const log = captureLog();
    try {
      const a = connect(factory);
      connect(factory);
      assert.equal(factory.buildProtocol(PEER), null);
      a.transport.loseConnection();
      assert.equal(factory.connectionCount, 1);
      assert.ok(factory.buildProtocol(PEER) !== null);
    } finally {
      log.stop();
    }
    assert.ok(log.events.some((e) => e.message === 'Max connection count reached!'));
  });

  test('the last connection closing stops every timer and resets the state', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), {
      readLimit: 10,
      writeLimit: 10,
      clock,
    });
    const a = connect(factory);
    assert.equal(clock.getDelayedCalls().length, 1, 'one check loop');
    a.wrapper.dataReceived(Buffer.alloc(100));
    (a.wrapper.wrappedProtocol as Recorder).transport.write(Buffer.alloc(100));
    clock.advance(1);
    assert.equal(clock.getDelayedCalls().length, 3, 'loop + two unthrottles');
    a.transport.loseConnection();
    assert.equal(clock.getDelayedCalls().length, 0);
    assert.equal(factory.readsThrottled, false);
    assert.equal(factory.writesThrottled, false);
    const b = connect(factory);
    assert.equal(b.transport.producerState, 'producing');
    b.transport.loseConnection();
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('without limits no timer runs; a refusing wrapped factory is not counted', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { clock });
    connect(factory);
    assert.equal(clock.getDelayedCalls().length, 0);
    class Refuser extends Factory {
      override buildProtocol(): null {
        return null;
      }
    }
    const refusing = new ThrottlingFactory(new Refuser(), { readLimit: 1, clock });
    assert.equal(refusing.buildProtocol(PEER), null);
    assert.equal(refusing.connectionCount, 0);
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('a throwing producer is logged and does not stop the others being throttled', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { writeLimit: 1, clock });
    const a = connect(factory);
    const b = connect(factory);
    (a.wrapper.wrappedProtocol as Recorder).transport.registerProducer(
      {
        pauseProducing() {
          throw new Error('boom');
        },
        resumeProducing() {},
        stopProducing() {},
      },
      true,
    );
    const good = new CountingProducer();
    (b.wrapper.wrappedProtocol as Recorder).transport.registerProducer(good, true);
    (b.wrapper.wrappedProtocol as Recorder).transport.write('xx');
    const log = captureLog();
    try {
      clock.advance(1);
    } finally {
      log.stop();
    }
    assert.equal(good.paused, true);
    assert.ok(log.events.some((e) => e.isError && /boom/.test(e.message)));
  });

  test('bad options throw InvalidArgumentError', () => {
    const inner = keeper(Recorder);
    assert.throws(() => new ThrottlingFactory(inner, { readLimit: 0 }), InvalidArgumentError);
    assert.throws(() => new ThrottlingFactory(inner, { writeLimit: -5 }), InvalidArgumentError);
    assert.throws(
      () => new ThrottlingFactory(inner, { maxConnectionCount: 1.5 }),
      InvalidArgumentError,
    );
    assert.throws(
      () => new ThrottlingFactory(inner, { readLimit: Number.POSITIVE_INFINITY }),
      InvalidArgumentError,
    );
  });

  test('over the pump: the client is flow-controlled while the server is throttled', () => {
    const clock = new Clock();
    const factory = new ThrottlingFactory(keeper(Recorder), { readLimit: 100, clock });
    const { client, server, pump } = connectedServerAndClient<ThrottlingProtocol, Recorder>(
      factory,
      () => new Recorder(),
    );
    const inner = server.wrappedProtocol as Recorder;
    client.transport.write(Buffer.alloc(300));
    pump.flush();
    assert.equal(inner.bytes, 300);
    clock.advance(1); // throttled for 2 s
    client.transport.write(Buffer.alloc(50));
    pump.flush();
    assert.equal(inner.bytes, 300, 'nothing delivered while paused');
    clock.advance(1);
    pump.flush();
    assert.equal(inner.bytes, 300);
    clock.advance(1);
    pump.flush();
    assert.equal(inner.bytes, 350);
    client.transport.loseConnection();
    pump.flush();
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('real TCP: reading over the limit pauses the socket, and the rest arrives after', async () => {
    const clock = new Clock();
    const inner = keeper(Recorder);
    const factory = new ThrottlingFactory(inner, { readLimit: 1000, clock });
    const { port, portNumber } = await listen(factory);
    const c = await rawClient(portNumber);
    c.socket.write(Buffer.alloc(5000, 1));
    while (inner.built.length === 0) await turns(1);
    const server = inner.built[0] as Recorder;
    await server.received(5000);

    const wrapper = [...factory.protocols][0];
    const real = wrapper.transport;
    let pauses = 0;
    let resumes = 0;
    const pause = real.pauseProducing.bind(real);
    const resume = real.resumeProducing.bind(real);
    real.pauseProducing = () => {
      pauses++;
      pause();
    };
    real.resumeProducing = () => {
      resumes++;
      resume();
    };

    const throttled = captureLog();
    try {
      clock.advance(1); // 5000 bytes in the window: paused for 4 s
    } finally {
      throttled.stop();
    }
    assert.deepEqual([pauses, resumes], [1, 0]);
    assert.ok(throttled.events.some((e) => /^Throttling reads/.test(e.message)));

    c.socket.write(Buffer.alloc(3000, 2));
    await new Promise<void>((resolve) => c.socket.write('', () => resolve()));
    await turns(20);
    assert.equal(server.bytes, 5000, 'the socket is paused: nothing more delivered');

    clock.advance(3);
    assert.deepEqual([pauses, resumes], [1, 0]);
    const unthrottled = captureLog();
    try {
      clock.advance(1);
    } finally {
      unthrottled.stop();
    }
    assert.deepEqual([pauses, resumes], [1, 1]);
    await server.received(8000);
    assert.equal(server.bytes, 8000);

    c.socket.end();
    await server.lost;
    await c.closed;
    assert.equal(factory.connectionCount, 0);
    assert.equal(clock.getDelayedCalls().length, 0);
    await closePort(port);
  });

  test('real TCP: connections beyond maxConnectionCount are closed at once', async () => {
    const inner = keeper(Recorder);
    const factory = new ThrottlingFactory(inner, { maxConnectionCount: 1 });
    const { port, portNumber } = await listen(factory);
    const log = captureLog();
    try {
      const first = await rawClient(portNumber);
      while (inner.built.length === 0) await turns(1);
      const second = await rawClient(portNumber);
      await second.closed;
      assert.equal(inner.built.length, 1);
      first.socket.end();
      await (inner.built[0] as Recorder).lost;
      await first.closed;
    } finally {
      log.stop();
    }
    await closePort(port);
  });
});

// ---------------------------------------------------------------------- connection limits

describe('LimitConnectionsByPeer', () => {
  test('at most maxConnectionsPerPeer per host; a closed one frees a place', () => {
    const factory = new LimitConnectionsByPeer(keeper(Recorder), 2);
    const hostA = (port: number) => new IPv4Address('TCP', '10.0.0.1', port);
    const a1 = connect(factory, hostA(1));
    connect(factory, hostA(2));
    assert.equal(factory.buildProtocol(hostA(3)), null);
    assert.ok(factory.buildProtocol(new IPv4Address('TCP', '10.0.0.2', 1)) !== null);
    assert.equal(factory.peerConnections.get('10.0.0.1'), 2);
    a1.transport.loseConnection();
    assert.equal(factory.peerConnections.get('10.0.0.1'), 1);
    assert.ok(factory.buildProtocol(hostA(4)) !== null);
  });

  test('the default is 5; bad limits throw', () => {
    const factory = new LimitConnectionsByPeer(keeper(Recorder));
    assert.equal(factory.maxConnectionsPerPeer, 5);
    for (let i = 0; i < 5; i++) connect(factory);
    assert.equal(factory.buildProtocol(PEER), null);
    assert.throws(() => new LimitConnectionsByPeer(keeper(Recorder), -1), InvalidArgumentError);
  });

  test('the last connection of a host removes its entry', () => {
    const factory = new LimitConnectionsByPeer(keeper(Recorder), 1);
    const a = connect(factory);
    a.transport.loseConnection();
    assert.equal(factory.peerConnections.size, 0);
    assert.equal(factory.protocols.size, 0);
  });

  test('peerKey: IP hosts, one key for UNIX peers', () => {
    assert.equal(peerKey(new IPv4Address('TCP', '1.2.3.4', 5)), '1.2.3.4');
    assert.equal(peerKey(new IPv6Address('TCP', '::1', 5)), '::1');
    assert.equal(peerKey(new UNIXAddress(null)), 'unix');
  });

  test('over MemoryReactor: the port closes refused connections', () => {
    const r = new MemoryReactor();
    r.listenTCP(0, new LimitConnectionsByPeer(keeper(Recorder), 1));
    const first = r.acceptConnection();
    assert.ok(first.protocol !== null);
    const second = r.acceptConnection();
    assert.equal(second.protocol, null);
    assert.equal(second.transport.disconnecting, true);
  });
});

describe('LimitTotalConnectionsFactory', () => {
  class Busy extends Protocol {
    override connectionMade(): void {
      this.transport.write('busy\n');
      this.transport.loseConnection();
    }
  }

  test('beyond the limit: the overflow protocol, counted too', () => {
    const factory = new LimitTotalConnectionsFactory(keeper(Recorder), 2, Busy);
    const a = connect(factory);
    connect(factory);
    assert.equal(factory.connectionCount, 2);
    const over = connect(factory);
    assert.ok(over.wrapper.wrappedProtocol instanceof Busy);
    assert.equal((over.wrapper.wrappedProtocol as Busy).factory, factory);
    assert.equal(over.transport.value().toString(), 'busy\n');
    assert.equal(over.transport.disconnecting, true);
    assert.equal(factory.connectionCount, 2, 'the overflow one closed at once');
    a.transport.loseConnection();
    assert.equal(factory.connectionCount, 1);
    const again = connect(factory);
    assert.ok(again.wrapper.wrappedProtocol instanceof Recorder);
  });

  test('beyond the limit without an overflow protocol: refused', () => {
    const factory = new LimitTotalConnectionsFactory(keeper(Recorder), 1);
    connect(factory);
    assert.equal(factory.buildProtocol(PEER), null);
  });

  test('no limit by default; bad limits throw', () => {
    const factory = new LimitTotalConnectionsFactory(keeper(Recorder));
    for (let i = 0; i < 20; i++) connect(factory);
    assert.equal(factory.connectionCount, 20);
    assert.throws(
      () => new LimitTotalConnectionsFactory(keeper(Recorder), 2.5),
      InvalidArgumentError,
    );
  });

  test('real TCP: the overflow client is told and closed', async () => {
    const inner = keeper(Recorder);
    const factory = new LimitTotalConnectionsFactory(inner, 1, Busy);
    const { port, portNumber } = await listen(factory);
    const first = await rawClient(portNumber);
    while (inner.built.length === 0) await turns(1);
    const second = await rawClient(portNumber);
    await second.closed;
    assert.equal(second.received().toString(), 'busy\n');
    first.socket.end();
    await (inner.built[0] as Recorder).lost;
    await first.closed;
    assert.equal(factory.connectionCount, 0);
    await closePort(port);
  });
});

// ---------------------------------------------------------------------- SpewingFactory

describe('SpewingFactory', () => {
  test('logs every read and write with a prefix, then relays them', () => {
    const lines: string[] = [];
    const factory = new SpewingFactory(keeper(Echo), { prefix: 'dbg', log: (l) => lines.push(l) });
    const { wrapper, transport } = connect(factory);
    wrapper.dataReceived(Buffer.from('hi\r\n\x00'));
    (wrapper.wrappedProtocol as Echo).transport.writeSequence(['a', Buffer.from([0xff])]);
    assert.equal(transport.value().toString('latin1'), 'hi\r\n\x00a\xff');
    assert.deepEqual(lines, [
      'dbg 192.0.2.7:5555 Received: "hi\\r\\n\\u0000"',
      'dbg 192.0.2.7:5555 Sending: "hi\\r\\n\\u0000"',
      'dbg 192.0.2.7:5555 Sending: "a"',
      'dbg 192.0.2.7:5555 Sending: "ÿ"',
    ]);
  });

  test('by default lines go to log.msg', () => {
    const factory = new SpewingFactory(keeper(Recorder));
    const { wrapper } = connect(factory, new IPv6Address('TCP', '::1', 80));
    const log = captureLog();
    try {
      wrapper.dataReceived(Buffer.from('x'));
    } finally {
      log.stop();
    }
    assert.deepEqual(
      log.events.map((e) => e.message),
      ['spew [::1]:80 Received: "x"'],
    );
  });
});
