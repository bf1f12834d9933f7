/**
 * TLS: listenSSL/connectSSL with real handshakes (echo, producers and flow
 * control over 4 MiB, half-close, abort, peer certificates both ways),
 * handshake failures on both sides (untrusted or mismatched certificate,
 * plaintext and silent clients), bad context options; and STARTTLS on live
 * TCP connections, both sides, with the plaintext/TLS ordering at the
 * switch, producers kept across it, failures and the handshake timeout.
 *
 * The certificate is made at test time with openssl (see
 * fixtures/tls/make-cert.ts) and removed afterwards.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ClientFactory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  ConnectError,
  ConnectionAborted,
  ConnectionDone,
  ConnectionRefusedError,
  InvalidArgumentError,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type {
  IAddress,
  IConnector,
  IProtocol,
  IPushProducer,
  IReactorTime,
  ITLSTransport,
  StartTLSOptions,
} from '../src/reactor/interfaces.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import type { StreamTransport } from '../src/reactor/stream.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';
import {
  connectSSL,
  listenSSL,
  TLSContextError,
  TLSError,
  TLSHandshakeError,
} from '../src/reactor/tls.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';
import { Recorder as StreamRecorder } from './recorder.js';

// ---------------------------------------------------------------------- fixtures

let cert: TestCert;
let serverOptions: { key: Buffer; cert: Buffer };
let trust: { ca: Buffer };

before(() => {
  cert = makeCert();
  serverOptions = { key: cert.key, cert: cert.cert };
  trust = { ca: cert.cert };
});

const openPorts = new Set<Port>();

after(async () => {
  for (const port of openPorts) {
    for (const transport of port.connections) transport.abortConnection();
    await port.stopListening();
  }
  cert.remove();
});

const LOCAL = { interface: '127.0.0.1' };

/** The error a protocol's connection was lost with. */
function errorOf(protocol: { reason: Failure | null }): Error {
  assert.ok(protocol.reason !== null, 'the connection was lost');
  return protocol.reason.value;
}

function portOf(port: Port): number {
  return (port.getHost() as IPv4Address).port;
}

/** The transport's `secure` getter (not part of ITLSTransport's type). */
function secureOf(protocol: { transport: unknown }): boolean {
  return (protocol.transport as StreamTransport).secure;
}

/** Records a connection's events; each is awaitable. */
class Recorder extends StreamRecorder<ITLSTransport> {}

class Echo extends Recorder {
  override dataReceived(data: Buffer): void {
    super.dataReceived(data);
    this.transport.write(data);
  }
}

/** A factory keeping what it built; `firstBuilt` fires with the first protocol. */
class Keeper<P extends IProtocol> extends ClientFactory<P> {
  readonly built: P[] = [];
  readonly firstBuilt = new Deferred<P>();
  /** Fires with the `clientConnectionFailed` reason (wrapped: a Failure would errback). */
  readonly failed = new Deferred<{ reason: Failure }>();

  override buildProtocol(addr: IAddress): P | null {
    const p = super.buildProtocol(addr);
    if (p !== null) {
      this.built.push(p);
      if (!this.firstBuilt.called) this.firstBuilt.callback(p);
    }
    return p;
  }

  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    this.failed.callback({ reason });
  }
}

function keeper<P extends IProtocol>(protocol: new () => P): Keeper<P> {
  const k = new Keeper<P>();
  k.protocol = protocol as unknown as Keeper<P>['protocol'];
  return k;
}

function track(port: Port): Port {
  openPorts.add(port);
  return port;
}

async function stop(port: Port): Promise<void> {
  openPorts.delete(port);
  await port.stopListening();
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
const FOUR_MIB = 4 * 1024 * 1024;
const FLOW_TOTAL = 32 * 1024 * 1024;

/** A push producer writing `total` bytes of blocks until paused. */
class BlockProducer implements IPushProducer {
  pauses = 0;
  resumes = 0;
  stops = 0;
  sent = 0;
  paused = false;
  readonly hash = createHash('sha256');
  readonly finished = new Deferred<void>();

  constructor(
    readonly transport: ITLSTransport,
    readonly total = FOUR_MIB,
  ) {}

  pauseProducing(): void {
    this.pauses++;
    this.paused = true;
  }

  resumeProducing(): void {
    this.resumes++;
    this.paused = false;
    this.produce();
  }

  stopProducing(): void {
    this.stops++;
  }

  produce(): void {
    while (!this.paused && this.sent < this.total) {
      const chunk = block(this.sent / CHUNK, CHUNK);
      this.sent += chunk.length;
      this.hash.update(chunk);
      this.transport.write(chunk);
    }
    if (this.sent === this.total && !this.finished.called) {
      this.transport.unregisterProducer();
      this.finished.callback(undefined);
    }
  }
}

/** Hashes what it receives; fires `done` at `total` bytes. */
class HashSink extends Recorder {
  readonly hash = createHash('sha256');
  readonly done = new Deferred<void>();
  total = FOUR_MIB;

  override dataReceived(data: Buffer): void {
    this.bytes += data.length;
    this.hash.update(data);
    if (this.bytes === this.total) this.done.callback(undefined);
  }
}

/** Listens with TLS on 127.0.0.1:0 and connects a client; resolves once both are connected. */
async function tlsPair<S extends Recorder, C extends Recorder>(
  ServerClass: new () => S,
  ClientClass: new () => C,
  serverContext: object = serverOptions,
  clientContext: object = trust,
): Promise<{ port: Port; server: S; client: C }> {
  const serverFactory = keeper(ServerClass);
  const clientFactory = keeper(ClientClass);
  const port = track(reactor.listenSSL(0, serverFactory, serverContext, LOCAL));
  connectSSL(reactor, '127.0.0.1', portOf(port), clientFactory, clientContext);
  const client = await clientFactory.firstBuilt;
  const server = await serverFactory.firstBuilt;
  await client.made;
  await server.made;
  return { port, server, client };
}

// ---------------------------------------------------------------------- listenSSL / connectSSL

describe('listenSSL / connectSSL', () => {
  test('echo over a real handshake; getHost() at once; clean close on both sides', async () => {
    const serverFactory = keeper(Echo);
    const port = track(reactor.listenSSL(0, serverFactory, serverOptions, LOCAL));
    assert.notEqual(portOf(port), 0, 'the port is bound when listenSSL returns');
    const clientFactory = keeper(Recorder);
    reactor.connectSSL('127.0.0.1', portOf(port), clientFactory, trust);
    const client = await clientFactory.firstBuilt;
    await client.made;
    client.transport.write('hello, ');
    client.transport.writeSequence(['tls ', Buffer.from('world')]);
    await client.waitForBytes(16);
    assert.equal(client.text(), 'hello, tls world');
    const server = await serverFactory.firstBuilt;
    assert.equal(server.text(), 'hello, tls world');

    client.transport.loseConnection();
    await client.lost;
    await server.lost;
    assert.ok(client.reason?.check(ConnectionDone));
    assert.ok(server.reason?.check(ConnectionDone));
    assert.equal(client.lostCount, 1);
    assert.equal(server.lostCount, 1);
    await stop(port);
  });

  test('getPeerCertificate: the server certificate in the client; null without a client cert', async () => {
    const { port, server, client } = await tlsPair(Recorder, Recorder);
    const peer = client.transport.getPeerCertificate();
    assert.ok(peer !== null);
    assert.equal(peer.subject.CN, 'localhost');
    assert.match(peer.subjectaltname ?? '', /DNS:localhost/);
    assert.equal(server.transport.getPeerCertificate(), null, 'the client sent no certificate');
    assert.equal(secureOf(client), true, 'a connectSSL transport is secure');
    assert.equal(secureOf(server), true, 'a listenSSL transport is secure');
    assert.equal((server.transport as StreamTransport).isSecure(), true, 'isSecure() agrees');
    client.transport.loseConnection();
    await server.lost;
    assert.equal(client.transport.getPeerCertificate(), null, 'null once closed');
    assert.equal(secureOf(client), true, 'still secure once closed');
    await stop(port);
  });

  test('mutual TLS: the server sees the client certificate in connectionMade', async () => {
    let seenInMade: string | undefined;
    class CertCheck extends Recorder {
      override connectionMade(): void {
        seenInMade = String(this.transport.getPeerCertificate()?.subject.CN);
        super.connectionMade();
      }
    }
    const { port, client, server } = await tlsPair(
      CertCheck,
      Recorder,
      { ...serverOptions, requestCert: true, ca: cert.cert },
      { ...trust, key: cert.key, cert: cert.cert },
    );
    assert.equal(seenInMade, 'localhost');
    client.transport.loseConnection();
    await server.lost;
    await stop(port);
  });

  test('32 MiB through a push producer, paused and resumed, arrives intact', async () => {
    // More than loopback's socket buffers can absorb, so the paused reader
    // really holds the sender back (4 MiB fit in the kernel under load).
    class PausedSink extends HashSink {
      override total = FLOW_TOTAL;
      override connectionMade(): void {
        super.connectionMade();
        // Hold the data back until the sender's producer has been paused.
        this.transport.pauseProducing();
      }
    }
    class Sender extends Recorder {
      producer!: BlockProducer;
      override connectionMade(): void {
        super.connectionMade();
        this.producer = new BlockProducer(this.transport, FLOW_TOTAL);
        this.transport.registerProducer(this.producer, true);
        this.producer.produce();
      }
    }
    const { port, server, client } = await tlsPair(PausedSink, Sender);
    const producer = client.producer;
    assert.ok(producer.pauses >= 1, 'the producer was paused by the write buffer');
    assert.ok(producer.sent < FLOW_TOTAL, 'the paused reader held the sender back');
    server.transport.resumeProducing();
    await server.done;
    await producer.finished;
    assert.ok(producer.resumes >= 1);
    assert.equal(server.hash.digest('hex'), producer.hash.digest('hex'));
    client.transport.loseConnection();
    await server.lost;
    await client.lost;
    assert.equal(producer.stops, 0, 'unregistered producers are not stopped');
    await stop(port);
  });

  test('half-close: the client ends its side, the server still answers', async () => {
    class HalfServer extends Recorder {
      override dataReceived(data: Buffer): void {
        super.dataReceived(data);
      }
      readConnectionLost(): void {
        this.transport.write(`got ${this.text()}`);
        this.transport.loseConnection();
      }
    }
    class HalfClient extends Recorder {
      writeClosed = 0;
      writeConnectionLost(): void {
        this.writeClosed++;
      }
    }
    const { port, server, client } = await tlsPair(HalfServer, HalfClient);
    client.transport.write('request');
    client.transport.loseWriteConnection();
    await client.lost;
    await server.lost;
    assert.equal(client.text(), 'got request');
    assert.equal(client.writeClosed, 1);
    assert.ok(client.reason?.check(ConnectionDone));
    await stop(port);
  });

  test('abortConnection: ConnectionAborted here, connectionLost once on both sides', async () => {
    const { port, server, client } = await tlsPair(Recorder, Recorder);
    client.transport.abortConnection();
    assert.equal(client.lostCount, 0, 'delivered on a later turn');
    await client.lost;
    await server.lost;
    assert.ok(client.reason?.check(ConnectionAborted));
    assert.equal(client.lostCount, 1);
    assert.equal(server.lostCount, 1);
    assert.throws(() => client.transport.write('x'), TransportClosedError);
    await stop(port);
  });

  test('an untrusted certificate: clientConnectionFailed with TLSHandshakeError; the server survives', async () => {
    const handshakeErrors: Error[] = [];
    const gotServerError = new Deferred<void>();
    const serverFactory = keeper(Echo);
    const port = track(
      listenSSL(reactor, 0, serverFactory, serverOptions, {
        ...LOCAL,
        onHandshakeError: (e) => {
          handshakeErrors.push(e);
          if (!gotServerError.called) gotServerError.callback(undefined);
        },
      }),
    );
    const clientFactory = keeper(Recorder);
    connectSSL(reactor, '127.0.0.1', portOf(port), clientFactory, {}); // Node's roots only
    const { reason } = await clientFactory.failed;
    assert.ok(reason.value instanceof TLSHandshakeError);
    assert.ok(reason.value instanceof ConnectError);
    assert.equal((reason.value as TLSHandshakeError).code, 'TORSION_ERR_TLS_HANDSHAKE');
    assert.equal((reason.value as TLSHandshakeError).tlsCode, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(clientFactory.built.length, 0, 'no protocol for a failed handshake');
    await gotServerError;
    assert.ok(handshakeErrors[0] instanceof TLSHandshakeError);
    assert.equal(serverFactory.built.length, 0);
    assert.equal(port.connections.size, 0);

    // The port still serves a client that trusts it.
    const good = keeper(Recorder);
    connectSSL(reactor, '127.0.0.1', portOf(port), good, trust);
    const client = await good.firstBuilt;
    await client.made;
    client.transport.write('ping');
    await client.waitForBytes(4);
    client.transport.loseConnection();
    await client.lost;
    await stop(port);
  });

  test('a certificate for another name: TLSHandshakeError (ERR_TLS_CERT_ALTNAME_INVALID)', async () => {
    const port = track(listenSSL(reactor, 0, keeper(Echo), serverOptions, LOCAL));
    const clientFactory = keeper(Recorder);
    connectSSL(reactor, '127.0.0.1', portOf(port), clientFactory, {
      ...trust,
      servername: 'example.com',
    });
    const { reason } = await clientFactory.failed;
    assert.ok(reason.value instanceof TLSHandshakeError);
    assert.equal((reason.value as TLSHandshakeError).tlsCode, 'ERR_TLS_CERT_ALTNAME_INVALID');
    await stop(port);
  });

  test('nothing listening: ConnectionRefusedError, not a TLS error', async () => {
    const probe = listenTCP(reactor, 0, keeper(Recorder), LOCAL);
    const free = portOf(probe);
    await probe.stopListening();
    const clientFactory = keeper(Recorder);
    connectSSL(reactor, '127.0.0.1', free, clientFactory, trust);
    const { reason } = await clientFactory.failed;
    assert.ok(reason.value instanceof ConnectionRefusedError);
  });

  test('plaintext, silent and hanging-up clients never reach the factory and leak nothing', async () => {
    const errors: Error[] = [];
    let want = 0;
    let enough: Deferred<void> | null = null;
    const serverFactory = keeper(Echo);
    const port = track(
      listenSSL(reactor, 0, serverFactory, serverOptions, {
        ...LOCAL,
        handshakeTimeout: 0.2,
        onHandshakeError: (e) => {
          errors.push(e);
          if (enough !== null && errors.length >= want) enough.callback(undefined);
        },
      }),
    );
    const expect = (n: number): Deferred<void> => {
      want = n;
      enough = new Deferred<void>();
      if (errors.length >= n) enough.callback(undefined);
      return enough;
    };

    // 1. Plain HTTP at a TLS port: the server drops it.
    const plain = net.connect(portOf(port), '127.0.0.1');
    const plainClosed = new Deferred<void>();
    plain.on('error', () => {});
    plain.on('close', () => plainClosed.callback(undefined));
    plain.on('connect', () => plain.write('GET / HTTP/1.0\r\n\r\n'));
    await plainClosed;
    await expect(1);
    assert.ok(errors[0] instanceof TLSHandshakeError);
    assert.match(String((errors[0] as TLSHandshakeError).tlsCode), /^ERR_SSL_/);

    // 2. A client that hangs up (FIN) before any handshake.
    const quitter = net.connect(portOf(port), '127.0.0.1');
    quitter.on('error', () => {});
    quitter.on('connect', () => quitter.end());
    await expect(2);

    // 3. A client that says nothing: the handshake timeout drops it.
    const silent = net.connect(portOf(port), '127.0.0.1');
    const silentClosed = new Deferred<void>();
    silent.on('error', () => {});
    silent.on('close', () => silentClosed.callback(undefined));
    await expect(3);
    await silentClosed;
    assert.equal((errors[2] as TLSHandshakeError).tlsCode, 'ERR_TLS_HANDSHAKE_TIMEOUT');
    quitter.destroy();

    assert.equal(serverFactory.built.length, 0);
    assert.equal(port.connections.size, 0);
    const { client } = await (async () => {
      const f = keeper(Recorder);
      connectSSL(reactor, '127.0.0.1', portOf(port), f, trust);
      const c = await f.firstBuilt;
      await c.made;
      return { client: c };
    })();
    client.transport.loseConnection();
    await client.lost;
    await stop(port);
  });

  test('TLS 1.3: a missing client certificate is refused after the client connected', async () => {
    const serverErrors: Error[] = [];
    const serverFactory = keeper(Recorder);
    const port = track(
      listenSSL(
        reactor,
        0,
        serverFactory,
        { ...serverOptions, requestCert: true, ca: cert.cert },
        { ...LOCAL, onHandshakeError: (e) => serverErrors.push(e) },
      ),
    );
    const clientFactory = keeper(Recorder);
    connectSSL(reactor, '127.0.0.1', portOf(port), clientFactory, trust);
    // The client's side of the handshake completes: it is connected...
    const client = await clientFactory.firstBuilt;
    await client.made;
    client.transport.write('hello?');
    // ...then the server's alert arrives as the reason of connectionLost.
    await client.lost;
    assert.ok(errorOf(client) instanceof TLSError);
    assert.equal(
      (errorOf(client) as TLSError).tlsCode,
      'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
    );
    assert.equal(serverFactory.built.length, 0, 'the server never built a protocol');
    assert.equal(serverErrors.length, 1);
    await stop(port);
  });

  test('a corrupt record after the handshake: connectionLost with TLSError', async () => {
    const serverFactory = keeper(Recorder);
    const port = track(listenSSL(reactor, 0, serverFactory, serverOptions, LOCAL));
    // A Node TLS client over a Duplex, so raw bytes can be slipped in beside it.
    const raw = net.connect(portOf(port), '127.0.0.1');
    raw.on('error', () => {});
    const duplex = new Duplex({
      write(chunk: Buffer, _encoding, callback) {
        raw.write(chunk, callback);
      },
      read() {},
    });
    raw.on('data', (d) => duplex.push(d));
    raw.on('end', () => duplex.push(null));
    const secure = tls.connect({ socket: duplex, ...trust, servername: 'localhost' });
    secure.on('error', () => {});
    await once(secure, 'secureConnect');
    const server = await serverFactory.firstBuilt;
    await server.made;
    // An application-data record whose contents cannot decrypt.
    raw.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), Buffer.alloc(32, 7)]));
    await server.lost;
    assert.ok(errorOf(server) instanceof TLSError);
    assert.match(String((errorOf(server) as TLSError).tlsCode), /^ERR_SSL_/);
    assert.equal(server.lostCount, 1);
    raw.destroy();
    await stop(port);
  });

  test('bad context options are InvalidArgumentError (TLSContextError) at the call', () => {
    const factory = keeper(Recorder);
    assert.throws(() => listenSSL(reactor, 0, factory, {}, LOCAL), TLSContextError);
    assert.throws(
      () => listenSSL(reactor, 0, factory, { key: 'not a key', cert: 'not a cert' }, LOCAL),
      TLSContextError,
    );
    assert.throws(
      () => listenSSL(reactor, 0, factory, serverOptions, { ...LOCAL, handshakeTimeout: -1 }),
      InvalidArgumentError,
    );
    assert.throws(
      () => connectSSL(reactor, '127.0.0.1', 443, factory, { key: 'garbage', cert: 'garbage' }),
      TLSContextError,
    );
    const e = (() => {
      try {
        listenSSL(reactor, 0, factory, {}, LOCAL);
      } catch (error) {
        return error;
      }
      return null;
    })();
    assert.ok(e instanceof InvalidArgumentError);
  });
});

// ---------------------------------------------------------------------- STARTTLS

/**
 * Splits incoming bytes into `\n`-terminated lines until `switched`; bytes
 * received after the switch are kept in `tlsBytes`. A handler in `onLine`
 * (keyed by the line, or by its first letter for lines over 40 bytes) gets
 * the bytes that followed the line in the same read.
 */
class LineSide extends Recorder {
  lines: string[] = [];
  #pending: Buffer[] = [];
  readonly onLine = new Map<string, (rest: Buffer) => void>();
  lineWaiters: { line: string; d: Deferred<void> }[] = [];
  tlsBytes: Buffer[] = [];
  switched = false;
  handshakes = 0;
  readonly handshaken = new Deferred<void>();

  /** `transport.secure` as `handshakeCompleted()` saw it. */
  secureAtHandshake: boolean | null = null;

  handshakeCompleted(): void {
    this.secureAtHandshake = secureOf(this);
    this.handshakes++;
    this.handshaken.callback(undefined);
  }

  override dataReceived(data: Buffer): void {
    super.dataReceived(data);
    if (this.switched) {
      this.tlsBytes.push(data);
      return;
    }
    let rest = data;
    while (!this.switched) {
      const nl = rest.indexOf(10);
      if (nl === -1) {
        if (rest.length > 0) this.#pending.push(rest);
        return;
      }
      this.#pending.push(rest.subarray(0, nl));
      const line = Buffer.concat(this.#pending).toString('latin1');
      this.#pending = [];
      rest = rest.subarray(nl + 1);
      const long = line.length > 40;
      this.lines.push(long ? `${line.slice(0, 1)}…(${line.length})` : line);
      for (const w of this.lineWaiters) if (w.line === line && !w.d.called) w.d.callback(undefined);
      this.onLine.get(long ? line.slice(0, 1) : line)?.(rest);
    }
  }

  waitLine(line: string): Deferred<void> {
    const d = new Deferred<void>();
    if (this.lines.includes(line)) d.callback(undefined);
    else this.lineWaiters.push({ line, d });
    return d;
  }

  startTLS(options: StartTLSOptions): void {
    this.switched = true;
    this.transport.startTLS(options);
  }

  tlsText(): string {
    return Buffer.concat(this.tlsBytes).toString();
  }
}

/** A plain TCP pair of LineSides. */
async function tcpPair(
  clientReactor: IReactorTime = reactor,
): Promise<{ port: Port; server: LineSide; client: LineSide }> {
  const serverFactory = keeper(LineSide);
  const clientFactory = keeper(LineSide);
  const port = track(listenTCP(reactor, 0, serverFactory, LOCAL));
  connectTCP(clientReactor, '127.0.0.1', portOf(port), clientFactory);
  const client = await clientFactory.firstBuilt;
  const server = await serverFactory.firstBuilt;
  await client.made;
  await server.made;
  return { port, server, client };
}

async function closePair(port: Port, a: Recorder, b: Recorder): Promise<void> {
  if (a.lostCount === 0) a.transport.loseConnection();
  await a.lost;
  await b.lost;
  await stop(port);
}

describe('startTLS', () => {
  test('server-initiated: 4 MiB plaintext written just before the switch, TLS just after, in order', async () => {
    const { port, server, client } = await tcpPair();
    const big = Buffer.alloc(FOUR_MIB, 0x42);
    client.onLine.set('B', () => {
      client.startTLS({ ...trust, servername: 'localhost' });
      client.transport.write('C1\n');
      client.transport.write('C2\n');
    });
    client.transport.write('HELLO\n');
    await server.waitLine('HELLO');
    server.transport.write(big);
    server.transport.write('\n');
    assert.ok(server.transport.bufferedAmount > 0, 'plaintext still buffered at the switch');
    assert.equal(secureOf(server), false, 'plain TCP is not secure');
    server.startTLS({ isServer: true, ...serverOptions });
    assert.equal(secureOf(server), false, 'not secure while the handshake runs');
    server.transport.write('S1\n');
    server.transport.writeSequence(['S2\n', 'S3\n']);
    await client.handshaken;
    await server.handshaken;
    await client.waitForBytes(FOUR_MIB + 1 + 9);
    await server.waitForBytes(6 + 6);
    assert.deepEqual(client.lines, ['B…(4194304)']);
    assert.equal(client.tlsText(), 'S1\nS2\nS3\n');
    assert.equal(server.tlsText(), 'C1\nC2\n');
    assert.equal(client.transport.getPeerCertificate()?.subject.CN, 'localhost');
    assert.equal(server.handshakes, 1);
    assert.equal(server.secureAtHandshake, true, 'secure from handshakeCompleted() on');
    assert.equal(client.secureAtHandshake, true, 'secure from handshakeCompleted() on (client)');
    await closePair(port, client, server);
    assert.ok(client.reason?.check(ConnectionDone));
    assert.ok(server.reason?.check(ConnectionDone));
  });

  test('client-initiated: the command written just before the switch, data just after', async () => {
    const { port, server, client } = await tcpPair();
    server.onLine.set('STARTTLS', (rest) => {
      server.startTLS({ isServer: true, ...serverOptions, head: rest });
      server.transport.write('S1\n');
    });
    // Plaintext just before the switch; the ClientHello follows without
    // waiting for an answer (it may arrive in the same read: see `head`).
    client.transport.write('STARTTLS\n');
    client.startTLS({ ...trust, servername: 'localhost' });
    client.transport.write('C1\n');
    await client.waitForBytes(3);
    await server.waitForBytes('STARTTLS\n'.length + 3);
    assert.equal(client.tlsText(), 'S1\n');
    assert.equal(server.tlsText(), 'C1\n');
    await closePair(port, server, client);
  });

  test('head: a ClientHello that arrived in the same read as the command is handed to TLS', async () => {
    const serverFactory = keeper(LineSide);
    const port = track(listenTCP(reactor, 0, serverFactory, LOCAL));
    let headLength = -1;
    // A Node TLS client over a Duplex whose first write (the ClientHello)
    // goes out in one TCP write together with the command.
    const raw = net.connect(portOf(port), '127.0.0.1');
    raw.on('error', () => {});
    let first = true;
    const duplex = new Duplex({
      write(chunk: Buffer, _encoding, callback) {
        if (first) {
          first = false;
          raw.write(Buffer.concat([Buffer.from('STARTTLS\n'), chunk]));
        } else {
          raw.write(chunk);
        }
        callback();
      },
      read() {},
      final(callback) {
        raw.end();
        callback();
      },
    });
    raw.on('data', (d) => duplex.push(d));
    raw.on('end', () => duplex.push(null));
    const server = await serverFactory.firstBuilt;
    server.onLine.set('STARTTLS', (rest) => {
      headLength = rest.length;
      server.startTLS({ isServer: true, ...serverOptions, head: rest });
      server.transport.write('welcome');
    });
    const secure = tls.connect({ socket: duplex, ...trust, servername: 'localhost' });
    const got: Buffer[] = [];
    const welcomed = new Deferred<void>();
    secure.on('data', (d: Buffer) => {
      got.push(d);
      if (Buffer.concat(got).toString() === 'welcome') welcomed.callback(undefined);
    });
    secure.write('hi');
    await welcomed;
    await server.waitForBytes('STARTTLS\n'.length + 2);
    assert.ok(headLength > 0, 'the ClientHello came in the same read as the command');
    assert.equal(server.tlsText(), 'hi');
    secure.end();
    await server.lost;
    raw.destroy();
    await stop(port);
  });

  test('a producer registered across the switch is paused during the handshake and finishes over TLS', async () => {
    const { port, server, client } = await tcpPair();
    let producer: BlockProducer | null = null;
    const hash = createHash('sha256');
    let got = 0;
    const all = new Deferred<void>();
    client.onLine.set('READY', () => {
      client.startTLS({ ...trust, servername: 'localhost' });
    });
    client.dataReceived = function (this: LineSide, data: Buffer): void {
      if (!this.switched) {
        LineSide.prototype.dataReceived.call(this, data);
        return;
      }
      got += data.length;
      hash.update(data);
      if (got === FOUR_MIB) all.callback(undefined);
    };
    server.onLine.set('GO', () => {
      server.transport.write('READY\n');
      producer = new BlockProducer(server.transport);
      server.transport.registerProducer(producer, true);
      server.startTLS({ isServer: true, ...serverOptions });
      producer.produce(); // all queued behind the handshake: paused at the mark
    });
    client.transport.write('GO\n');
    await server.waitLine('GO');
    const p = producer as unknown as BlockProducer;
    assert.equal(p.pauses, 1, 'paused while the bytes wait for the handshake');
    assert.ok(p.sent < FOUR_MIB);
    await all;
    await p.finished;
    assert.ok(p.resumes >= 1);
    assert.equal(hash.digest('hex'), p.hash.digest('hex'));
    await closePair(port, client, server);
  });

  test('a read-paused protocol stays paused across the switch, bytes kept', async () => {
    const { port, server, client } = await tcpPair();
    client.onLine.set('X', () => {
      client.transport.pauseProducing();
      client.startTLS({ ...trust, servername: 'localhost' });
    });
    client.transport.write('HI\n');
    await server.waitLine('HI');
    server.transport.write('X\n');
    server.startTLS({ isServer: true, ...serverOptions });
    server.transport.write('secret');
    await server.handshaken;
    await client.handshaken;
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(client.tlsText(), '', 'nothing delivered while paused');
    client.transport.resumeProducing();
    await client.waitForBytes(2 + 6);
    assert.equal(client.tlsText(), 'secret');
    await closePair(port, client, server);
  });

  test('loseConnection during the handshake: queued bytes go first, then a clean close', async () => {
    const { port, server, client } = await tcpPair();
    server.onLine.set('GO', (rest) => {
      server.startTLS({ isServer: true, ...serverOptions, head: rest });
    });
    client.transport.write('GO\n');
    client.startTLS({ ...trust, servername: 'localhost' });
    client.transport.write('last words');
    client.transport.loseConnection();
    assert.throws(() => client.transport.write('more'), TransportClosedError);
    await server.lost;
    await client.lost;
    assert.equal(server.tlsText(), 'last words');
    assert.ok(server.reason?.check(ConnectionDone));
    assert.ok(client.reason?.check(ConnectionDone));
    await stop(port);
  });

  test('an untrusted certificate fails the client with TLSError; both sides lose the connection once', async () => {
    const { port, server, client } = await tcpPair();
    server.onLine.set('GO', (rest) =>
      server.startTLS({ isServer: true, ...serverOptions, head: rest }),
    );
    client.transport.write('GO\n');
    client.startTLS({}); // Node's roots only: the self-signed certificate is refused
    client.transport.write('never sent');
    await client.lost;
    await server.lost;
    assert.ok(client.reason?.value instanceof TLSError);
    assert.equal((errorOf(client) as TLSError).code, 'TORSION_ERR_TLS');
    assert.equal((errorOf(client) as TLSError).tlsCode, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.ok(server.reason?.value instanceof TLSError);
    assert.equal(server.tlsText(), '');
    assert.equal(client.lostCount, 1);
    assert.equal(server.lostCount, 1);
    assert.equal(client.handshakes, 0);
    assert.equal(secureOf(client), false, 'a failed startTLS never made the transport secure');
    await stop(port);
  });

  test('a peer that answers in plaintext fails the handshake with TLSError', async () => {
    const { port, server, client } = await tcpPair();
    server.onLine.set('GO', () => server.transport.write('no TLS here, sorry\n'));
    client.transport.write('GO\n');
    client.startTLS({ ...trust, servername: 'localhost' });
    await client.lost;
    assert.ok(client.reason?.value instanceof TLSError);
    assert.match(String((errorOf(client) as TLSError).tlsCode), /^ERR_SSL_/);
    server.transport.loseConnection();
    await server.lost;
    await stop(port);
  });

  test('the handshake timeout runs on the transport reactor (Clock)', async () => {
    const clock = new Clock();
    const { port, server, client } = await tcpPair(clock);
    // The server never starts TLS: the client waits for a ServerHello.
    client.startTLS({ ...trust, servername: 'localhost', handshakeTimeout: 5 });
    await server.waitForBytes(1); // the ClientHello arrived, as plaintext garbage
    clock.advance(4.9);
    assert.equal(client.lostCount, 0);
    clock.advance(0.2);
    assert.equal(client.lostCount, 1);
    assert.ok(client.reason?.value instanceof TLSError);
    assert.match(client.reason?.value.message ?? '', /timed out after 5 seconds/);
    await server.lost;
    await stop(port);
  });

  test('misuse: twice, after close, bad options (connection left usable)', async () => {
    const { port, server, client } = await tcpPair();
    assert.throws(() => server.transport.startTLS({ isServer: true }), TLSContextError);
    assert.throws(
      () => server.transport.startTLS({ isServer: true, key: 'x', cert: 'y' }),
      TLSContextError,
    );
    assert.throws(
      () => client.transport.startTLS({ ...trust, handshakeTimeout: 0 }),
      InvalidArgumentError,
    );
    // Still plain and usable.
    client.transport.write('still plain\n');
    await server.waitLine('still plain');
    assert.equal(client.transport.getPeerCertificate(), null);

    server.onLine.set('GO', (rest) =>
      server.startTLS({ isServer: true, ...serverOptions, head: rest }),
    );
    client.transport.write('GO\n');
    client.startTLS({ ...trust, servername: 'localhost' });
    assert.throws(() => client.transport.startTLS({}), InvalidArgumentError);
    assert.throws(() => client.transport.detach(), /TLS handshake/);
    await client.handshaken;
    client.transport.loseConnection();
    assert.throws(() => client.transport.startTLS({}), TransportClosedError);
    await client.lost;
    await server.lost;
    await stop(port);
  });

  test('abortConnection during the handshake: ConnectionAborted once, later', async () => {
    const { port, server, client } = await tcpPair();
    client.startTLS({ ...trust, servername: 'localhost' });
    client.transport.abortConnection();
    assert.equal(client.lostCount, 0);
    await client.lost;
    await server.lost;
    assert.ok(client.reason?.check(ConnectionAborted));
    assert.equal(client.lostCount, 1);
    await stop(port);
  });

  test('startTLS on a TLS transport is refused', async () => {
    const { port, server, client } = await tlsPair(Recorder, Recorder);
    assert.throws(() => client.transport.startTLS({}), InvalidArgumentError);
    client.transport.loseConnection();
    await server.lost;
    await stop(port);
  });
});

// ---------------------------------------------------------------------- the example

test('examples/starttls.ts upgrades in the middle of its exchange and exits 0', async () => {
  const example = fileURLToPath(new URL('../examples/starttls.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', example], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  try {
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    assert.match(stdout, /S: 250 hello in plaintext\n/);
    assert.match(stdout, /C: STARTTLS\n/);
    assert.match(stdout, /handshake done, server is CN=localhost/);
    assert.match(stdout, /S: 250 hello over TLS {3}\[tls\]/);
    assert.match(stdout, /S: 221 bye {3}\[tls\]/);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
