/**
 * The opening handshake of WebSocketResource over real sockets, with `ws`'s
 * client and raw `net`/`tls` peers: the refusals (426, 400, 403, 405, 500,
 * 503 elsewhere) as ordinary HTTP responses after which the connection goes
 * on, a handshake with a body, the forms of `Connection`/`Upgrade` that must
 * be accepted, bytes after the request head (same packet, byte by byte,
 * pipelined, over TLS), a resource deep in a tree with a query string, and
 * the access log line of an upgrade (one per request) and the request's
 * notifyFinish after it. Nothing leaks after any test.
 */

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { AlreadyCalledError } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { HTTPException } from '../src/web/errors.js';
import type { Request } from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import {
  WebSocketFactory,
  type WebSocketProtocol,
  type WebSocketRequestInfo,
  WebSocketResource,
} from '../src/web/websocket.js';
import {
  checkLeaksAfterEach,
  clientClosed,
  closeNormally,
  closePayload,
  Echo,
  maskedFrame,
  nextMessage,
  openClient,
  parseFrame,
  RawPeer,
  Recorder,
  recordingFactory,
  recordingServer,
  startSecureServer,
  startServer,
  upgradeRequest,
  waitFor,
} from './websocket-helpers.js';

checkLeaksAfterEach();

describe('refusals', () => {
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
    const { factory, server } = await recordingServer();
    const cases: [string, string, number][] = [
      ['no key', upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': '' }), 400],
      ['short key', upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': 'abc' }), 400],
      [
        'key of 23 characters',
        upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=' }),
        400,
      ],
      [
        'key of 32 bytes',
        upgradeRequest('/ws', '', { 'Sec-WebSocket-Key': Buffer.alloc(32, 1).toString('base64') }),
        400,
      ],
      ['two versions', upgradeRequest('/ws', '', { 'Sec-WebSocket-Version': '13, 8' }), 400],
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
    const { factory, server } = await recordingServer({ subprotocols: ['v2.chat', 'v1.chat'] });
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

  test('a handshake with a body gets 400 and Connection: close (the body is read as HTTP)', async () => {
    const { factory, server } = await recordingServer();
    const cases: [string, string][] = [
      ['Content-Length', `${upgradeRequest('/ws', 'Content-Length: 5\r\n')}hello`],
      [
        'chunked',
        `${upgradeRequest('/ws', 'Transfer-Encoding: chunked\r\n')}5\r\nhello\r\n0\r\n\r\n`,
      ],
    ];
    for (const [what, request] of cases) {
      const peer = new RawPeer(server.port);
      // A frame after the body must never reach a WebSocket.
      peer.socket.write(Buffer.concat([Buffer.from(request), maskedFrame(0x1, 'smuggled')]));
      const r = await peer.response();
      assert.equal(r.status, 400, `${what}: 400`);
      assert.match(r.body, /no body/, `${what}: says why`);
      assert.equal(r.headers.get('connection'), 'close', `${what}: Connection: close`);
      await peer.ended;
      assert.equal(peer.buffer.length, 0, `${what}: nothing after the answer`);
    }
    // Content-Length: 0 is no body.
    const peer = new RawPeer(server.port);
    peer.socket.write(upgradeRequest('/ws', 'Content-Length: 0\r\n'));
    assert.equal((await peer.response()).status, 101, 'Content-Length: 0 upgrades');
    const proto = await factory.nextProtocol();
    peer.destroy();
    await proto.lost.asPromise();
    assert.equal(factory.built.length, 1, 'no protocol for the refused ones');
    await server.close();
  });

  test('an HTTPException from buildProtocol answers its status', async () => {
    class Guarded extends WebSocketFactory {
      override buildProtocol(request: WebSocketRequestInfo): WebSocketProtocol | null {
        if (request.getHeader('authorization') === null) {
          throw new HTTPException(401, 'Unauthorized: log in first');
        }
        return super.buildProtocol(request);
      }
    }
    const factory = new Guarded();
    factory.protocol = Echo;
    const server = await startServer(factory);
    const peer = new RawPeer(server.port);
    peer.socket.write(upgradeRequest('/ws'));
    const r = await peer.response();
    assert.equal(r.status, 401, 'the exception status');
    // Still HTTP: an authorized upgrade on the same connection works.
    peer.socket.write(upgradeRequest('/ws', 'Authorization: Bearer x\r\n'));
    assert.equal((await peer.response()).status, 101, 'then 101');
    peer.destroy();
    await server.close();
  });
});

describe('accepted', () => {
  test('Connection and Upgrade as lists, in any case, are accepted', async () => {
    const { factory, server } = await recordingServer();
    const forms: Record<string, string>[] = [
      { Connection: 'keep-alive, Upgrade' },
      { Connection: 'upgrade' },
      { Upgrade: 'WebSocket' },
      { Upgrade: 'h2c, websocket' },
    ];
    for (const form of forms) {
      const peer = new RawPeer(server.port);
      peer.socket.write(upgradeRequest('/ws', '', form));
      const r = await peer.response();
      assert.equal(r.status, 101, JSON.stringify(form));
      assert.equal(r.headers.get('upgrade'), 'websocket', 'the protocol chosen');
      const proto = await factory.nextProtocol();
      peer.socket.write(maskedFrame(0x1, 'hi'));
      await waitFor(() => proto.messages.length === 1, 'a message');
      peer.destroy();
      await proto.lost.asPromise();
    }
    await server.close();
  });

  test('a request pipelined before the upgrade is answered first; HTTP after it is WebSocket data (1002)', async () => {
    const { factory, server } = await recordingServer();
    const peer = new RawPeer(server.port);
    peer.socket.write(
      `GET /missing HTTP/1.1\r\nHost: x\r\n\r\n${upgradeRequest('/ws')}GET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.equal((await peer.response()).status, 404, 'the first request first');
    assert.equal((await peer.response()).status, 101, 'then the upgrade');
    const proto = await factory.nextProtocol();
    const frame = await peer.frame();
    assert.equal(frame.opcode, 0x8, 'the bytes after the upgrade went to ws');
    assert.equal(frame.payload.readUInt16BE(0), 1002, 'not a frame: protocol error');
    await peer.ended;
    assert.equal((await proto.lost.asPromise()).closeCode, 1002, 'server side');
    await server.close();
  });

  test('frames sent in the same packet as the upgrade request reach ws', async () => {
    const { factory, server } = await recordingServer();
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
    peer.socket.write(maskedFrame(0x8, closePayload(1000)));
    const frame = await peer.frame();
    assert.equal(frame.opcode, 0x8, 'close echoed');
    await peer.ended;
    assert.equal((await proto.lost.asPromise()).closeCode, 1000, 'clean');
    await server.close();
  });

  test('the upgrade request split byte by byte works', async () => {
    const { factory, server } = await recordingServer();
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

  test('deep in a tree with a query string, over TLS, with frames in the same write as the head', async () => {
    const factory = recordingFactory(Recorder);
    const server = await startSecureServer(factory, ['api', 'live']);
    try {
      const socket = tls.connect({
        port: server.port,
        host: '127.0.0.1',
        ca: server.cert.cert,
        servername: 'localhost',
      });
      let received = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        received = Buffer.concat([received, d]);
      });
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      socket.write(
        Buffer.concat([
          Buffer.from(upgradeRequest('/api/live/room/7?nick=al+ice&q=%20b&q=c')),
          maskedFrame(0x1, 'first'),
          maskedFrame(0x2, Buffer.from([1, 2])),
        ]),
      );
      const proto = await factory.nextProtocol();
      await waitFor(() => proto.messages.length === 2, 'both messages');
      assert.deepEqual(
        proto.messages,
        [
          { data: 'first', isBinary: false },
          { data: Buffer.from([1, 2]), isBinary: true },
        ],
        'the bytes after the head reached ws through TLS',
      );
      const info = proto.request;
      assert.equal(info.secure, true, 'secure');
      assert.equal(info.path, '/api/live/room/7', 'path');
      assert.equal(info.uri, '/api/live/room/7?nick=al+ice&q=%20b&q=c', 'uri');
      assert.deepEqual([...info.prepath], ['api', 'live'], 'prepath');
      assert.deepEqual([...info.postpath], ['room', '7'], 'postpath');
      assert.deepEqual(info.args.get('nick'), ['al ice'], 'args');
      assert.deepEqual(info.args.get('q'), [' b', 'c'], 'repeated args, decoded');
      proto.transport.sendMessage('back');
      await waitFor(() => {
        const end = received.indexOf('\r\n\r\n');
        return end !== -1 && parseFrame(received.subarray(end + 4)) !== null;
      }, 'the reply');
      const end = received.indexOf('\r\n\r\n');
      assert.match(received.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /, '101');
      assert.equal(parseFrame(received.subarray(end + 4))!.payload.toString(), 'back', 'reply');
      socket.destroy();
      await proto.lost.asPromise();
    } finally {
      await server.close();
    }
  });

  test('mounted deeper in a tree, next to ordinary resources', async () => {
    const { server } = await recordingServer();
    const api = new Resource();
    const deep = new WebSocketResource(WebSocketFactory.forProtocol(Echo), { pingInterval: 0 });
    api.putChild('live', deep);
    server.root.putChild('api', api);
    const ws = await openClient(server.url('/api/live/feed?x=1'));
    ws.send(Buffer.from('deep'));
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), 'deep', 'echo from the deep resource');
    ws.close();
    await clientClosed(ws);
    await deep.shutdown().asPromise();
    await server.close();
  });
});

describe('access log', () => {
  /** An access log in memory: its lines. */
  function memoryLog(): { stream: PassThrough; lines: string[] } {
    const stream = new PassThrough();
    const lines: string[] = [];
    stream.on('data', (chunk: Buffer) =>
      lines.push(...chunk.toString().split('\n').filter(Boolean)),
    );
    return { stream, lines };
  }

  test('an upgrade is logged with status 101, refusals with theirs', async () => {
    const log = memoryLog();
    const factory = recordingFactory(Recorder);
    const server = await startServer(factory, {}, { accessLog: log.stream });
    const ws = await openClient(server.url('/ws?room=1'), undefined, {
      headers: { 'User-Agent': 'audit-agent' },
    });
    const proto = await factory.nextProtocol();
    await waitFor(() => log.lines.length === 1, 'the log line');
    assert.match(
      log.lines[0]!,
      /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/ws\?room=1 HTTP\/1\.1" 101 - "-" "audit-agent"$/,
      'combined log line with 101',
    );
    const peer = new RawPeer(server.port);
    peer.socket.write('GET /ws HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await peer.response()).status, 426, '426');
    await waitFor(() => log.lines.length === 2, 'the second line');
    assert.match(log.lines[1]!, /"GET \/ws HTTP\/1\.1" 426 \d+ /, '426 logged with its bytes');
    peer.destroy();
    await closeNormally(ws, proto, server);
    assert.equal(log.lines.length, 2, 'one line per request');
  });

  test("an upgrade ends the request: notifyFinish fires (101, and ws's 400), one log line each", async () => {
    const log = memoryLog();
    const factory = recordingFactory(Recorder);
    const server = await startServer(
      factory,
      { perMessageDeflate: true },
      { accessLog: log.stream },
    );
    /** Renders through the WebSocket resource, recording each request and its notifyFinish. */
    class Spy extends Resource {
      override isLeaf = true;
      readonly requests: Request[] = [];
      readonly outcomes: string[] = [];
      override render(request: IRequest): RenderResult {
        const r = request as Request;
        this.requests.push(r);
        r.notifyFinish().addCallbacks(
          () => {
            this.outcomes.push(`finished ${r.code}`);
            return null;
          },
          (f) => {
            this.outcomes.push(`failed ${f.getErrorMessage()}`);
            return null;
          },
        );
        return server.resource.render(request);
      }
    }
    const spy = new Spy();
    server.root.putChild('spy', spy);

    const ws = await openClient(server.url('/spy'));
    const proto = await factory.nextProtocol();
    await waitFor(() => spy.outcomes.length === 1, 'notifyFinish fired after the upgrade');
    assert.deepEqual(spy.outcomes, ['finished 101']);
    const upgraded = spy.requests[0]!;
    assert.equal(upgraded.finished, true);
    assert.equal(upgraded.code, 101);
    assert.equal(upgraded.channel.detached, true);
    assert.throws(() => upgraded.upgraded(101), AlreadyCalledError, 'only once');
    await waitFor(() => log.lines.length === 1, 'the log line');
    assert.match(log.lines[0]!, /"GET \/spy HTTP\/1\.1" 101 - /);

    // ws refuses the extension offer after the detach: 400, finished too.
    const peer = new RawPeer(server.port);
    peer.socket.write(
      upgradeRequest(
        '/spy',
        'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99\r\n',
      ),
    );
    assert.equal((await peer.response()).status, 400, '400');
    await peer.ended;
    await waitFor(() => spy.outcomes.length === 2, 'notifyFinish fired after the refusal');
    assert.deepEqual(spy.outcomes, ['finished 101', 'finished 400']);
    await waitFor(() => log.lines.length === 2, 'the second line');
    assert.match(log.lines[1]!, /"GET \/spy HTTP\/1\.1" 400 /);

    await closeNormally(ws, proto, server);
    assert.equal(log.lines.length, 2, 'exactly one line per request');
  });

  test('an extension offer ws refuses (perMessageDeflate on): 400, logged, socket closed', async () => {
    const log = memoryLog();
    const factory = recordingFactory(Recorder);
    const server = await startServer(
      factory,
      { perMessageDeflate: true },
      { accessLog: log.stream },
    );
    const peer = new RawPeer(server.port);
    peer.socket.write(
      upgradeRequest(
        '/ws',
        'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99\r\n',
      ),
    );
    const r = await peer.response();
    assert.equal(r.status, 400, '400');
    assert.equal(r.headers.get('connection'), 'close', 'closes');
    assert.match(r.body, /Sec-WebSocket-Extensions/, 'says what');
    await peer.ended;
    await waitFor(() => log.lines.length === 1, 'the log line');
    assert.match(log.lines[0]!, /"GET \/ws HTTP\/1\.1" 400 /, 'logged as 400');
    // A good offer is still accepted.
    const ws = await openClient(server.url(), undefined, { perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/, 'negotiated');
    assert.equal(server.resource.connections.size, 1, 'only the good one is open');
    // The refused one was built (before ws saw the offer) and never connected.
    assert.equal(factory.built.length, 2, 'two protocols built');
    assert.equal(factory.built[0]!.connected, false, 'the refused one never connected');
    const proto = factory.built[1]!;
    await closeNormally(ws, proto, server);
  });
});
