/**
 * One suite for the stream transport, run over TCP and UNIX-domain sockets:
 * echo, producers and flow control, read pausing, half-close, abort, orderly
 * close, write-after-close, exactly-once connectionLost, and detach.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ClientFactory, Factory, Protocol } from '../src/protocols/protocol.js';
import type { IPv4Address, UNIXAddress } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionLost,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type {
  IClientFactory,
  IConnector,
  IProtocol,
  IProtocolFactory,
  IPullProducer,
  IPushProducer,
} from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port, StreamOptions } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import type { StreamTransport } from '../src/reactor/stream.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';
import { connectUNIX, listenUNIX } from '../src/reactor/unix.js';
import { Recorder } from './recorder.js';

// ---------------------------------------------------------------------- the table

interface Kind {
  name: string;
  listen(factory: IProtocolFactory): Port;
  connect(port: Port, factory: IClientFactory, options?: StreamOptions): IConnector;
}

let socketCounter = 0;
function socketPath(): string {
  return join(tmpdir(), `torsion-transport-${process.pid}-${socketCounter++}.sock`);
}

const KINDS: Kind[] = [
  {
    name: 'TCP',
    listen: (factory) => listenTCP(reactor, 0, factory, { interface: '127.0.0.1' }),
    connect: (port, factory, options) =>
      connectTCP(reactor, '127.0.0.1', (port.getHost() as IPv4Address).port, factory, options),
  },
  {
    name: 'UNIX',
    listen: (factory) => listenUNIX(reactor, socketPath(), factory),
    connect: (port, factory, options) =>
      connectUNIX(reactor, (port.getHost() as UNIXAddress).name as string, factory, options),
  },
];

// ---------------------------------------------------------------------- helpers

class Echo extends Recorder {
  override dataReceived(data: Buffer): void {
    super.dataReceived(data);
    this.transport.write(data);
  }
}

/** Echo with flow control: its own read side is the producer of its writes. */
class FlowEcho extends Recorder {
  override connectionMade(): void {
    this.transport.registerProducer(this.transport, true);
    super.connectionMade();
  }

  override dataReceived(data: Buffer): void {
    this.bytes += data.length;
    this.transport.write(data);
  }
}

/** A factory that remembers the protocols it built. */
class Keeper<P extends IProtocol> extends ClientFactory<P> {
  readonly built: P[] = [];
  readonly firstBuilt = new Deferred<P>();

  override buildProtocol(addr: Parameters<ClientFactory<P>['buildProtocol']>[0]): P | null {
    const p = super.buildProtocol(addr);
    if (p !== null) {
      this.built.push(p);
      if (!this.firstBuilt.called) this.firstBuilt.callback(p);
    }
    return p;
  }
}

function keeper<P extends IProtocol, A extends unknown[]>(
  protocol: new (...args: A) => P,
  ...args: A
): Keeper<P> {
  const k = new Keeper<P>();
  k.protocol = protocol as unknown as Keeper<P>['protocol'];
  k.protocolArgs = args;
  return k;
}

interface Pair<S extends Recorder, C extends Recorder> {
  port: Port;
  server: S;
  client: C;
  serverFactory: Keeper<S>;
  clientFactory: Keeper<C>;
}

const openPorts = new Set<Port>();

async function connectPair<S extends Recorder, C extends Recorder>(
  kind: Kind,
  ServerClass: new () => S,
  ClientClass: new () => C,
  clientOptions?: StreamOptions,
): Promise<Pair<S, C>> {
  const serverFactory = keeper(ServerClass);
  const clientFactory = keeper(ClientClass);
  const port = kind.listen(serverFactory);
  openPorts.add(port);
  await port.whenListening();
  kind.connect(port, clientFactory, clientOptions);
  const client = await clientFactory.firstBuilt;
  const server = await serverFactory.firstBuilt;
  await client.made;
  await server.made;
  return { port, server, client, serverFactory, clientFactory };
}

async function closeAll(pair: Pair<Recorder, Recorder>): Promise<void> {
  if (pair.client.lostCount === 0) pair.client.transport.loseConnection();
  await pair.client.lost;
  await pair.server.lost;
  openPorts.delete(pair.port);
  await pair.port.stopListening();
}

/** `n` turns of the event loop (only for checking that something did NOT happen). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Deterministic bytes: block `i` of `size` bytes. */
function block(i: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (i + 1) * 2654435761;
  for (let j = 0; j < size; j += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, j);
  }
  return b;
}

const CHUNK = 64 * 1024;
const TEN_MIB = 10 * 1024 * 1024;

/** Sends `total` bytes through a push producer that writes until paused. */
class PushSender extends Recorder implements IPushProducer {
  pauses = 0;
  resumes = 0;
  stops = 0;
  sent = 0;
  paused = false;
  unregistered = false;
  readonly sentHash = createHash('sha256');
  readonly recvHash = createHash('sha256');
  readonly done = new Deferred<void>();
  total = TEN_MIB;
  chunkSize = CHUNK;

  override connectionMade(): void {
    super.connectionMade();
    this.transport.registerProducer(this, true);
    this.#produce();
  }

  override dataReceived(data: Buffer): void {
    this.bytes += data.length;
    this.recvHash.update(data);
    if (this.bytes === this.total) this.done.callback(undefined);
  }

  pauseProducing(): void {
    this.pauses++;
    this.paused = true;
  }

  resumeProducing(): void {
    this.resumes++;
    this.paused = false;
    this.#produce();
  }

  stopProducing(): void {
    this.stops++;
  }

  #produce(): void {
    while (!this.paused && this.sent < this.total) {
      const chunk = block(this.sent / this.chunkSize, this.chunkSize);
      this.sent += chunk.length;
      this.sentHash.update(chunk);
      this.transport.write(chunk);
    }
    if (this.sent === this.total && !this.unregistered) {
      this.unregistered = true;
      this.transport.unregisterProducer();
    }
  }
}

/** Sends `total` bytes through a pull producer: one chunk per resumeProducing. */
class PullSender extends Recorder implements IPullProducer {
  pulls = 0;
  stops = 0;
  sent = 0;
  readonly sentHash = createHash('sha256');
  readonly recvHash = createHash('sha256');
  readonly done = new Deferred<void>();
  total = TEN_MIB;

  override connectionMade(): void {
    super.connectionMade();
    this.transport.registerProducer(this, false);
  }

  override dataReceived(data: Buffer): void {
    this.bytes += data.length;
    this.recvHash.update(data);
    if (this.bytes === this.total) this.done.callback(undefined);
  }

  resumeProducing(): void {
    this.pulls++;
    if (this.sent === this.total) {
      this.transport.unregisterProducer();
      return;
    }
    const chunk = block(this.sent / CHUNK, CHUNK);
    this.sent += chunk.length;
    this.sentHash.update(chunk);
    this.transport.write(chunk);
  }

  stopProducing(): void {
    this.stops++;
  }
}

function errorLog(): { events: LogEvent[]; remove: () => void } {
  const events: LogEvent[] = [];
  const remove = addObserver((event) => {
    if (event.isError) events.push(event);
  });
  return { events, remove };
}

after(async () => {
  // Only after a failed test: drop what it left open so the run can end.
  for (const port of openPorts) {
    for (const transport of port.connections) transport.abortConnection();
    await port.stopListening();
  }
});

// ---------------------------------------------------------------------- the suite

for (const kind of KINDS) {
  describe(`stream transport over ${kind.name}`, () => {
    test('connect and echo', async () => {
      const pair = await connectPair(kind, Echo, Recorder);
      pair.client.transport.write('hello, ');
      pair.client.transport.write(Buffer.from('world'));
      pair.client.transport.write('');
      await pair.client.waitForBytes(12);
      assert.equal(pair.client.text(), 'hello, world');
      assert.equal(pair.server.text(), 'hello, world');
      assert.equal(pair.port.connections.size, 1);
      await closeAll(pair);
      assert.ok(pair.client.reason?.check(ConnectionDone));
      assert.ok(pair.server.reason?.check(ConnectionDone));
      assert.equal(pair.port.connections.size, 0);
    });

    test('writeSequence sends the buffers in order', async () => {
      const pair = await connectPair(kind, Echo, Recorder);
      pair.client.transport.writeSequence(['a', Buffer.from('bc'), '', 'def']);
      await pair.client.waitForBytes(6);
      assert.equal(pair.client.text(), 'abcdef');
      await closeAll(pair);
    });

    test('10 MiB through a push producer: paused, resumed, intact', async () => {
      const pair = await connectPair(kind, FlowEcho, PushSender);
      await pair.client.done;
      assert.equal(pair.client.bytes, TEN_MIB);
      assert.equal(pair.client.recvHash.digest('hex'), pair.client.sentHash.digest('hex'));
      assert.ok(pair.client.pauses >= 1, `paused ${pair.client.pauses} times`);
      assert.ok(pair.client.resumes >= 1, `resumed ${pair.client.resumes} times`);
      assert.equal(pair.client.stops, 0);
      await closeAll(pair);
      // The server's own (self-registered) producer was stopped on close.
      assert.equal(pair.server.lostCount, 1);
    });

    test('10 MiB through a pull producer: pulled once per drain, intact', async () => {
      const pair = await connectPair(kind, FlowEcho, PullSender);
      await pair.client.done;
      assert.equal(pair.client.bytes, TEN_MIB);
      assert.equal(pair.client.recvHash.digest('hex'), pair.client.sentHash.digest('hex'));
      // One pull per chunk, plus the one that finds nothing left and unregisters.
      assert.equal(pair.client.pulls, TEN_MIB / CHUNK + 1);
      assert.equal(pair.client.stops, 0);
      await closeAll(pair);
    });

    test('a producer is stopped once when the connection closes', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      let stops = 0;
      const producer: IPushProducer = {
        pauseProducing() {},
        resumeProducing() {},
        stopProducing() {
          stops++;
        },
      };
      pair.client.transport.registerProducer(producer, true);
      assert.throws(
        () => pair.client.transport.registerProducer(producer, true),
        ProducerAlreadyRegistered,
      );
      pair.server.transport.loseConnection();
      await pair.client.lost;
      assert.equal(stops, 1);
      // Registering on a closed transport stops the producer at once.
      pair.client.transport.registerProducer(producer, false);
      assert.equal(stops, 2);
      await closeAll(pair);
    });

    test('loseConnection waits for the producer to unregister', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const producer: IPushProducer = {
        pauseProducing() {},
        resumeProducing() {},
        stopProducing() {},
      };
      const t = pair.server.transport;
      t.registerProducer(producer, true);
      t.write('one ');
      t.loseConnection();
      assert.equal(t.disconnecting, true);
      // Still registered: the producer may finish its output.
      t.write('two');
      await pair.client.waitForBytes(7);
      assert.equal(pair.client.lostCount, 0);
      t.unregisterProducer();
      assert.throws(() => t.write('three'), TransportClosedError);
      await pair.client.lost;
      assert.equal(pair.client.text(), 'one two');
      assert.ok(pair.client.reason?.check(ConnectionDone));
      await closeAll(pair);
    });

    test('the transport registered as its own producer does not hold loseConnection', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const t = pair.server.transport;
      t.registerProducer(t, true);
      t.write('bye');
      t.loseConnection();
      await pair.client.lost;
      assert.equal(pair.client.text(), 'bye');
      assert.ok(pair.client.reason?.check(ConnectionDone));
      await closeAll(pair);
    });

    test('pauseProducing stops dataReceived until resumeProducing', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const server = pair.server;
      server.transport.pauseProducing();
      pair.client.transport.write('held back');
      // Round trip the other way: the client's bytes were sent before this reply.
      pair.server.transport.write('ping');
      await pair.client.waitForBytes(4);
      await turns(5);
      assert.equal(server.bytes, 0);
      server.transport.resumeProducing();
      await server.waitForBytes(9);
      assert.equal(server.text(), 'held back');
      // Pausing again from inside dataReceived holds the next chunk back too.
      let calls = 0;
      server.dataReceived = (data: Buffer) => {
        calls++;
        Recorder.prototype.dataReceived.call(server, data);
        server.transport.pauseProducing();
      };
      pair.client.transport.write('x');
      await server.waitForBytes(10);
      pair.client.transport.write('y');
      await turns(5);
      assert.equal(calls, 1);
      server.transport.resumeProducing();
      await server.waitForBytes(11);
      assert.equal(server.text(), 'held backxy');
      await closeAll(pair);
    });

    test('half-close: readConnectionLost, then the other side still writes', async () => {
      class HalfServer extends Recorder {
        readEnded = 0;
        readConnectionLost(): void {
          this.readEnded++;
          this.transport.write(`got ${this.text()}`);
          this.transport.loseConnection();
        }
        writeConnectionLost(): void {}
      }
      class HalfClient extends Recorder {
        readonly writeEnded = new Deferred<void>();
        readConnectionLost(): void {}
        writeConnectionLost(): void {
          this.writeEnded.callback(undefined);
        }
      }
      const pair = await connectPair(kind, HalfServer, HalfClient);
      pair.client.transport.write('request');
      pair.client.transport.loseWriteConnection();
      assert.throws(() => pair.client.transport.write('more'), TransportClosedError);
      await pair.client.writeEnded;
      await pair.client.lost;
      assert.equal(pair.server.readEnded, 1);
      assert.equal(pair.client.text(), 'got request');
      assert.ok(pair.client.reason?.check(ConnectionDone));
      await pair.server.lost;
      assert.ok(pair.server.reason?.check(ConnectionDone));
      await closeAll(pair);
    });

    test('a FIN without readConnectionLost closes the connection after the flush', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      pair.client.transport.loseWriteConnection();
      await pair.server.lost;
      assert.ok(pair.server.reason?.check(ConnectionDone));
      await closeAll(pair);
    });

    test('abortConnection delivers ConnectionAborted on a later turn', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const t = pair.client.transport;
      t.write('unsent maybe');
      t.abortConnection();
      assert.equal(pair.client.lostCount, 0);
      assert.equal(t.disconnecting, true);
      assert.throws(() => t.write('x'), TransportClosedError);
      t.abortConnection();
      t.loseConnection();
      await pair.client.lost;
      assert.equal(pair.client.lostCount, 1);
      assert.ok(pair.client.reason?.value instanceof ConnectionAborted);
      await pair.server.lost;
      assert.ok(pair.server.reason?.check(ConnectionDone, ConnectionLost));
      await closeAll(pair);
    });

    test('abortConnection from dataReceived does not re-enter the protocol', async () => {
      class Aborter extends Recorder {
        insideData = false;
        lostInside = false;
        override dataReceived(data: Buffer): void {
          this.insideData = true;
          super.dataReceived(data);
          this.transport.abortConnection();
          this.insideData = false;
        }
        override connectionLost(reason: Failure): void {
          if (this.insideData) this.lostInside = true;
          super.connectionLost(reason);
        }
      }
      const pair = await connectPair(kind, Aborter, Recorder);
      pair.client.transport.write('boom');
      await pair.server.lost;
      assert.equal(pair.server.lostInside, false);
      assert.ok(pair.server.reason?.value instanceof ConnectionAborted);
      await closeAll(pair);
    });

    test('loseConnection after a large write delivers everything, then ConnectionDone', async () => {
      const size = 4 * 1024 * 1024;
      const payload = block(7, size);
      class BigWriter extends Recorder {
        override connectionMade(): void {
          super.connectionMade();
          this.transport.write(payload);
          this.transport.loseConnection();
          assert.throws(() => this.transport.write('late'), TransportClosedError);
        }
      }
      const pair = await connectPair(kind, BigWriter, Recorder);
      await pair.client.lost;
      assert.equal(pair.client.bytes, size);
      assert.ok(Buffer.concat(pair.client.received).equals(payload));
      assert.ok(pair.client.reason?.check(ConnectionDone));
      await closeAll(pair);
      assert.equal(pair.server.lostCount, 1);
    });

    test('write after loseConnection throws TransportClosedError', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const t = pair.client.transport;
      t.loseConnection();
      t.loseConnection();
      assert.throws(() => t.write('x'), TransportClosedError);
      assert.throws(() => t.writeSequence(['x']), TransportClosedError);
      await pair.client.lost;
      assert.throws(() => t.write('x'), TransportClosedError);
      await closeAll(pair);
    });

    test('connectionLost runs exactly once, whatever is called after', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const t = pair.client.transport;
      t.loseConnection();
      t.abortConnection();
      await pair.client.lost;
      t.abortConnection();
      t.loseConnection();
      t.loseWriteConnection();
      t.pauseProducing();
      t.resumeProducing();
      await pair.server.lost;
      await turns(3);
      assert.equal(pair.client.lostCount, 1);
      assert.equal(pair.server.lostCount, 1);
      await closeAll(pair);
    });

    test('an exception in dataReceived is logged and drops the connection', async () => {
      class Thrower extends Recorder {
        override dataReceived(_data: Buffer): void {
          throw new Error('protocol bug');
        }
      }
      const log = errorLog();
      try {
        const pair = await connectPair(kind, Thrower, Recorder);
        pair.client.transport.write('x');
        await pair.server.lost;
        assert.equal(log.events.length, 1);
        assert.match(log.events[0]!.message, /protocol bug/);
        const reason = pair.server.reason!;
        assert.ok(reason.value instanceof ConnectionLost);
        assert.equal((reason.value.cause as Error).message, 'protocol bug');
        await closeAll(pair);
      } finally {
        log.remove();
      }
    });

    test('an exception in connectionMade is logged and drops the connection', async () => {
      class BadStart extends Recorder {
        override connectionMade(): void {
          super.connectionMade();
          throw new Error('bad start');
        }
      }
      const log = errorLog();
      try {
        const pair = await connectPair(kind, BadStart, Recorder);
        await pair.server.lost;
        assert.equal(log.events.length, 1);
        assert.equal((pair.server.reason!.value.cause as Error).message, 'bad start');
        await closeAll(pair);
      } finally {
        log.remove();
      }
    });

    test('getHost and getPeer', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const s = pair.server.transport;
      const c = pair.client.transport;
      if (kind.name === 'TCP') {
        const port = (pair.port.getHost() as IPv4Address).port;
        assert.equal(s.getHost().type, 'TCP');
        assert.equal((s.getHost() as IPv4Address).port, port);
        assert.equal((c.getPeer() as IPv4Address).port, port);
        assert.equal((s.getPeer() as IPv4Address).port, (c.getHost() as IPv4Address).port);
        assert.equal((s.getPeer() as IPv4Address).host, '127.0.0.1');
      } else {
        const path = (pair.port.getHost() as UNIXAddress).name;
        assert.equal(s.getHost().type, 'UNIX');
        assert.equal((s.getHost() as UNIXAddress).name, path);
        assert.equal((c.getPeer() as UNIXAddress).name, path);
        assert.equal((c.getHost() as UNIXAddress).name, null);
      }
      await closeAll(pair);
    });

    test('detach from dataReceived hands over a non-flowing socket', async () => {
      class Upgrader extends Recorder {
        readonly detached = new Deferred<{ socket: Socket; head: Buffer }>();
        flowing: boolean | null | undefined = undefined;
        override dataReceived(data: Buffer): void {
          super.dataReceived(data);
          const taken = (this.transport as StreamTransport).detach();
          this.flowing = taken.socket.readableFlowing;
          this.detached.callback(taken);
        }
      }
      const pair = await connectPair(kind, Upgrader, Recorder);
      const server = pair.server;
      pair.client.transport.write('upgrade');
      const { socket, head } = await server.detached;
      assert.equal(server.flowing, null);
      assert.equal(socket.readableFlowing, null);
      assert.ok(Buffer.isBuffer(head));
      assert.equal(pair.port.connections.size, 0);
      assert.throws(() => server.transport.write('x'), TransportClosedError);
      assert.throws(() => server.transport.detach(), TransportClosedError);
      // The new owner drives the socket directly.
      const chunks: Buffer[] = [head];
      const gotMore = new Deferred<void>();
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (Buffer.concat(chunks).toString() === 'more') gotMore.callback(undefined);
      });
      socket.write('switched');
      await pair.client.waitForBytes(8);
      pair.client.transport.write('more');
      await gotMore;
      socket.end();
      socket.on('end', () => socket.end());
      await pair.client.lost;
      await new Promise((resolve) => socket.once('close', resolve));
      await turns(2);
      assert.equal(server.lostCount, 0);
      assert.equal(pair.client.text(), 'switched');
      openPorts.delete(pair.port);
      await pair.port.stopListening();
    });

    test('detach while paused: no bytes lost between head and the socket', async () => {
      const pair = await connectPair(kind, Recorder, Recorder);
      const t = pair.server.transport;
      t.pauseProducing();
      pair.client.transport.write('first');
      pair.server.transport.write('ping');
      await pair.client.waitForBytes(4);
      await turns(5);
      const { socket, head } = t.detach();
      assert.equal(socket.readableFlowing, null);
      assert.equal(pair.server.bytes, 0);
      const chunks: Buffer[] = [head];
      const done = new Deferred<void>();
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (Buffer.concat(chunks).toString() === 'firstsecond') done.callback(undefined);
      });
      pair.client.transport.write('second');
      await done;
      socket.destroy();
      await pair.client.lost;
      await turns(2);
      assert.equal(pair.server.lostCount, 0);
      openPorts.delete(pair.port);
      await pair.port.stopListening();
    });

    test('a high-water mark below the socket buffer still pauses and resumes', async () => {
      // Writes of 4 KiB stay below the socket's own mark (16 KiB), so Node
      // sends no 'drain': the transport must ask for a flush callback.
      class SmallPush extends PushSender {
        override total = TEN_MIB;
        override chunkSize = 4096;
      }
      const pair = await connectPair(kind, FlowEcho, SmallPush, { highWaterMark: 1000 });
      assert.equal((pair.client.transport as StreamTransport).highWaterMark, 1000);
      await pair.client.done;
      assert.equal(pair.client.recvHash.digest('hex'), pair.client.sentHash.digest('hex'));
      assert.ok(pair.client.pauses >= 1 && pair.client.resumes >= 1);
      assert.equal(pair.client.transport.bufferedAmount, 0);
      await closeAll(pair);
    });
  });
}

describe('stream transport: factory wiring', () => {
  test('Factory.forProtocol passes constructor arguments', async () => {
    class Greeter extends Protocol {
      constructor(readonly greeting: string) {
        super();
      }
      override connectionMade(): void {
        this.transport.write(this.greeting);
        this.transport.loseConnection();
      }
    }
    const factory = Factory.forProtocol(Greeter, 'hi there');
    const port = listenTCP(reactor, 0, factory, { interface: '127.0.0.1' });
    const client = keeper(Recorder);
    connectTCP(reactor, '127.0.0.1', (port.getHost() as IPv4Address).port, client);
    const proto = await client.firstBuilt;
    await proto.lost;
    assert.equal(proto.text(), 'hi there');
    await port.stopListening();
  });
});
