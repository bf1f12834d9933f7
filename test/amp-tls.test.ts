/**
 * AMP's StartTLS between two torsion peers over real TCP on 127.0.0.1: the
 * switch on both sides, boxes sent while the answer is pending (held, then
 * sent over TLS), refusals (no responder, no options, no TLS transport),
 * OnlyOneTLS, and a rejected certificate. Interop with Twisted's StartTLS is
 * in amp-interop.test.ts.
 *
 * The certificate is made at test time with openssl (fixtures/tls/make-cert.ts).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AMP,
  AmpBox,
  command,
  Integer,
  OnlyOneTLS,
  StartTLS,
  TLSNotAvailable,
  UnhandledCommand,
  UnknownRemoteError,
} from '../src/protocols/amp.js';
import { ClientCreator, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import type { Failure } from '../src/reactor/failure.js';
import type { ITLSTransport } from '../src/reactor/interfaces.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { TLSError } from '../src/reactor/tls.js';
import { StringTransport } from '../src/testing/string-transport.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';

const Sum = command('Sum', { arguments: { a: Integer, b: Integer }, response: { total: Integer } });

let cert: TestCert;
before(() => {
  cert = makeCert();
});

/** A protocol whose loss is awaitable (fires with the reason's error). */
class Peer extends AMP {
  readonly lost = new Deferred<Error>();
  handshakes = 0;

  constructor(tls: 'options' | 'none' | 'empty' = 'options') {
    super();
    this.responder(Sum, ({ a, b }) => ({ total: a + b }));
    if (tls === 'options')
      this.responder(StartTLS, () => ({ tls: { key: cert.key, cert: cert.cert } }));
    if (tls === 'empty') this.responder(StartTLS, () => ({}));
  }

  handshakeCompleted(): void {
    this.handshakes++;
  }

  override connectionLost(reason: Failure): void {
    super.connectionLost(reason);
    this.lost.callback(reason.value);
  }
}

describe('StartTLS between torsion peers', () => {
  const ports: Port[] = [];
  const peers: Peer[] = [];

  after(async () => {
    for (const p of peers) if (!p.lost.called) p.transport.abortConnection();
    await Promise.all(peers.map((p) => p.lost.asPromise()));
    for (const port of ports) await port.stopListening();
    cert.remove();
  });

  async function pair(
    tls: 'options' | 'none' | 'empty' = 'options',
  ): Promise<{ client: Peer; server: Peer }> {
    let server: Peer | null = null;
    const factory = Factory.forProtocol(Peer, tls);
    const build = factory.buildProtocol.bind(factory);
    factory.buildProtocol = (addr) => {
      server = build(addr) as Peer;
      peers.push(server);
      return server;
    };
    const port = reactor.listenTCP(0, factory, { interface: '127.0.0.1' });
    ports.push(port);
    await port.whenListening();
    const client = await new ClientCreator(reactor, Peer).connectTCP(
      '127.0.0.1',
      (port.getHost() as IPv4Address).port,
    );
    peers.push(client);
    // The server has its protocol once a first call has round-tripped.
    await client.callRemote(Sum, { a: 0, b: 0 });
    return { client, server: server as unknown as Peer };
  }

  test('both sides switch; calls made before the answer are held and go over TLS', async () => {
    const { client, server } = await pair();
    const started = client.callRemote(StartTLS, {
      tls: { ca: cert.cert, servername: 'localhost' },
    });
    assert.equal(client.tlsState, 'pending');
    const held = client.callRemote(Sum, { a: 40, b: 2 });
    assert.deepEqual(await started, {});
    assert.equal(client.tlsState, 'started');
    assert.deepEqual(await held, { total: 42 });
    assert.equal(server.tlsState, 'started');
    assert.equal(client.handshakes, 1);
    assert.equal(server.handshakes, 1);
    const peerCert = (client.transport as unknown as ITLSTransport).getPeerCertificate();
    assert.equal(peerCert?.subject.CN, 'localhost');
    assert.deepEqual(await client.callRemote(Sum, { a: 1, b: 2 }), { total: 3 });
    // And the other way, server to client, over TLS.
    assert.deepEqual(await server.callRemote(Sum, { a: 5, b: 5 }), { total: 10 });
    // Only once per connection.
    await assert.rejects(client.callRemote(StartTLS).asPromise(), OnlyOneTLS);
  });

  test('a peer without a StartTLS responder answers UNHANDLED; held calls go in plaintext', async () => {
    const { client } = await pair('none');
    const started = client.callRemote(StartTLS, { tls: { ca: cert.cert } });
    const held = client.callRemote(Sum, { a: 1, b: 1 });
    await assert.rejects(started.asPromise(), UnhandledCommand);
    assert.equal(client.tlsState, 'none');
    assert.deepEqual(await held, { total: 2 });
  });

  test('a responder without TLS options answers TLS_ERROR; the connection stays plaintext', async () => {
    const { client, server } = await pair('empty');
    const error = await client
      .callRemote(StartTLS, { tls: { ca: cert.cert } })
      .asPromise()
      .then(
        () => assert.fail('expected TLS_ERROR'),
        (e: unknown) => e,
      );
    assert.ok(error instanceof UnknownRemoteError);
    assert.equal(error.errorCode, 'TLS_ERROR');
    assert.equal(server.tlsState, 'none');
    assert.deepEqual(await client.callRemote(Sum, { a: 2, b: 2 }), { total: 4 });
  });

  test('a certificate the client rejects drops the connection with a TLSError', async () => {
    const { client } = await pair();
    // No `ca`: the self-signed certificate is not trusted.
    await client.callRemote(StartTLS, { tls: { servername: 'localhost' } });
    const pending = client.callRemote(Sum, { a: 1, b: 1 });
    await assert.rejects(pending.asPromise(), TLSError);
    assert.ok((await client.lost) instanceof TLSError);
  });
});

describe('StartTLS without a TLS-capable transport', () => {
  test('asking fails with TLSNotAvailable; answering is a TLS_ERROR answer', () => {
    const amp = new AMP().responder(StartTLS, () => ({ tls: {} }));
    const transport = new StringTransport();
    amp.makeConnection(transport);
    let failure: Failure | null = null;
    amp.callRemote(StartTLS).addErrback((f) => {
      failure = f;
    });
    assert.ok((failure as Failure | null)?.value instanceof TLSNotAvailable);
    assert.equal(transport.value().length, 0);
    amp.dataReceived(AmpBox.of({ _command: 'StartTLS', _ask: '1' }).serialize());
    const [box] = AmpBox.parseAll(transport.value());
    assert.equal(box.getString('_error_code'), 'TLS_ERROR');
    assert.equal(box.getString('_error_description'), 'TLS not available');
    assert.equal(transport.disconnecting, false);
  });
});
