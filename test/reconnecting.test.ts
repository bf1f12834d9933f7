/**
 * ReconnectingClientFactory: back-off growth, cap, jitter from an injected
 * random source, maxRetries, stopTrying (pending retry, attempt in progress),
 * resetDelay, reconnect after loss; over MemoryReactor + Clock, and once over
 * real sockets (a server that comes up after the first refused attempts).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Protocol } from '../src/protocols/protocol.js';
import { ReconnectingClientFactory } from '../src/protocols/reconnecting.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  ConnectionDone,
  ConnectionRefusedError,
  InvalidArgumentError,
  TorsionError,
  UserError,
} from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import type { IAddress, IConnector } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';
import { type FakeConnector, MemoryReactor } from '../src/testing/memory-reactor.js';

class Recorder extends Protocol {
  readonly made = new Deferred<void>();
  readonly lost = new Deferred<void>();
  override connectionMade(): void {
    this.made.callback(undefined);
  }
  override connectionLost(): void {
    this.lost.callback(undefined);
  }
}

/** Records failures; `protocol` is Recorder. */
class Client extends ReconnectingClientFactory<Recorder> {
  override protocol = Recorder;
  readonly failures: Failure[] = [];
  override clientConnectionFailed(connector: IConnector, reason: Failure): void {
    this.failures.push(reason);
    super.clientConnectionFailed(connector, reason);
  }
}

function setup(options: ConstructorParameters<typeof Client>[0] = {}) {
  const r = new MemoryReactor();
  const factory = new Client({ clock: r, jitter: 0, ...options });
  r.connectTCP('127.0.0.1', 4242, factory);
  const connector = r.tcpClients[0].connector;
  return { r, factory, connector };
}

/** The next scheduled time of the only pending call. */
function onlyCall(clock: Clock): number {
  const calls = clock.getDelayedCalls();
  assert.equal(calls.length, 1);
  return calls[0].getTime();
}

describe('ReconnectingClientFactory', () => {
  test("defaults are Twisted's", () => {
    const f = new ReconnectingClientFactory();
    assert.equal(f.initialDelay, 1.0);
    assert.equal(f.factor, Math.E); // Twisted's 2.7182818284590451 is this double
    assert.equal(f.jitter, 0.11962656472);
    assert.equal(f.maxDelay, 3600);
    assert.equal(f.maxRetries, null);
    assert.equal(f.delay, 1.0);
    assert.equal(f.retries, 0);
    assert.equal(f.continueTrying, true);
    assert.equal(f.connector, null);
    assert.equal(f.clock, reactor);
    assert.equal(f.pendingRetry, null);
  });

  test('bad options throw InvalidArgumentError', () => {
    assert.throws(() => new ReconnectingClientFactory({ initialDelay: -1 }), InvalidArgumentError);
    assert.throws(() => new ReconnectingClientFactory({ factor: 0.5 }), InvalidArgumentError);
    assert.throws(() => new ReconnectingClientFactory({ jitter: -0.1 }), InvalidArgumentError);
    assert.throws(
      () => new ReconnectingClientFactory({ maxDelay: Number.NaN }),
      InvalidArgumentError,
    );
    assert.throws(() => new ReconnectingClientFactory({ maxRetries: 1.5 }), InvalidArgumentError);
    assert.throws(() => new ReconnectingClientFactory({ maxRetries: -1 }), InvalidArgumentError);
  });

  test('retry() with no connector throws', () => {
    assert.throws(() => new ReconnectingClientFactory().retry(), InvalidArgumentError);
  });

  test('each failure schedules connect() after delay * factor, growing exponentially', () => {
    const { r, factory, connector } = setup();
    assert.equal(connector.attempts, 1);
    let expected = 1;
    for (let i = 1; i <= 5; i++) {
      r.failClient(connector);
      expected *= Math.E;
      assert.equal(factory.retries, i);
      assert.ok(Math.abs(factory.delay - expected) < 1e-9, `delay ${factory.delay}`);
      assert.equal(factory.connector, connector);
      assert.ok(factory.pendingRetry?.active());
      const due = onlyCall(r);
      assert.ok(Math.abs(due - r.seconds() - expected) < 1e-9);
      // Not a moment early.
      r.advance(expected * 0.999);
      assert.equal(connector.attempts, i);
      assert.equal(connector.state, 'disconnected');
      r.advance(expected * 0.001 + 1e-9);
      assert.equal(connector.attempts, i + 1);
      assert.equal(connector.state, 'connecting');
      assert.equal(factory.pendingRetry, null);
    }
    assert.equal(factory.failures.length, 5);
    assert.ok(factory.failures.every((f) => f.check(ConnectionRefusedError) !== null));
  });

  test('the delay is capped at maxDelay', () => {
    const { r, factory, connector } = setup({ maxDelay: 10 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      r.failClient(connector);
      delays.push(factory.delay);
      r.advance(factory.delay);
    }
    const expected = [Math.E, Math.E ** 2, 10, 10, 10, 10];
    assert.ok(
      delays.every((d, i) => Math.abs(d - expected[i]) < 1e-9),
      `${delays}`,
    );
  });

  test('jitter draws each delay from a normal distribution, from the injected random source', () => {
    const values = [0.25, 0.75, 0.5, 0.1, 0.9, 0.3];
    let i = 0;
    const random = () => values[i++ % values.length];
    const { r, factory, connector } = setup({ jitter: 0.1, random });
    const gaussian = (u1: number, u2: number) =>
      Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    let mean = 1;
    for (let k = 0; k < 3; k++) {
      r.failClient(connector);
      mean = Math.min(mean * Math.E, 3600);
      const z = gaussian(values[2 * k], values[2 * k + 1]);
      const expected = mean + mean * 0.1 * z;
      assert.ok(Math.abs(factory.delay - expected) < 1e-9, `${factory.delay} vs ${expected}`);
      assert.ok(Math.abs(onlyCall(r) - r.seconds() - expected) < 1e-9);
      mean = factory.delay; // the next delay grows from the jittered one, as in Twisted
      r.advance(factory.delay);
    }
    // The same source gives the same delays: deterministic.
    i = 0;
    const again = setup({ jitter: 0.1, random });
    again.r.failClient(again.connector);
    const first = again.factory.delay;
    i = 0;
    const third = setup({ jitter: 0.1, random });
    third.r.failClient(third.connector);
    assert.equal(third.factory.delay, first);
  });

  test('a jitter far below the mean never gives a negative delay', () => {
    // u1 close to 1 makes |z| huge; cos(0) = 1 with u2 = 0.5 gives cos(pi) = -1.
    const values = [1 - 1e-300, 0.5];
    let i = 0;
    const { r, factory, connector } = setup({ jitter: 5, random: () => values[i++ % 2] });
    r.failClient(connector);
    assert.equal(factory.delay, 0);
    r.advance(0);
    assert.equal(connector.attempts, 2);
  });

  test('maxRetries: gives up after that many consecutive retries', () => {
    const { r, factory, connector } = setup({ maxRetries: 2 });
    r.failClient(connector);
    r.advance(factory.delay);
    r.failClient(connector);
    r.advance(factory.delay);
    assert.equal(connector.attempts, 3);
    r.failClient(connector);
    assert.equal(factory.retries, 3);
    assert.equal(r.getDelayedCalls().length, 0);
    r.advance(10_000);
    assert.equal(connector.attempts, 3);
  });

  test('maxRetries 0 never retries', () => {
    const { r, connector } = setup({ maxRetries: 0 });
    r.failClient(connector);
    assert.equal(r.getDelayedCalls().length, 0);
  });

  test('stopTrying() cancels a pending retry', () => {
    const { r, factory, connector } = setup();
    r.failClient(connector);
    assert.equal(r.getDelayedCalls().length, 1);
    factory.stopTrying();
    assert.equal(factory.continueTrying, false);
    assert.equal(factory.pendingRetry, null);
    assert.equal(r.getDelayedCalls().length, 0);
    r.advance(100);
    assert.equal(connector.attempts, 1);
  });

  test('stopTrying() stops an attempt in progress, which is not retried', () => {
    const { r, factory, connector } = setup();
    r.failClient(connector);
    r.advance(factory.delay);
    assert.equal(connector.state, 'connecting');
    factory.stopTrying();
    assert.equal(connector.state, 'disconnected');
    assert.equal(factory.failures.length, 2);
    assert.ok(factory.failures[1].check(UserError));
    assert.equal(r.getDelayedCalls().length, 0);
  });

  test('stopTrying() leaves an established connection alone and does not retry its loss', () => {
    const { r, factory, connector } = setup();
    const { transport } = r.connectClient(connector);
    factory.stopTrying();
    assert.equal(transport.disconnecting, false);
    connector.state = 'disconnected';
    factory.clientConnectionLost(connector, new Failure(new ConnectionDone()));
    assert.equal(r.getDelayedCalls().length, 0);
  });

  test('a lost connection is retried; retry() while one is pending replaces it', () => {
    const { r, factory, connector } = setup();
    r.connectClient(connector);
    connector.state = 'disconnected';
    factory.clientConnectionLost(connector, new Failure(new ConnectionDone()));
    assert.equal(factory.retries, 1);
    const first = factory.pendingRetry;
    factory.retry();
    assert.equal(first?.active(), false);
    assert.equal(r.getDelayedCalls().length, 1);
    assert.equal(factory.retries, 2);
    r.advance(factory.delay);
    assert.equal(connector.attempts, 2);
  });

  test('resetDelay() starts the back-off over', () => {
    const { r, factory, connector } = setup();
    r.failClient(connector);
    r.advance(factory.delay);
    r.failClient(connector);
    assert.ok(factory.delay > 7);
    factory.stopTrying();
    factory.resetDelay();
    assert.equal(factory.delay, 1);
    assert.equal(factory.retries, 0);
    assert.equal(factory.continueTrying, true);
    factory.retry();
    assert.ok(Math.abs(factory.delay - Math.E) < 1e-12);
  });

  test('retry(connector) uses that connector', () => {
    const r = new MemoryReactor();
    const factory = new Client({ clock: r, jitter: 0 });
    r.connectTCP('127.0.0.1', 1, factory);
    const other = r.connectTCP('127.0.0.1', 2, new Client()) as FakeConnector;
    r.failClient(other);
    factory.stopTrying();
    factory.resetDelay();
    factory.retry(other);
    r.advance(factory.delay);
    assert.equal(other.attempts, 2);
  });

  test('a connect() that throws when the retry fires is logged, not thrown', () => {
    const r = new MemoryReactor();
    const factory = new Client({ clock: r, jitter: 0 });
    const connector: IConnector = {
      state: 'connected',
      connect() {
        throw new TorsionError('busy', 'TORSION_ERR_INVALID_STATE');
      },
      stopConnecting() {},
      disconnect() {},
      getDestination: () => ({ type: 'TCP' }) as IAddress,
    };
    const events: LogEvent[] = [];
    const remove = addObserver((e) => events.push(e));
    try {
      factory.retry(connector);
      r.advance(factory.delay);
    } finally {
      remove();
    }
    const errors = events.filter((e) => e.isError);
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /could not reconnect.*busy/);
  });

  test('noisy factories log retries and giving up', () => {
    const { r, factory, connector } = setup({ maxRetries: 1 });
    factory.noisy = true;
    const lines: string[] = [];
    const remove = addObserver((e) => lines.push(e.message));
    try {
      r.failClient(connector);
      r.advance(factory.delay);
      r.failClient(connector);
    } finally {
      remove();
    }
    assert.ok(lines.some((l) => /will retry in 2\.718 seconds/.test(l)));
    assert.ok(lines.some((l) => /Abandoning .* after 2 retries/.test(l)));
  });

  test('real sockets: a server that comes up after refused attempts is eventually reached', async () => {
    // A free port: bind, read it, close.
    const probe = listenTCP(reactor, 0, new Client(), { interface: '127.0.0.1' });
    const portNumber = (probe.getHost() as IPv4Address).port;
    await probe.stopListening();

    const clock = new Clock();
    let failed = new Deferred<void>();
    class RealClient extends Client {
      readonly connected = new Deferred<Recorder>();
      override clientConnectionFailed(connector: IConnector, reason: Failure): void {
        super.clientConnectionFailed(connector, reason);
        failed.callback(undefined);
      }
      override buildProtocol(addr: IAddress): Recorder | null {
        this.resetDelay();
        const p = super.buildProtocol(addr);
        p?.made.addCallback(() => this.connected.callback(p));
        return p;
      }
    }
    const factory = new RealClient({ clock, jitter: 0 });
    const connector = connectTCP(reactor, '127.0.0.1', portNumber, factory);
    const serverProtocols: Recorder[] = [];
    let server: ReturnType<typeof listenTCP> | null = null;
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        await failed;
        failed = new Deferred<void>();
        assert.equal(factory.failures.length, attempt);
        assert.ok(factory.failures[attempt - 1].check(ConnectionRefusedError));
        assert.equal(clock.getDelayedCalls().length, 1);
        if (attempt === 3) {
          const serverFactory = new Client();
          serverFactory.buildProtocol = function (this: Client, addr: IAddress) {
            const p = Client.prototype.buildProtocol.call(this, addr);
            if (p !== null) serverProtocols.push(p);
            return p;
          };
          server = listenTCP(reactor, portNumber, serverFactory, { interface: '127.0.0.1' });
        }
        clock.advance(factory.delay);
      }
      const protocol = await factory.connected;
      assert.equal(connector.state, 'connected');
      assert.equal(factory.retries, 0);
      assert.equal(factory.failures.length, 3);
      factory.stopTrying();
      connector.disconnect();
      await protocol.lost;
      assert.equal(clock.getDelayedCalls().length, 0, 'no retry after stopTrying');
      await Promise.all(serverProtocols.map((p) => p.lost.asPromise()));
    } finally {
      factory.stopTrying();
      await server?.stopListening();
    }
  });
});
