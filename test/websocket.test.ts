/**
 * WebSocketResource and WebSocketProtocol over real sockets, with `ws`'s own
 * client and raw `net` peers: text and binary messages, fragmentation,
 * close codes both ways, ping/pong, oversize messages (1009), the handshake
 * answers (400, 403, 405, 426, subprotocols, origins), bytes sent in the same
 * packet as the upgrade request, errors in protocol callbacks (1011), and
 * nothing leaked.
 */

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ConnectionAborted } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { MemoryReactor } from '../src/testing/memory-reactor.js';
import { Resource } from '../src/web/resource.js';
import {
  WebSocketClosed,
  WebSocketFactory,
  type WebSocketProtocol,
  type WebSocketRequestInfo,
  WebSocketResource,
} from '../src/web/websocket.js';
import {
  assertNoLeaks,
  clientClosed,
  Echo,
  maskedFrame,
  nextMessage,
  openClient,
  RawPeer,
  Recorder,
  recordingFactory,
  startServer,
  upgradeRequest,
  waitFor,
} from './websocket-helpers.js';

after(async () => {
  await assertNoLeaks('websocket.test');
});

describe('messages', () => {
  test('text and binary messages reach the protocol as string and Buffer, and echo back', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url('/ws/room/1?nick=al+ice&x=1&x=2'));
    const proto = await factory.nextProtocol();
    await proto.made.asPromise();
    assert.equal(proto.request.path, '/ws/room/1', 'request path');
    assert.equal(proto.request.uri, '/ws/room/1?nick=al+ice&x=1&x=2', 'request uri');
    assert.deepEqual(proto.request.args.get('nick'), ['al ice'], 'query args');
    assert.deepEqual(proto.request.args.get('x'), ['1', '2'], 'repeated args');
    assert.deepEqual([...proto.request.postpath], ['room', '1'], 'postpath below the leaf');
    assert.deepEqual([...proto.request.prepath], ['ws'], 'prepath');
    assert.equal(proto.request.getHeader('upgrade'), 'websocket', 'headers kept');
    assert.equal(proto.transport.getPeer().type, 'TCP', 'peer address');
    assert.equal(
      (proto.transport.getHost() as unknown as { port: number }).port,
      server.port,
      'host address is the server port',
    );
    proto.onMessage = (data, isBinary) => proto.transport.sendMessage(data, { binary: isBinary });

    ws.send('héllo wörld');
    const text = await nextMessage(ws);
    assert.equal(text.isBinary, false, 'text echoed as text');
    assert.equal(text.data.toString(), 'héllo wörld', 'text content');

    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    ws.send(bytes);
    const binary = await nextMessage(ws);
    assert.equal(binary.isBinary, true, 'binary echoed as binary');
    assert.deepEqual(binary.data, bytes, 'binary content');

    assert.equal(typeof proto.messages[0]!.data, 'string', 'text → string');
    assert.equal(proto.messages[0]!.isBinary, false, 'text flag');
    assert.ok(Buffer.isBuffer(proto.messages[1]!.data), 'binary → Buffer');
    assert.equal(proto.messages[1]!.isBinary, true, 'binary flag');

    // A string sent as binary, bytes sent as text.
    proto.transport.sendMessage('as bytes', { binary: true });
    const m1 = await nextMessage(ws);
    assert.equal(m1.isBinary, true, 'string sent as binary');
    proto.transport.sendMessage(Buffer.from('as text'), { binary: false });
    const m2 = await nextMessage(ws);
    assert.equal(m2.isBinary, false, 'bytes sent as text');
    assert.equal(m2.data.toString(), 'as text', 'text bytes');

    ws.close();
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1005, 'a close frame without a code');
    assert.equal(closed.wasClean, true, 'clean');
    await server.close();
  });

  test('a fragmented message (ws client fin: false sends) arrives whole', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    ws.send('frag', { fin: false });
    ws.send('men', { fin: false });
    ws.send('ted', { fin: true });
    ws.send(Buffer.from([1, 2]), { fin: false });
    ws.send(Buffer.from([3]), { fin: true });
    await waitFor(() => proto.messages.length === 2, 'two messages');
    assert.deepEqual(proto.messages[0], { data: 'fragmented', isBinary: false }, 'text joined');
    assert.deepEqual(
      proto.messages[1],
      { data: Buffer.from([1, 2, 3]), isBinary: true },
      'binary joined',
    );
    ws.close();
    await proto.lost.asPromise();
    await server.close();
  });

  test('many pipelined messages are delivered, and answered, in order, each once', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    // Replies made while handling a read are gathered into one write: order must hold.
    proto.onMessage = (data) => proto.transport.sendMessage(`re ${data as string}`);
    const echoes: string[] = [];
    ws.on('message', (data: Buffer) => echoes.push(data.toString()));
    for (let i = 0; i < 500; i++) ws.send(`m${i}`);
    await waitFor(() => echoes.length === 500, '500 replies');
    assert.deepEqual(
      proto.messages.map((m) => m.data),
      Array.from({ length: 500 }, (_, i) => `m${i}`),
      'order kept',
    );
    assert.deepEqual(
      echoes,
      Array.from({ length: 500 }, (_, i) => `re m${i}`),
      'replies in order, each once',
    );
    ws.close();
    await proto.lost.asPromise();
    await server.close();
  });
});

describe('closing', () => {
  test('the client closes with a code and reason: the protocol sees both', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    const clientSide = clientClosed(ws);
    ws.close(4001, 'going to lunch');
    const closed = await proto.lost.asPromise();
    assert.ok(closed instanceof WebSocketClosed, 'reason is a WebSocketClosed');
    assert.equal(closed.code, 'TORSION_ERR_WEBSOCKET_CLOSED', 'stable torsion code');
    assert.equal(closed.closeCode, 4001, 'close code');
    assert.equal(closed.reason, 'going to lunch', 'close reason');
    assert.equal(closed.wasClean, true, 'clean');
    assert.equal(closed.cause, undefined, 'no cause for a peer close');
    assert.deepEqual(await clientSide, { code: 4001, reason: 'going to lunch' }, 'echoed');
    assert.equal(server.resource.connections.size, 0, 'forgotten by the resource');
    await server.close();
  });

  test('the server closes with a code and reason: the client sees both', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    const clientSide = clientClosed(ws);
    proto.transport.close(4002, 'bye now');
    assert.equal(proto.transport.disconnecting, true, 'disconnecting at once');
    assert.equal(proto.transport.sendMessage('late'), false, 'sending after close is refused');
    assert.deepEqual(await clientSide, { code: 4002, reason: 'bye now' }, 'client sees them');
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 4002, 'server side: the echoed code');
    proto.transport.close(1000); // idempotent once closed
    await server.close();
  });

  test('loseConnection() closes with 1000; invalid close codes and reasons throw', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5]) {
      assert.throws(
        () => proto.transport.close(code),
        { code: 'TORSION_ERR_INVALID_ARGUMENT' },
        `code ${code}`,
      );
    }
    assert.throws(
      () => proto.transport.close(1000, 'x'.repeat(124)),
      { code: 'TORSION_ERR_INVALID_ARGUMENT' },
      'reason over 123 bytes',
    );
    assert.throws(
      () => proto.transport.ping(Buffer.alloc(126)),
      { code: 'TORSION_ERR_INVALID_ARGUMENT' },
      'ping data over 125 bytes',
    );
    const clientSide = clientClosed(ws);
    proto.transport.loseConnection();
    assert.equal((await clientSide).code, 1000, 'normal closure');
    assert.equal((await proto.lost.asPromise()).closeCode, 1000, 'server side');
    await server.close();
  });

  test('abortConnection() drops the socket: 1006 with ConnectionAborted, delivered later', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    const clientSide = clientClosed(ws);
    proto.transport.abortConnection();
    assert.equal(proto.lost.called, false, 'not inside the call');
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1006, 'abnormal');
    assert.equal(closed.wasClean, false, 'not clean');
    assert.ok(closed.cause instanceof ConnectionAborted, 'cause');
    assert.equal((await clientSide).code, 1006, 'client: abnormal');
    await server.close();
  });

  test('the client vanishing without a close frame gives 1006', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    ws.terminate();
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1006, 'abnormal');
    await server.close();
  });

  test('shutdown() closes every connection with 1001 and refuses new ones with 503', async () => {
    const factory = recordingFactory(Recorder);
    let stopped = 0;
    factory.stopFactory = () => {
      stopped++;
    };
    const server = await startServer(factory);
    const clients = await Promise.all([1, 2, 3].map(() => openClient(server.url())));
    const codes = Promise.all(clients.map(clientClosed));
    await waitFor(() => server.resource.connections.size === 3, 'three connections');
    assert.equal(factory.numPorts, 1, 'factory started once');
    const done = server.resource.shutdown();
    assert.deepEqual(
      (await codes).map((c) => c.code),
      [1001, 1001, 1001],
      'going away',
    );
    await done.asPromise();
    assert.equal(server.resource.connections.size, 0, 'all gone');
    assert.equal(stopped, 1, 'factory stopped');
    const peer = new RawPeer(server.port);
    peer.socket.write(upgradeRequest('/ws'));
    assert.equal((await peer.response()).status, 503, '503 after shutdown');
    peer.destroy();
    await server.close();
  });
});

test('the reactor shutting down closes the connections with 1001 and waits for them', async () => {
  const memory = new MemoryReactor();
  const factory = recordingFactory(Recorder);
  const server = await startServer(factory, { reactor: memory });
  const ws = await openClient(server.url());
  const proto = await factory.nextProtocol();
  const clientSide = clientClosed(ws);
  const done = memory.fireSystemEvent('shutdown');
  assert.equal((await clientSide).code, 1001, 'going away');
  await done.asPromise();
  assert.equal(proto.lost.called, true, 'shutdown waited for connectionLost');
  // The trigger was spent: shutting down again (server.close) is fine.
  await server.close();
});

describe('ping, pong, limits', () => {
  test('pings both ways: the client pong reaches pongReceived, the client ping is answered', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    proto.transport.ping('are you there');
    await waitFor(() => proto.pongs.length === 1, 'the pong');
    assert.equal(proto.pongs[0]!.toString(), 'are you there', 'pong data');
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping('and you?');
    assert.equal((await pong).toString(), 'and you?', 'server answered the ping');
    ws.close();
    await proto.lost.asPromise();
    await server.close();
  });

  test('a message over maxPayload closes with 1009 before it is buffered', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory, { maxPayload: 1024 });
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    ws.send('x'.repeat(1024)); // at the limit: fine
    await waitFor(() => proto.messages.length === 1, 'the message at the limit');
    const clientSide = clientClosed(ws);
    ws.send(Buffer.alloc(1025));
    assert.equal((await clientSide).code, 1009, 'client told 1009');
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1009, 'server: the 1009 it sent');
    assert.equal(closed.wasClean, false, 'ws failed the connection: no close frame awaited');
    assert.equal(
      (closed.cause as { code?: string }).code,
      'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      'cause is ws error',
    );
    assert.equal(proto.messages.length, 1, 'the oversize message was not delivered');
    await server.close();
  });

  test('fragments adding up past maxPayload close with 1009 too', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory, { maxPayload: 100 });
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    const clientSide = clientClosed(ws);
    ws.send('a'.repeat(60), { fin: false });
    ws.send('b'.repeat(60), { fin: true });
    assert.equal((await clientSide).code, 1009, '1009');
    assert.equal((await proto.lost.asPromise()).closeCode, 1009, 'server side');
    await server.close();
  });

  test('invalid UTF-8 in a text message closes with 1007', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const peer = new RawPeer(server.port);
    peer.socket.write(upgradeRequest('/ws'));
    assert.equal((await peer.response()).status, 101, 'upgraded');
    const proto = await factory.nextProtocol();
    peer.socket.write(maskedFrame(0x1, Buffer.from([0xff, 0xfe])));
    const frame = await peer.frame();
    assert.equal(frame.opcode, 0x8, 'close frame');
    assert.equal(frame.payload.readUInt16BE(0), 1007, 'code 1007');
    peer.destroy();
    const closed = await proto.lost.asPromise();
    assert.equal(proto.messages.length, 0, 'nothing delivered');
    assert.ok(closed.cause !== undefined, 'the ws error as cause');
    await server.close();
  });
});

describe('handshake', () => {
  test('a plain GET gets 426 with Upgrade: websocket', async () => {
    const server = await startServer(WebSocketFactory.forProtocol(Echo));
    const peer = new RawPeer(server.port);
    peer.socket.write('GET /ws HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await peer.response();
    assert.equal(r.status, 426, '426');
    assert.equal(r.headers.get('upgrade'), 'websocket', 'Upgrade header');
    // The connection stays an HTTP connection: a second request is answered.
    peer.socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
    assert.equal((await peer.response()).status, 426, 'another protocol asked: 426');
    peer.destroy();
    await server.close();
  });

  test('bad handshakes get 400 (and 405 for a non-GET), and the channel goes on', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const cases: [string, string, number][] = [
      ['no key', upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': '' }), 400],
      ['short key', upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': 'abc' }), 400],
      ['two keys', upgradeRequest('/ws', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), 400],
      ['bad version', upgradeRequest('/ws', '', { 'Sec-WebSocket-Version': '12' }), 400],
      ['no version', upgradeRequest('/ws', '', { 'Sec-WebSocket-Version': '' }), 400],
      ['no Connection: Upgrade', upgradeRequest('/ws', '', { Connection: 'keep-alive' }), 400],
      [
        'bad subprotocol list',
        upgradeRequest('/ws', '', { 'Sec-WebSocket-Protocol': 'a b, c' }),
        400,
      ],
      [
        'POST',
        upgradeRequest('/ws')
          .replace('GET', 'POST')
          .replace('\r\n\r\n', '\r\nContent-Length: 0\r\n\r\n'),
        405,
      ],
    ];
    for (const [what, request, status] of cases) {
      const peer = new RawPeer(server.port);
      peer.socket.write(request);
      const r = await peer.response();
      assert.equal(r.status, status, what);
      if (what === 'bad version') {
        assert.equal(r.headers.get('sec-websocket-version'), '13, 8', 'supported versions listed');
      }
      if (status === 405) assert.equal(r.headers.get('allow'), 'GET', 'Allow: GET');
      // The connection is still HTTP: a good upgrade on it works.
      peer.socket.write(upgradeRequest('/ws'));
      assert.equal((await peer.response()).status, 101, `${what}: upgrade after it`);
      peer.destroy();
    }
    // An HTTP/1.0 request cannot upgrade.
    const old = new RawPeer(server.port);
    old.socket.write(upgradeRequest('/ws').replace('HTTP/1.1', 'HTTP/1.0'));
    assert.equal((await old.response()).status, 400, 'HTTP/1.0: 400');
    old.destroy();
    await waitFor(() => server.resource.connections.size === 0, 'raw peers gone');
    assert.equal(factory.built.length, cases.length, 'a protocol only for the good upgrades');
    await server.close();
  });

  test('Origin: allowed list (case-insensitive), function, missing Origin, version 8 header', async () => {
    const server = await startServer(WebSocketFactory.forProtocol(Echo), {
      allowedOrigins: ['https://Good.example'],
    });
    const denied = openClient(server.url(), undefined, { origin: 'https://evil.example' });
    await assert.rejects(denied, /Unexpected server response: 403/, 'bad origin: 403');
    const ok = await openClient(server.url(), undefined, { origin: 'https://good.example' });
    ok.close();
    const none = await openClient(server.url());
    none.close();
    const v8 = new RawPeer(server.port);
    v8.socket.write(
      upgradeRequest('/ws', 'Sec-WebSocket-Origin: https://evil.example\r\n', {
        'Sec-WebSocket-Version': '8',
      }),
    );
    assert.equal((await v8.response()).status, 403, 'version 8 origin header checked');
    v8.destroy();
    await Promise.all([clientClosed(ok), clientClosed(none)]);
    await server.close();

    const seen: string[] = [];
    const fn = await startServer(WebSocketFactory.forProtocol(Echo), {
      allowedOrigins: (origin) => {
        seen.push(origin);
        return origin.endsWith('.trusted.example');
      },
    });
    await assert.rejects(
      openClient(fn.url(), undefined, { origin: 'https://x.example' }),
      /403/,
      'function says no',
    );
    const yes = await openClient(fn.url(), undefined, { origin: 'https://a.trusted.example' });
    yes.close();
    await clientClosed(yes);
    assert.deepEqual(seen, ['https://x.example', 'https://a.trusted.example'], 'function asked');
    await fn.close();
  });

  test('subprotocols: the server picks its most preferred one the client offered', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory, { subprotocols: ['v2.chat', 'v1.chat'] });
    const a = await openClient(server.url(), ['v1.chat', 'v2.chat']);
    assert.equal(a.protocol, 'v2.chat', 'server preference');
    const pa = await factory.nextProtocol();
    assert.equal(pa.request.subprotocol, 'v2.chat', 'request.subprotocol');
    assert.equal(pa.transport.subprotocol, 'v2.chat', 'transport.subprotocol');
    const b = await openClient(server.url(), ['v1.chat', 'other']);
    assert.equal(b.protocol, 'v1.chat', 'the one in common');
    const pb = await factory.nextProtocol();
    // No subprotocol in common: the server opens without one; ws's client refuses that.
    await assert.rejects(
      openClient(server.url(), ['nope']),
      /Server sent no subprotocol/,
      'no match: no header',
    );
    const c = await openClient(server.url());
    assert.equal(c.protocol, '', 'none offered');
    const pc = await factory.nextProtocol();
    await factory.nextProtocol(); // the one the client refused
    a.close();
    b.close();
    c.close();
    await Promise.all([pa.lost, pb.lost, pc.lost].map((d) => d.asPromise()));
    await waitFor(() => server.resource.connections.size === 0, 'all closed');
    await server.close();
  });

  test('buildProtocol returning null answers 403; throwing answers 500', async () => {
    class Picky extends WebSocketFactory {
      override buildProtocol(request: WebSocketRequestInfo): WebSocketProtocol | null {
        if (request.getCookie('user') === 'boom') throw new Error('factory exploded');
        return request.getCookie('user') === 'alice' ? super.buildProtocol(request) : null;
      }
    }
    const factory = new Picky();
    factory.protocol = Echo;
    const server = await startServer(factory);
    await assert.rejects(
      openClient(server.url(), undefined, { headers: { Cookie: 'user=bob' } }),
      /403/,
      'refused',
    );
    const errors: LogEvent[] = [];
    const stop = addObserver((e) => {
      if (e.isError) errors.push(e);
    });
    try {
      await assert.rejects(
        openClient(server.url(), undefined, { headers: { Cookie: 'user=boom' } }),
        /500/,
        'thrown: 500',
      );
    } finally {
      stop();
    }
    assert.equal(errors.length, 1, 'the error was logged');
    const ok = await openClient(server.url(), undefined, {
      headers: { Cookie: 'theme=dark; user="alice"' },
    });
    ok.send('hi');
    assert.equal((await nextMessage(ok)).data.toString(), 'hi', 'echo works');
    ok.close();
    await clientClosed(ok);
    await server.close();
  });

  test('frames sent in the same packet as the upgrade request reach ws', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const peer = new RawPeer(server.port);
    await peer.connected();
    peer.socket.write(
      Buffer.concat([
        Buffer.from(upgradeRequest('/ws')),
        maskedFrame(0x1, 'first'),
        maskedFrame(0x2, Buffer.from([9, 8, 7])),
        maskedFrame(0x1, 'sec', false),
        maskedFrame(0x0, 'ond'),
      ]),
    );
    const r = await peer.response();
    assert.equal(r.status, 101, '101');
    assert.equal(
      r.headers.get('sec-websocket-accept'),
      's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
      'RFC 6455 sample accept key',
    );
    const proto = await factory.nextProtocol();
    await waitFor(() => proto.messages.length === 3, 'three messages');
    assert.deepEqual(
      proto.messages,
      [
        { data: 'first', isBinary: false },
        { data: Buffer.from([9, 8, 7]), isBinary: true },
        { data: 'second', isBinary: false },
      ],
      'every byte after the head reached ws',
    );
    // Then a close frame from the raw peer: answered with a close frame.
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    peer.socket.write(maskedFrame(0x8, code));
    const frame = await peer.frame();
    assert.equal(frame.opcode, 0x8, 'close echoed');
    await peer.ended;
    assert.equal((await proto.lost.asPromise()).closeCode, 1000, 'clean');
    await server.close();
  });

  test('the upgrade request split byte by byte works', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const peer = new RawPeer(server.port);
    await peer.connected();
    peer.socket.setNoDelay(true);
    const bytes = Buffer.concat([Buffer.from(upgradeRequest('/ws')), maskedFrame(0x1, 'hey')]);
    for (let i = 0; i < bytes.length; i++) {
      peer.socket.write(bytes.subarray(i, i + 1));
      if (i % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal((await peer.response()).status, 101, '101');
    const proto = await factory.nextProtocol();
    await waitFor(() => proto.messages.length === 1, 'the message');
    assert.equal(proto.messages[0]!.data, 'hey', 'content');
    peer.destroy();
    await proto.lost.asPromise();
    await server.close();
  });

  test('mounted deeper in a tree, next to ordinary resources', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory);
    const api = new Resource();
    const deep = new WebSocketResource(WebSocketFactory.forProtocol(Echo), { pingInterval: 0 });
    api.putChild('live', deep);
    server.root.putChild('api', api);
    const ws = await openClient(server.url('/api/live/feed'));
    ws.send(Buffer.from('deep'));
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), 'deep', 'echo from the deep resource');
    ws.close();
    await clientClosed(ws);
    await deep.shutdown().asPromise();
    await server.close();
  });
});

describe('protocol errors', () => {
  test('an exception in messageReceived is logged and closes with 1011', async () => {
    class Broken extends Recorder {
      override messageReceived(): void {
        throw new Error('bug in messageReceived');
      }
    }
    const factory = recordingFactory(Broken);
    const server = await startServer(factory);
    const errors: LogEvent[] = [];
    const stop = addObserver((e) => {
      if (e.isError) errors.push(e);
    });
    try {
      const ws = await openClient(server.url());
      const proto = await factory.nextProtocol();
      const clientSide = clientClosed(ws);
      ws.send('boom');
      assert.equal((await clientSide).code, 1011, 'internal error');
      const closed = await proto.lost.asPromise();
      assert.equal((closed.cause as Error).message, 'bug in messageReceived', 'cause');
    } finally {
      stop();
    }
    assert.equal(errors.length, 1, 'logged once');
    assert.match(errors[0]!.message, /messageReceived/, 'names the callback');
    await server.close();
  });

  test('an exception in connectionMade closes with 1011', async () => {
    class Broken extends Recorder {
      override connectionMade(): void {
        super.connectionMade();
        throw new Error('bug in connectionMade');
      }
    }
    const factory = recordingFactory(Broken);
    const server = await startServer(factory);
    const stop = addObserver(() => {});
    try {
      const ws = await openClient(server.url());
      assert.equal((await clientClosed(ws)).code, 1011, '1011');
      const proto = await factory.nextProtocol();
      await proto.lost.asPromise();
    } finally {
      stop();
    }
    await server.close();
  });

  test('options are checked at construction', () => {
    const factory = WebSocketFactory.forProtocol(Echo);
    const bad: [string, object][] = [
      ['maxPayload', { maxPayload: -1 }],
      ['maxPayload 0', { maxPayload: 0 }],
      ['pingInterval', { pingInterval: Number.NaN }],
      ['pingTimeout', { pingTimeout: 0 }],
      ['highWaterMark', { highWaterMark: '1' }],
      ['subprotocols', { subprotocols: ['a b'] }],
      ['duplicate subprotocols', { subprotocols: ['a', 'a'] }],
      ['allowedOrigins', { allowedOrigins: 'https://x' }],
      ['perMessageDeflate', { perMessageDeflate: 'yes' }],
    ];
    for (const [what, options] of bad) {
      assert.throws(
        () => new WebSocketResource(factory, options),
        { code: 'TORSION_ERR_INVALID_ARGUMENT' },
        what,
      );
    }
    assert.throws(
      () => new WebSocketResource({} as WebSocketFactory),
      { code: 'TORSION_ERR_INVALID_ARGUMENT' },
      'not a factory',
    );
    assert.throws(
      () => new WebSocketFactory().buildProtocol({} as WebSocketRequestInfo),
      { code: 'TORSION_ERR_INVALID_ARGUMENT' },
      'factory without a protocol',
    );
  });
});

describe('compression', () => {
  test('permessage-deflate when enabled: large text compresses and round-trips', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory, { perMessageDeflate: true });
    const ws = await openClient(server.url(), undefined, { perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/, 'negotiated');
    const proto = await factory.nextProtocol();
    proto.onMessage = (data) => proto.transport.sendMessage(data);
    const big = 'abc'.repeat(100_000);
    ws.send(big);
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), big, 'round trip');
    ws.close();
    await proto.lost.asPromise();
    await server.close();
  });
});

test('a WebSocket whose client speaks after the server closed the listening port still works', async () => {
  const server = await startServer(WebSocketFactory.forProtocol(Echo));
  const ws = await openClient(server.url());
  // Closing the resource's site port does not touch upgraded connections.
  ws.send('still here');
  assert.equal((await nextMessage(ws)).data.toString(), 'still here', 'echo');
  const closing = clientClosed(ws);
  await server.close();
  assert.equal((await closing).code, 1001, 'closed by the shutdown');
  assert.equal(ws.readyState, WebSocket.CLOSED, 'closed');
});
