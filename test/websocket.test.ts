/**
 * WebSocketResource and WebSocketProtocol over real sockets, with `ws`'s own
 * client and raw `net` peers: text and binary messages, fragmentation,
 * close codes both ways, what a closed transport does, ping/pong, oversize
 * messages (1009), frames that break RFC 6455 (1002, 1007, 1009), errors in
 * protocol callbacks (1011), shutdown, compression, and nothing leaked after
 * any test. The opening handshake is in websocket-handshake.test.ts.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ConnectionAborted } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { MemoryReactor } from '../src/testing/memory-reactor.js';
import {
  WebSocketClosed,
  WebSocketFactory,
  type WebSocketRequestInfo,
  WebSocketResource,
} from '../src/web/websocket.js';
import {
  checkLeaksAfterEach,
  clientClosed,
  closeNormally,
  closePayload,
  connectedClient,
  Echo,
  maskedFrame,
  nextMessage,
  openClient,
  RawPeer,
  Recorder,
  rawUpgrade,
  recordingFactory,
  recordingServer,
  startServer,
  upgradeRequest,
  waitFor,
} from './websocket-helpers.js';

checkLeaksAfterEach();

describe('messages', () => {
  test('text and binary messages reach the protocol as string and Buffer, and echo back', async () => {
    const { factory, server } = await recordingServer();
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
    const { server, ws, proto } = await connectedClient();
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
    await closeNormally(ws, proto, server);
  });

  test('many pipelined messages are delivered, and answered, in order, each once', async () => {
    const { server, ws, proto } = await connectedClient();
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
    await closeNormally(ws, proto, server);
  });
});

describe('closing', () => {
  test('the client closes with a code and reason: the protocol sees both', async () => {
    const { server, ws, proto } = await connectedClient();
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
    const { server, ws, proto } = await connectedClient();
    const clientSide = clientClosed(ws);
    proto.transport.close(4002, 'bye now');
    assert.equal(proto.transport.disconnecting, true, 'disconnecting at once');
    assert.equal(proto.transport.sendMessage('late'), false, 'sending after close is refused');
    assert.deepEqual(await clientSide, { code: 4002, reason: 'bye now' }, 'client sees them');
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 4002, 'server side: the echoed code');
    // After connectionLost every call is harmless, and says so where it can.
    const errors: LogEvent[] = [];
    const stop = addObserver((e) => {
      if (e.isError) errors.push(e);
    });
    const t = proto.transport;
    assert.equal(t.sendMessage('later'), false, 'sendMessage after connectionLost: false');
    t.write('ignored');
    t.close(1000);
    t.ping('x');
    t.loseConnection();
    t.abortConnection();
    t.pauseProducing();
    t.resumeProducing();
    let stopped = 0;
    t.registerProducer(
      { pauseProducing() {}, resumeProducing() {}, stopProducing: () => void stopped++ },
      true,
    );
    assert.equal(stopped, 1, 'a producer registered on a closed transport is stopped at once');
    await new Promise((r) => setImmediate(r));
    stop();
    assert.deepEqual(errors, [], 'nothing logged: no second connectionLost, no error');
    await server.close();
  });

  test('loseConnection() closes with 1000; invalid close codes and reasons throw', async () => {
    const { server, ws, proto } = await connectedClient();
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
    const { server, ws, proto } = await connectedClient();
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
    const { server, ws, proto } = await connectedClient();
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
  const { server, ws, proto } = await connectedClient({ reactor: memory });
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
    const { server, ws, proto } = await connectedClient();
    proto.transport.ping('are you there');
    await waitFor(() => proto.pongs.length === 1, 'the pong');
    assert.equal(proto.pongs[0]!.toString(), 'are you there', 'pong data');
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping('and you?');
    assert.equal((await pong).toString(), 'and you?', 'server answered the ping');
    await closeNormally(ws, proto, server);
  });

  test('a message over maxPayload closes with 1009 before it is buffered', async () => {
    const { server, ws, proto } = await connectedClient({ maxPayload: 1024 });
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
    const { server, ws, proto } = await connectedClient({ maxPayload: 100 });
    const clientSide = clientClosed(ws);
    ws.send('a'.repeat(60), { fin: false });
    ws.send('b'.repeat(60), { fin: true });
    assert.equal((await clientSide).code, 1009, '1009');
    assert.equal((await proto.lost.asPromise()).closeCode, 1009, 'server side');
    await server.close();
  });

  test('frames that break RFC 6455 from a raw peer: 1002, 1007, 1009, and nothing delivered', async () => {
    const { factory, server } = await recordingServer({ maxPayload: 1024 });
    const unmasked = Buffer.from([0x81, 0x02, 0x68, 0x69]); // "hi", no mask
    const rsv1 = maskedFrame(0x1, 'x');
    rsv1[0]! |= 0x40; // compressed bit, no extension negotiated
    // A 2 GiB binary frame's header, and no payload: refused before any is read.
    const huge = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0, 1, 2, 3, 4]);
    const cases: [string, Buffer, number, string][] = [
      ['an unmasked client frame', unmasked, 1002, 'WS_ERR_EXPECTED_MASK'],
      [
        'close code 1005 on the wire',
        maskedFrame(0x8, closePayload(1005)),
        1002,
        'WS_ERR_INVALID_CLOSE_CODE',
      ],
      ['close code 999', maskedFrame(0x8, closePayload(999)), 1002, 'WS_ERR_INVALID_CLOSE_CODE'],
      ['close code 2000', maskedFrame(0x8, closePayload(2000)), 1002, 'WS_ERR_INVALID_CLOSE_CODE'],
      [
        'a 1-byte close payload',
        maskedFrame(0x8, Buffer.from([3])),
        1002,
        'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
      ],
      ['RSV1 without an extension', rsv1, 1002, 'WS_ERR_UNEXPECTED_RSV_1'],
      ['reserved opcode 3', maskedFrame(0x3, 'x'), 1002, 'WS_ERR_INVALID_OPCODE'],
      ['a fragmented ping', maskedFrame(0x9, 'x', false), 1002, 'WS_ERR_EXPECTED_FIN'],
      [
        'a continuation with nothing to continue',
        maskedFrame(0x0, 'x'),
        1002,
        'WS_ERR_INVALID_OPCODE',
      ],
      [
        'invalid UTF-8 text',
        maskedFrame(0x1, Buffer.from([0xff, 0xfe])),
        1007,
        'WS_ERR_INVALID_UTF8',
      ],
      [
        'UTF-8 cut between fragments',
        Buffer.concat([maskedFrame(0x1, Buffer.from([0xe2, 0x82]), false), maskedFrame(0x0, 'A')]),
        1007,
        'WS_ERR_INVALID_UTF8',
      ],
      [
        'invalid UTF-8 close reason',
        maskedFrame(0x8, closePayload(1000, Buffer.from([0xff]))),
        1007,
        'WS_ERR_INVALID_UTF8',
      ],
      ['a 2 GiB frame header', huge, 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
    ];
    for (const [what, bytes, code, wsCode] of cases) {
      const { peer, proto } = await rawUpgrade(server, factory);
      peer.socket.write(bytes);
      const frame = await peer.frame();
      assert.equal(frame.opcode, 0x8, `${what}: a close frame`);
      assert.equal(frame.payload.readUInt16BE(0), code, `${what}: close code`);
      // The peer never answers: the server ends the connection by itself.
      await peer.ended;
      const closed = await proto.lost.asPromise();
      assert.equal(closed.closeCode, code, `${what}: connectionLost has the code sent`);
      assert.equal(closed.wasClean, false, `${what}: not clean`);
      assert.equal((closed.cause as { code?: string }).code, wsCode, `${what}: the ws error`);
      assert.equal(proto.messages.length, 0, `${what}: nothing delivered`);
    }
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
    const { factory, server } = await recordingServer({ perMessageDeflate: true });
    const ws = await openClient(server.url(), undefined, { perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/, 'negotiated');
    const proto = await factory.nextProtocol();
    proto.onMessage = (data) => proto.transport.sendMessage(data);
    const big = 'abc'.repeat(100_000);
    ws.send(big);
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), big, 'round trip');
    await closeNormally(ws, proto, server);
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
