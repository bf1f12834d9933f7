/**
 * connectWS, the client: against torsion's WebSocketResource and against a
 * plain `ws` WebSocketServer on node:http; the typed failures (refused,
 * non-101 answers, invalid acceptance, handshake timeout on a Clock,
 * cancellation, a factory refusing), and nothing leaked.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { Clock } from '../src/reactor/clock.js';
import {
  CancelledError,
  ConnectError,
  ConnectionRefusedError,
  ConnectTimeoutError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import {
  connectWS,
  type WebSocketClosed,
  WebSocketFactory,
  WebSocketHandshakeError,
  WebSocketProtocol,
} from '../src/web/websocket.js';
import {
  checkLeaksAfterEach,
  Echo,
  Recorder,
  recordingFactory,
  startSecureServer,
  startServer,
  waitFor,
} from './websocket-helpers.js';

checkLeaksAfterEach();

/** A plain `ws` server on node:http, echoing, with its connections reachable. */
async function plainWsServer(): Promise<{
  port: number;
  wss: WebSocketServer;
  close(): Promise<void>;
}> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { Upgrade: 'websocket' });
    res.end();
  });
  const wss = new WebSocketServer({ server, handleProtocols: (set) => [...set][0] ?? false });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    wss,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A TCP server on 127.0.0.1:0 that answers the first bytes of each
 * connection with `answer` (and never closes), or says nothing (`null`).
 */
async function rawServer(answer: string | null): Promise<{
  url: string;
  accepted(): Promise<net.Socket>;
  close(): Promise<void>;
}> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => {
      if (answer !== null) socket.write(answer);
    });
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    accepted: async () => {
      await waitFor(() => sockets.length > 0, 'a connection');
      return sockets[0]!;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function failureOf(d: PromiseLike<unknown>): Promise<Error> {
  try {
    await d;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected a failure');
}

describe('connectWS against torsion', () => {
  test('fires with the connected protocol; messages both ways; request info', async () => {
    const serverFactory = recordingFactory(Recorder);
    const server = await startServer(serverFactory, { subprotocols: ['chat.v1'] });
    const clientFactory = recordingFactory(Recorder);
    let started = 0;
    let stopped = 0;
    clientFactory.startFactory = () => {
      started++;
    };
    clientFactory.stopFactory = () => {
      stopped++;
    };
    const client = await connectWS(`${server.url('/ws/lobby')}?user=ann`, clientFactory, {
      subprotocols: ['chat.v2', 'chat.v1'],
      headers: { Cookie: 'session=abc' },
      origin: 'https://app.example',
      pingInterval: 0,
    });
    assert.equal(client.connected, true, 'connectionMade has run');
    assert.equal(client.made.called, true, 'made');
    assert.equal(client.factory, clientFactory, 'factory set');
    assert.equal(started, 1, 'factory started');
    assert.equal(client.transport.subprotocol, 'chat.v1', 'the server chose');
    assert.equal(client.request.subprotocol, 'chat.v1', 'request.subprotocol');
    assert.equal(client.request.path, '/ws/lobby', 'path');
    assert.deepEqual(client.request.args.get('user'), ['ann'], 'args');
    assert.equal(client.request.getCookie('session'), 'abc', 'the cookie sent');
    assert.equal(client.request.getHeader('origin'), 'https://app.example', 'origin sent');
    assert.equal(client.request.responseHeaders?.get('upgrade'), 'websocket', '101 headers');
    assert.equal(
      (client.transport.getPeer() as unknown as { port: number }).port,
      server.port,
      'peer',
    );

    const serverSide = await serverFactory.nextProtocol();
    assert.equal(serverSide.request.getCookie('session'), 'abc', 'server saw the cookie');
    assert.equal(serverSide.request.getHeader('origin'), 'https://app.example', 'and the origin');
    client.transport.sendMessage('to server');
    await waitFor(() => serverSide.messages.length === 1, 'server got it');
    assert.equal(serverSide.messages[0]!.data, 'to server', 'text');
    serverSide.transport.sendMessage(Buffer.from([7, 7]));
    await waitFor(() => client.messages.length === 1, 'client got it');
    assert.deepEqual(client.messages[0], { data: Buffer.from([7, 7]), isBinary: true }, 'binary');

    client.transport.close(4100, 'client done');
    const atServer = await serverSide.lost.asPromise();
    assert.equal(atServer.closeCode, 4100, 'server saw the code');
    assert.equal(atServer.reason, 'client done', 'and the reason');
    const atClient = await client.lost.asPromise();
    assert.equal(atClient.closeCode, 4100, 'client: echoed');
    assert.equal(stopped, 1, 'factory stopped after the connection closed');
    await server.close();
  });

  test('a function as the factory; the server closing reaches connectionLost', async () => {
    const serverFactory = recordingFactory(Recorder);
    const server = await startServer(serverFactory);
    const lost: WebSocketClosed[] = [];
    class Client extends WebSocketProtocol {
      override connectionLost(reason: Failure<WebSocketClosed>): void {
        lost.push(reason.value);
      }
    }
    const client = await connectWS(server.url(), () => new Client(), { pingInterval: 0 });
    assert.ok(client instanceof Client, 'the protocol made by the function');
    assert.ok(client.factory instanceof WebSocketFactory, 'wrapped in a factory');
    const serverSide = await serverFactory.nextProtocol();
    serverSide.transport.close(4200, 'server done');
    await waitFor(() => lost.length === 1, 'client connectionLost');
    assert.equal(lost[0]!.closeCode, 4200, 'code');
    assert.equal(lost[0]!.reason, 'server done', 'reason');
    await serverSide.lost.asPromise();
    await server.close();
  });

  test('non-101 answers fail with WebSocketHandshakeError carrying the status', async () => {
    const server = await startServer(WebSocketFactory.forProtocol(Echo), {
      allowedOrigins: ['https://ok.example'],
    });
    const forbidden = await failureOf(
      connectWS(server.url(), () => new Recorder(), { origin: 'https://bad.example' }),
    );
    assert.ok(forbidden instanceof WebSocketHandshakeError, 'typed');
    assert.equal(forbidden.status, 403, '403');
    assert.equal(forbidden.code, 'TORSION_ERR_WEBSOCKET_HANDSHAKE', 'code');
    const missing = await failureOf(connectWS(server.url('/nothing'), () => new Recorder()));
    assert.ok(missing instanceof WebSocketHandshakeError, 'typed');
    assert.equal(missing.status, 404, '404 for a path without a resource');
    // The server chooses no subprotocol among those offered: invalid acceptance.
    const noSub = await failureOf(
      connectWS(server.url(), () => new Recorder(), { subprotocols: ['x'] }),
    );
    assert.ok(noSub instanceof WebSocketHandshakeError, 'typed');
    assert.equal(noSub.status, 101, 'the 101 was invalid');
    await waitFor(() => server.resource.connections.size === 0, 'server side gone');
    await server.close();
  });

  test('a factory that refuses, or throws, fails the Deferred and drops the connection', async () => {
    const server = await startServer(WebSocketFactory.forProtocol(Echo));
    class Refusing extends WebSocketFactory {
      override buildProtocol(): WebSocketProtocol | null {
        return null;
      }
    }
    const refusing = new Refusing();
    const refused = await failureOf(connectWS(server.url(), refusing));
    assert.ok(refused instanceof ConnectError, 'ConnectError');
    assert.equal(refusing.numPorts, 0, 'factory stopped');
    const thrown = await failureOf(
      connectWS(server.url(), () => {
        throw new Error('no protocol today');
      }),
    );
    assert.equal(thrown.message, 'no protocol today', 'the error thrown');
    await waitFor(() => server.resource.connections.size === 0, 'server side gone');
    await server.close();
  });
});

describe('over TLS', () => {
  test('wss: a WebSocketResource on listenSSL, connectWS trusting its certificate', async () => {
    const serverFactory = recordingFactory(Recorder);
    const server = await startSecureServer(serverFactory, ['secure']);
    try {
      const url = `wss://127.0.0.1:${server.port}/secure`;
      const untrusted = await failureOf(connectWS(url, () => new Recorder()));
      assert.ok(untrusted instanceof ConnectError, `untrusted certificate: ${untrusted.name}`);
      const client = await connectWS(url, () => new Recorder(), {
        tls: { ca: server.cert.cert },
        pingInterval: 0,
      });
      assert.equal(client.request.secure, true, 'client: secure');
      const serverSide = await serverFactory.nextProtocol();
      assert.equal(serverSide.request.secure, true, 'server: secure');
      serverSide.onMessage = (data) => serverSide.transport.sendMessage(data);
      client.transport.sendMessage('over tls');
      await waitFor(() => client.messages.length === 1, 'echo');
      assert.equal(client.messages[0]!.data, 'over tls', 'echoed');
      await server.resource.shutdown().asPromise();
      assert.equal((await client.lost.asPromise()).closeCode, 1001, 'going away');
    } finally {
      await server.close();
    }
  });
});

describe('connectWS against a plain ws server', () => {
  test('echo, subprotocol and close codes both ways', async () => {
    const plain = await plainWsServer();
    const client = await connectWS(`ws://127.0.0.1:${plain.port}/any`, () => new Recorder(), {
      subprotocols: ['proto-a'],
      pingInterval: 0,
    });
    assert.equal(client.transport.subprotocol, 'proto-a', 'subprotocol');
    client.transport.sendMessage('hello plain ws');
    client.transport.sendMessage(Buffer.from([1, 2, 3]));
    await waitFor(() => client.messages.length === 2, 'echoes');
    assert.deepEqual(
      client.messages,
      [
        { data: 'hello plain ws', isBinary: false },
        { data: Buffer.from([1, 2, 3]), isBinary: true },
      ],
      'echoed',
    );
    const serverWs = [...plain.wss.clients][0]!;
    const serverClosed = new Promise<number>((resolve) =>
      serverWs.once('close', (code) => resolve(code)),
    );
    client.transport.close(4300, 'from torsion');
    assert.equal(await serverClosed, 4300, 'ws server saw our code');
    assert.equal((await client.lost.asPromise()).closeCode, 4300, 'echoed back');

    const second = await connectWS(`ws://127.0.0.1:${plain.port}/`, () => new Recorder(), {
      pingInterval: 0,
    });
    await waitFor(() => plain.wss.clients.size === 1, 'one client');
    [...plain.wss.clients][0]!.close(4400, 'from ws');
    const closed = await second.lost.asPromise();
    assert.equal(closed.closeCode, 4400, 'code from ws');
    assert.equal(closed.reason, 'from ws', 'reason from ws');
    await plain.close();
  });

  test('an HTTP server answering the upgrade with 426: the status is in the error', async () => {
    const server = http.createServer();
    server.on('upgrade', (_req, socket) => {
      socket.end('HTTP/1.1 426 Upgrade Required\r\nUpgrade: foo\r\nContent-Length: 0\r\n\r\n');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const failure = await failureOf(connectWS(`ws://127.0.0.1:${port}/`, () => new Recorder()));
    assert.ok(failure instanceof WebSocketHandshakeError, 'typed');
    assert.equal(failure.status, 426, '426');
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('connection failures', () => {
  test('refused: ConnectionRefusedError', async () => {
    const port = await closedPort();
    const factory = WebSocketFactory.forProtocol(Recorder);
    const failure = await failureOf(connectWS(`ws://127.0.0.1:${port}/`, factory));
    assert.ok(failure instanceof ConnectionRefusedError, `refused (${failure.name})`);
    assert.equal(factory.numPorts, 0, 'factory stopped');
  });

  test('a server that never answers: ConnectTimeoutError after handshakeTimeout (Clock)', async () => {
    const silent = await rawServer(null);
    const clock = new Clock();
    const d = connectWS(silent.url, () => new Recorder(), { reactor: clock, handshakeTimeout: 5 });
    const socket = await silent.accepted();
    clock.advance(4.9);
    assert.equal(d.called, false, 'still waiting');
    clock.advance(0.1);
    const failure = await failureOf(d);
    assert.ok(failure instanceof ConnectTimeoutError, 'ConnectTimeoutError');
    await once(socket, 'close');
    assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
    await silent.close();
  });

  test('cancel() during the handshake: CancelledError and the socket closes', async () => {
    const silent = await rawServer(null);
    const factory = WebSocketFactory.forProtocol(Recorder);
    const d = connectWS(silent.url, factory);
    const socket = await silent.accepted();
    d.cancel();
    const failure = await failureOf(d);
    assert.ok(failure instanceof CancelledError, 'CancelledError');
    assert.equal(factory.numPorts, 0, 'factory stopped');
    await once(socket, 'close');
    await silent.close();
  });

  test('a server that is not HTTP, or answers 200 and keeps the connection: typed, closed', async () => {
    const answers: [string, string, number | null][] = [
      ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n', null],
      ['200, kept alive', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 200],
      [
        '200, endless chunked body',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n',
        200,
      ],
    ];
    for (const [what, answer, status] of answers) {
      const server = await rawServer(answer);
      const factory = WebSocketFactory.forProtocol(Recorder);
      const failure = await failureOf(connectWS(server.url, factory));
      assert.ok(failure instanceof WebSocketHandshakeError, `${what}: ${failure.name}`);
      assert.equal(failure.status, status, `${what}: status`);
      assert.equal(factory.numPorts, 0, `${what}: factory stopped`);
      // The client dropped the connection (the server never closes it).
      await once(await server.accepted(), 'close');
      await server.close();
    }
  });

  test('bad arguments throw at once', () => {
    const make = (): Recorder => new Recorder();
    const bad: [string, () => unknown][] = [
      ['not a URL', () => connectWS('nonsense', make)],
      ['ftp URL', () => connectWS('ftp://127.0.0.1/', make)],
      ['fragment', () => connectWS('ws://127.0.0.1/#x', make)],
      ['subprotocol', () => connectWS('ws://127.0.0.1/', make, { subprotocols: ['a b'] })],
      ['timeout', () => connectWS('ws://127.0.0.1/', make, { handshakeTimeout: -1 })],
      ['factory', () => connectWS('ws://127.0.0.1/', 42 as unknown as () => Recorder)],
    ];
    for (const [what, call] of bad) {
      assert.throws(call, { code: 'TORSION_ERR_INVALID_ARGUMENT' }, what);
    }
  });
});
