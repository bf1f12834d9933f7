/**
 * Ports and connectors: binding, bind failures, factory start/stop counting,
 * connect failures (refused, timeout, user abort), retries, ClientCreator;
 * plus what is specific to UNIX-domain ports (stale files, mode).
 */

import assert from 'node:assert/strict';
import { linkSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ClientCreator, ClientFactory, Factory, Protocol } from '../src/protocols/protocol.js';
import { IPv4Address, UNIXAddress } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { connectError } from '../src/reactor/connector.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  CancelledError,
  CannotListenError,
  ConnectError,
  ConnectionDone,
  ConnectionRefusedError,
  ConnectTimeoutError,
  DNSLookupError,
  InvalidArgumentError,
  NotConnectingError,
  TorsionError,
  UserError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IAddress, IConnector, IReactorTCP, IReactorUNIX } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';
import { connectUNIX, listenUNIX } from '../src/reactor/unix.js';

// ---------------------------------------------------------------------- helpers

const LOCAL = { interface: '127.0.0.1' };

function portOf(port: Port): number {
  return (port.getHost() as IPv4Address).port;
}

let pathCounter = 0;
function socketPath(): string {
  return join(tmpdir(), `torsion-tcp-test-${process.pid}-${pathCounter++}.sock`);
}

/** A protocol whose connection events are awaitable. */
class Recorder extends Protocol {
  readonly made = new Deferred<void>();
  readonly lost = new Deferred<void>();
  reason: Failure | null = null;

  override connectionMade(): void {
    this.made.callback(undefined);
  }

  override connectionLost(reason: Failure): void {
    this.reason = reason;
    this.lost.callback(undefined);
  }
}

/** A client factory that records every hook call. */
class RecordingClientFactory extends ClientFactory<Recorder> {
  override protocol = Recorder;
  readonly calls: string[] = [];
  readonly failed = new Deferred<void>();
  readonly lostConnection = new Deferred<void>();
  failure: Failure | null = null;
  lostReason: Failure | null = null;
  built: Recorder | null = null;
  readonly connected = new Deferred<Recorder>();
  starts = 0;
  stops = 0;

  override startFactory(): void {
    this.starts++;
  }

  override stopFactory(): void {
    this.stops++;
  }

  override startedConnecting(_connector: IConnector): void {
    this.calls.push('startedConnecting');
  }

  override buildProtocol(addr: IAddress): Recorder | null {
    this.calls.push('buildProtocol');
    this.built = super.buildProtocol(addr);
    if (this.built !== null) {
      const p = this.built;
      p.made.addCallback(() => this.connected.callback(p));
    }
    return this.built;
  }

  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    this.calls.push('clientConnectionFailed');
    this.failure = reason;
    this.failed.callback(undefined);
  }

  override clientConnectionLost(_connector: IConnector, reason: Failure): void {
    this.calls.push('clientConnectionLost');
    this.lostReason = reason;
    this.lostConnection.callback(undefined);
  }
}

/** A server factory counting start/stop and remembering its protocols. */
class CountingFactory extends Factory<Recorder> {
  override protocol = Recorder;
  starts = 0;
  stops = 0;
  readonly built: Recorder[] = [];

  override startFactory(): void {
    this.starts++;
  }

  override stopFactory(): void {
    this.stops++;
  }

  override buildProtocol(addr: IAddress): Recorder | null {
    const p = super.buildProtocol(addr);
    if (p !== null) this.built.push(p);
    return p;
  }
}

function errorLog(): { events: LogEvent[]; next: Deferred<LogEvent>; remove: () => void } {
  const events: LogEvent[] = [];
  const log = {
    events,
    next: new Deferred<LogEvent>(),
    remove: () => {},
  };
  log.remove = addObserver((event) => {
    if (!event.isError) return;
    events.push(event);
    if (!log.next.called) log.next.callback(event);
  });
  return log;
}

/** A port number nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const port = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
  const n = portOf(port);
  await port.stopListening();
  return n;
}

const tcpReactor: IReactorTCP & IReactorUNIX = {
  listenTCP: (port, factory, options) => listenTCP(reactor, port, factory, options),
  connectTCP: (host, port, factory, options) => connectTCP(reactor, host, port, factory, options),
  listenUNIX: (path, factory, options) => listenUNIX(reactor, path, factory, options),
  connectUNIX: (path, factory, options) => connectUNIX(reactor, path, factory, options),
};

// ---------------------------------------------------------------------- listening

describe('listenTCP', () => {
  test('binds before returning: getHost has the real port', async () => {
    const factory = new CountingFactory();
    const port = listenTCP(reactor, 0, factory, LOCAL);
    const host = port.getHost();
    assert.ok(host instanceof IPv4Address);
    assert.equal(host.type, 'TCP');
    assert.equal(host.host, '127.0.0.1');
    assert.ok(host.port > 0);
    assert.equal(port.listening, true);
    assert.equal(factory.starts, 1);
    assert.equal(factory.numPorts, 1);
    assert.equal(port.whenListening().called, true);
    assert.equal(await port.whenListening(), port);
    await port.stopListening();
  });

  test("interface '' means all IPv4 interfaces", async () => {
    const port = listenTCP(reactor, 0, new CountingFactory());
    assert.equal((port.getHost() as IPv4Address).host, '0.0.0.0');
    await port.stopListening();
  });

  test("emits 'listening' and 'connection'", async () => {
    const port = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const listening = new Deferred<void>();
    const connection = new Deferred<void>();
    port.on('listening', () => listening.callback(undefined));
    port.on('connection', () => connection.callback(undefined));
    await listening;
    const client = new RecordingClientFactory();
    connectTCP(reactor, '127.0.0.1', portOf(port), client);
    await connection;
    const proto = await client.connected;
    proto.transport.loseConnection();
    await client.lostConnection;
    await port.stopListening();
  });

  test('a port in use fails with CannotListenError through whenListening', async () => {
    const first = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const factory = new CountingFactory();
    const second = listenTCP(reactor, portOf(first), factory, LOCAL);
    await assert.rejects(second.whenListening().asPromise(), (e: unknown) => {
      assert.ok(e instanceof CannotListenError);
      assert.equal(e.port, portOf(first));
      assert.equal((e.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
      return true;
    });
    assert.equal(factory.starts, 0);
    assert.equal(second.listening, false);
    // Later calls see the same failure; stopping a port that never bound is a no-op.
    await assert.rejects(second.whenListening().asPromise(), CannotListenError);
    await second.stopListening();
    assert.equal(factory.stops, 0);
    await first.stopListening();
  });

  test("a bind failure nobody asks about is logged once (or emitted as 'error')", async () => {
    const first = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const log = errorLog();
    try {
      listenTCP(reactor, portOf(first), new CountingFactory(), LOCAL);
      const event = await log.next;
      assert.ok(event.failure?.value instanceof CannotListenError);
      const withListener = listenTCP(reactor, portOf(first), new CountingFactory(), LOCAL);
      const emitted = new Deferred<CannotListenError>();
      withListener.on('error', (e) => emitted.callback(e));
      assert.ok((await emitted) instanceof CannotListenError);
      assert.equal(log.events.length, 1);
    } finally {
      log.remove();
    }
    await first.stopListening();
  });

  test('doStart/doStop are counted across ports; stopFactory after the last stopListening', async () => {
    const factory = new CountingFactory();
    const a = listenTCP(reactor, 0, factory, LOCAL);
    const b = listenTCP(reactor, 0, factory, LOCAL);
    assert.equal(factory.numPorts, 2);
    assert.equal(factory.starts, 1);
    const stopA = a.stopListening();
    // Idempotent: a second call fires at the same moment.
    const stopA2 = a.stopListening();
    assert.equal(factory.numPorts, 2, 'doStop runs once the socket has closed');
    await stopA;
    assert.equal(stopA2.called, true);
    assert.equal(factory.numPorts, 1);
    assert.equal(factory.stops, 0);
    await a.stopListening();
    await b.stopListening();
    assert.equal(factory.numPorts, 0);
    assert.equal(factory.stops, 1);
  });

  test('stopListening leaves open connections open', async () => {
    const factory = new CountingFactory();
    const port = listenTCP(reactor, 0, factory, LOCAL);
    const client = new RecordingClientFactory();
    connectTCP(reactor, '127.0.0.1', portOf(port), client);
    await client.connected;
    const closed = new Deferred<void>();
    port.on('close', () => closed.callback(undefined));
    await port.stopListening();
    await closed;
    assert.equal(port.connections.size, 1);
    client.built!.transport.write('still here');
    const server = factory.built[0]!;
    server.transport.loseConnection();
    await client.lostConnection;
    await server.lost;
    assert.equal(port.connections.size, 0);
  });

  test('buildProtocol returning null closes the connection', async () => {
    class Refusing extends CountingFactory {
      override buildProtocol(_addr: IAddress): Recorder | null {
        return null;
      }
    }
    const port = listenTCP(reactor, 0, new Refusing(), LOCAL);
    const client = new RecordingClientFactory();
    connectTCP(reactor, '127.0.0.1', portOf(port), client);
    await client.lostConnection;
    assert.deepEqual(client.calls, ['startedConnecting', 'buildProtocol', 'clientConnectionLost']);
    assert.equal(port.connections.size, 0);
    await port.stopListening();
  });

  test('bad arguments throw InvalidArgumentError', () => {
    const f = new CountingFactory();
    assert.throws(() => listenTCP(reactor, -1, f), InvalidArgumentError);
    assert.throws(() => listenTCP(reactor, 70000, f), InvalidArgumentError);
    assert.throws(() => listenTCP(reactor, 0, f, { backlog: 0 }), InvalidArgumentError);
    const c = new RecordingClientFactory();
    assert.throws(() => connectTCP(reactor, '127.0.0.1', 0, c), InvalidArgumentError);
    assert.throws(
      () => connectTCP(reactor, '127.0.0.1', 80, c, { timeout: -1 }),
      InvalidArgumentError,
    );
    assert.equal(f.numPorts, 0);
    assert.equal(c.starts, 0);
  });
});

// ---------------------------------------------------------------------- connecting

describe('connectTCP', () => {
  test('connects: startedConnecting, buildProtocol, then clientConnectionLost after connectionLost', async () => {
    const factory = new CountingFactory();
    const port = listenTCP(reactor, 0, factory, LOCAL);
    const client = new RecordingClientFactory();
    const connector = connectTCP(reactor, '127.0.0.1', portOf(port), client);
    assert.equal(connector.state, 'connecting');
    assert.deepEqual(client.calls, ['startedConnecting']);
    assert.equal(client.starts, 1);
    const dest = connector.getDestination() as IPv4Address;
    assert.equal(dest.host, '127.0.0.1');
    assert.equal(dest.port, portOf(port));
    await client.connected;
    assert.equal(connector.state, 'connected');
    assert.equal(connector.transport, client.built!.transport);
    // Peer and host of both ends agree.
    const server = factory.built[0]!;
    await server.made;
    assert.equal(
      (server.transport.getPeer() as IPv4Address).port,
      (client.built!.transport.getHost() as IPv4Address).port,
    );
    connector.disconnect();
    await client.lostConnection;
    assert.ok(client.built!.reason?.check(ConnectionDone));
    assert.equal(client.lostReason, client.built!.reason);
    assert.equal(connector.state, 'disconnected');
    assert.equal(client.stops, 1);
    assert.equal(client.numPorts, 0);
    await server.lost;
    await port.stopListening();
  });

  test('connection refused: ConnectionRefusedError via clientConnectionFailed', async () => {
    const n = await closedPort();
    const client = new RecordingClientFactory();
    const connector = connectTCP(reactor, '127.0.0.1', n, client);
    await client.failed;
    const reason = client.failure!;
    assert.ok(reason.value instanceof ConnectionRefusedError);
    assert.equal((reason.value.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.deepEqual(client.calls, ['startedConnecting', 'clientConnectionFailed']);
    assert.equal(connector.state, 'disconnected');
    assert.equal(client.starts, 1);
    assert.equal(client.stops, 1);
  });

  test('connect timeout: ConnectTimeoutError when the reactor time runs out', async () => {
    const accepted = new Set<net.Socket>();
    const server = net.createServer((s) => {
      accepted.add(s);
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const clock = new Clock();
    const client = new RecordingClientFactory();
    const connector = connectTCP(
      clock,
      '127.0.0.1',
      (server.address() as net.AddressInfo).port,
      client,
      { timeout: 5 },
    );
    clock.advance(4.5);
    assert.equal(connector.state, 'connecting');
    clock.advance(0.5);
    assert.equal(connector.state, 'disconnected');
    assert.ok(client.failure?.value instanceof ConnectTimeoutError);
    assert.deepEqual(client.calls, ['startedConnecting', 'clientConnectionFailed']);
    assert.equal(clock.getDelayedCalls().length, 0);
    assert.equal(client.stops, 1);
    await new Promise((resolve) => server.close(resolve));
  });

  test('stopConnecting: UserError; when not connecting: NotConnectingError', async () => {
    const port = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const client = new RecordingClientFactory();
    const connector = connectTCP(reactor, '127.0.0.1', portOf(port), client);
    connector.stopConnecting();
    assert.ok(client.failure?.value instanceof UserError);
    assert.equal(connector.state, 'disconnected');
    assert.throws(() => connector.stopConnecting(), NotConnectingError);
    connector.disconnect(); // nothing to do
    assert.equal(client.stops, 1);
    await port.stopListening();
  });

  test('connect() again from clientConnectionFailed retries; doStop once at the end', async () => {
    const n = await closedPort();
    class Retrying extends RecordingClientFactory {
      attempts = 0;
      readonly gaveUp = new Deferred<void>();
      override clientConnectionFailed(connector: IConnector, reason: Failure): void {
        this.attempts++;
        if (this.attempts < 3) connector.connect();
        else if (!this.gaveUp.called) this.gaveUp.callback(undefined);
        this.failure = reason;
      }
    }
    const client = new Retrying();
    const connector = connectTCP(reactor, '127.0.0.1', n, client);
    await client.gaveUp;
    assert.equal(client.attempts, 3);
    assert.equal(client.starts, 1);
    assert.equal(client.stops, 1);
    assert.equal(connector.state, 'disconnected');
    assert.throws(() => {
      connector.connect();
      connector.connect();
    }, TorsionError);
    connector.stopConnecting();
  });

  test('bindAddress binds the local end', async () => {
    const port = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const client = new RecordingClientFactory();
    connectTCP(reactor, '127.0.0.1', portOf(port), client, { bindAddress: ['127.0.0.1', 0] });
    const proto = await client.connected;
    assert.equal((proto.transport.getHost() as IPv4Address).host, '127.0.0.1');
    proto.transport.loseConnection();
    await client.lostConnection;
    await port.stopListening();
  });

  test('connect errors map onto the ConnectError family', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    assert.ok(connectError(e('ECONNREFUSED')) instanceof ConnectionRefusedError);
    assert.ok(connectError(e('ENOTFOUND')) instanceof DNSLookupError);
    assert.ok(connectError(e('EAI_AGAIN')) instanceof DNSLookupError);
    const other = connectError(e('ENETUNREACH'));
    assert.ok(other instanceof ConnectError);
    assert.equal((other.cause as NodeJS.ErrnoException).code, 'ENETUNREACH');
  });
});

// ---------------------------------------------------------------------- ClientCreator

describe('ClientCreator', () => {
  test('fires with the connected protocol', async () => {
    const factory = new CountingFactory();
    const port = listenTCP(reactor, 0, factory, LOCAL);
    class Hello extends Recorder {
      constructor(readonly greeting: string) {
        super();
      }
    }
    const proto = await new ClientCreator(tcpReactor, Hello, 'hi').connectTCP(
      '127.0.0.1',
      portOf(port),
    );
    assert.ok(proto instanceof Hello);
    assert.equal(proto.greeting, 'hi');
    assert.equal(proto.connected, true);
    assert.equal(proto.made.called, true);
    proto.transport.loseConnection();
    await proto.lost;
    await port.stopListening();
  });

  test('fails with the connect error', async () => {
    const n = await closedPort();
    await assert.rejects(
      new ClientCreator(tcpReactor, Recorder).connectTCP('127.0.0.1', n).asPromise(),
      ConnectionRefusedError,
    );
  });

  test('cancel stops the attempt: CancelledError', async () => {
    const port = listenTCP(reactor, 0, new CountingFactory(), LOCAL);
    const d = new ClientCreator(tcpReactor, Recorder).connectTCP('127.0.0.1', portOf(port));
    d.cancel();
    await assert.rejects(d.asPromise(), CancelledError);
    await port.stopListening();
  });

  test('cancel once connected (before the Deferred fired) drops the connection', async () => {
    const factory = new CountingFactory();
    const port = listenTCP(reactor, 0, factory, LOCAL);
    const made = new Deferred<Recorder>();
    class Canceller extends Recorder {
      override connectionMade(): void {
        super.connectionMade();
        made.callback(this);
      }
    }
    const d = new ClientCreator(tcpReactor, Canceller).connectTCP('127.0.0.1', portOf(port));
    // connectionMade runs in the same stack as the connect event; the
    // Deferred fires after it. Cancel in between.
    let proto: Recorder | null = null;
    made.addCallback((p) => {
      proto = p;
      d.cancel();
    });
    await assert.rejects(d.asPromise(), CancelledError);
    assert.ok(proto !== null);
    await (proto as Recorder).lost;
    assert.ok((proto as Recorder).reason?.check(ConnectionDone));
    await port.stopListening();
  });

  test('connectUNIX', async () => {
    const path = socketPath();
    const port = listenUNIX(reactor, path, new CountingFactory());
    const proto = await new ClientCreator(tcpReactor, Recorder).connectUNIX(path);
    assert.equal((proto.transport.getPeer() as UNIXAddress).name, path);
    proto.transport.loseConnection();
    await proto.lost;
    await port.stopListening();
  });
});

// ---------------------------------------------------------------------- UNIX ports

describe('listenUNIX', () => {
  test('binds at once; the file is removed on stop; mode is applied', async () => {
    const path = socketPath();
    const factory = new CountingFactory();
    const port = listenUNIX(reactor, path, factory, { mode: 0o600 });
    assert.equal(port.listening, true);
    assert.equal(factory.starts, 1);
    assert.ok(port.getHost() instanceof UNIXAddress);
    assert.equal((port.getHost() as UNIXAddress).name, path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await port.stopListening();
    assert.throws(() => statSync(path), { code: 'ENOENT' });
    assert.equal(factory.stops, 1);
  });

  test('a stale socket file is removed and the bind retried', async () => {
    const path = socketPath();
    const stale = `${path}.stale`;
    // A socket file nobody listens on: a hard link outliving its server.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(stale, resolve));
    linkSync(stale, path);
    await new Promise((resolve) => server.close(resolve));
    const port = listenUNIX(reactor, path, new CountingFactory());
    assert.equal(await port.whenListening(), port);
    const proto = await new ClientCreator(tcpReactor, Recorder).connectUNIX(path);
    proto.transport.loseConnection();
    await proto.lost;
    await port.stopListening();
  });

  test('a live socket is not taken over: CannotListenError', async () => {
    const path = socketPath();
    const first = listenUNIX(reactor, path, new CountingFactory());
    const second = listenUNIX(reactor, path, new CountingFactory());
    await assert.rejects(second.whenListening().asPromise(), CannotListenError);
    await first.stopListening();
  });

  test('a file that is not a socket is never removed', async () => {
    const path = socketPath();
    writeFileSync(path, 'precious');
    const port = listenUNIX(reactor, path, new CountingFactory());
    await assert.rejects(port.whenListening().asPromise(), CannotListenError);
    assert.equal(statSync(path).isFile(), true);
    unlinkSync(path);
  });

  test('connecting to a missing path fails with a ConnectError', async () => {
    const client = new RecordingClientFactory();
    connectUNIX(reactor, socketPath(), client);
    await client.failed;
    const reason = client.failure!;
    assert.ok(reason.value instanceof ConnectError);
    assert.equal((reason.value.cause as NodeJS.ErrnoException).code, 'ENOENT');
  });
});
