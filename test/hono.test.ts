/**
 * An unmodified Hono app (examples/hono.ts) served by FetchResource over
 * real sockets: routes, params, query lists, JSON body (and a malformed
 * one), a streamed upload, streaming responses (`stream`, `streamSSE`),
 * cookies, HEAD, 404, a thrown error → 500; and, with apps made here,
 * `stream` paced by a client that does not read, and `onAbort` when the
 * client goes away.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Hono } from 'hono';
import { stream, streamSSE } from 'hono/streaming';
import app from '../examples/hono.js';
import { Deferred } from '../src/reactor/deferred.js';
import { type FetchApplication, FetchResource } from '../src/web/fetch.js';
import { type Served, serve, sleep, until, watchFailures } from './app-helpers.js';
import { type Reply, request } from './cli-helpers.js';
import { parseResponses, RawClient } from './http-wire.js';

const logged = watchFailures();
after(() => {
  assert.deepEqual(
    logged.map((e) => e.message),
    [],
    'torsion logged no error (Hono answers its own)',
  );
});

/** Serves a fetch app (a Hono app) at the root. */
function serveFetch(fetchApp: FetchApplication): Promise<Served> {
  return serve(new FetchResource(fetchApp));
}

const json = (r: Reply): unknown => JSON.parse(r.body.toString());

describe('Hono (examples/hono.ts) on torsion', () => {
  let server: Served;
  before(async () => {
    server = await serveFetch(app);
  });
  after(async () => {
    await server.close();
  });

  test('GET / is routed', async () => {
    const r = await request(server.portNumber, 'GET', '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello from Hono on torsion!');
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    assert.equal(r.headers['content-length'], '27');
  });

  test('path params and repeated query parameters', async () => {
    const user = await request(server.portNumber, 'GET', '/users/42?tag=a&tag=b%20c');
    assert.equal(user.status, 200);
    assert.deepEqual(json(user), { id: '42', tags: ['a', 'b c'] });
    const comment = await request(server.portNumber, 'GET', '/posts/7/comments/99');
    assert.deepEqual(json(comment), { post: '7', comment: '99' });
    const encoded = await request(server.portNumber, 'GET', '/users/%C3%A9t%C3%A9');
    assert.deepEqual(json(encoded), { id: 'été', tags: [] });
  });

  test('a JSON body is parsed and echoed (201); malformed JSON is a 400', async () => {
    const payload = { name: 'torsion', list: [1, 2, 3], nested: { ok: true }, text: 'ünïcödé' };
    const r = await request(server.portNumber, 'POST', '/echo', JSON.stringify(payload), {
      'Content-Type': 'application/json',
    });
    assert.equal(r.status, 201);
    assert.deepEqual(json(r), { received: payload });
    const bad = await request(server.portNumber, 'POST', '/echo', '{not json', {
      'Content-Type': 'application/json',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.toString(), 'the body is not valid JSON');
  });

  test('a chunked JSON body (no Content-Length) is read too', async () => {
    const client = new RawClient(server.portNumber);
    const body = '{"chunked":true}';
    client.write(
      'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        `${(8).toString(16)}\r\n${body.slice(0, 8)}\r\n${(body.length - 8).toString(16)}\r\n${body.slice(8)}\r\n0\r\n\r\n`,
    );
    await client.untilEnded();
    await client.close();
    const [res] = parseResponses(client.data(), ['POST']).responses;
    assert.equal(res!.status, 201);
    assert.deepEqual(JSON.parse(res!.body.toString()), { received: { chunked: true } });
  });

  test('a 4 MiB upload read as a stream: byte count and SHA-256', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const r = await request(server.portNumber, 'POST', '/upload', data);
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), {
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
  });

  test('a streaming response (hono/streaming stream): chunked, every line', async () => {
    const client = new RawClient(server.portNumber);
    client.write('GET /stream HTTP/1.1\r\nHost: h\r\n\r\n');
    const [res] = await client.responses(['GET']);
    assert.equal(res!.status, 200);
    assert.equal(res!.framing, 'chunked');
    assert.equal(res!.body.toString(), 'line 1\nline 2\nline 3\nline 4\nline 5\n');
    await client.close();
  });

  test('server-sent events (streamSSE): headers, then each event', async () => {
    const client = new RawClient(server.portNumber);
    client.write('GET /sse?count=4 HTTP/1.1\r\nHost: h\r\n\r\n');
    const [res] = await client.responses(['GET']);
    assert.equal(res!.status, 200);
    assert.equal(res!.headers.get('content-type')?.[0], 'text/event-stream');
    assert.equal(res!.headers.get('cache-control')?.[0], 'no-cache');
    assert.equal(res!.framing, 'chunked');
    const events = res!.body
      .toString()
      .split('\n\n')
      .filter((e) => e !== '');
    assert.deepEqual(
      events,
      [1, 2, 3, 4].map((n) => `event: tick\ndata: {"n":${n}}\nid: ${n}`),
    );
    await client.close();
  });

  test('two cookies are two Set-Cookie lines', async () => {
    const r = await request(server.portNumber, 'GET', '/cookies');
    assert.deepEqual(r.headers['set-cookie'], [
      'flavour=oatmeal; Path=/',
      'session=abc123; Path=/; HttpOnly; SameSite=Lax',
    ]);
  });

  test('HEAD runs the GET route and sends no body', async () => {
    const client = new RawClient(server.portNumber);
    client.write('HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n');
    const [head, get] = await client.responses(['HEAD', 'GET']);
    assert.equal(head!.status, 200);
    assert.equal(head!.body.length, 0);
    assert.equal(get!.body.toString(), 'Hello from Hono on torsion!');
    await client.close();
  });

  test('an unknown path is a 404; a wrong method too', async () => {
    const r = await request(server.portNumber, 'GET', '/no/such/route');
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), '404 Not Found');
    const wrongMethod = await request(server.portNumber, 'DELETE', '/');
    assert.equal(wrongMethod.status, 404);
  });

  test('a route that throws: 500 from Hono, and the server goes on', async () => {
    // Hono's default error handler prints the error itself.
    const printed: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => {
      printed.push(args[0]);
    };
    let r: Reply;
    try {
      r = await request(server.portNumber, 'GET', '/error');
    } finally {
      console.error = consoleError;
    }
    assert.equal(r.status, 500);
    assert.equal(r.body.toString(), 'Internal Server Error');
    assert.match(String(printed[0]), /this route throws/);
    assert.equal((await request(server.portNumber, 'GET', '/')).status, 200);
  });

  test('concurrent requests on several connections', async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(server.portNumber, 'GET', `/users/${i}`)),
    );
    assert.deepEqual(
      replies.map((r) => (json(r) as { id: string }).id),
      Array.from({ length: 20 }, (_, i) => String(i)),
    );
  });
});

describe('Hono streaming and torsion flow control', () => {
  test("stream(): writes are paced by a client that does not read (the app's awaits block)", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x78);
    const total = 512; // 32 MiB
    let written = 0;
    const done = new Deferred<void>();
    const paced = new Hono().get('/big', (c) =>
      stream(c, async (s) => {
        for (let i = 0; i < total && !s.aborted; i++) {
          await s.write(chunk);
          written++;
        }
        done.callback(undefined);
      }),
    );
    const server = await serveFetch(paced);
    const socket = net.connect(server.portNumber, '127.0.0.1');
    socket.on('error', () => {});
    socket.pause();
    socket.write('GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    await until(() => written > 0, 'the first write');
    let last = -1;
    for (let same = 0, i = 0; same < 8 && i < 500; i++) {
      await sleep(20);
      if (written === last) same++;
      else {
        same = 0;
        last = written;
      }
    }
    assert.ok(written < total, `the app is blocked in write() (${written} of ${total} written)`);
    let bytes = 0;
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    const closed = new Promise((r) => socket.on('close', r));
    socket.resume();
    await done;
    await closed;
    assert.equal(written, total);
    assert.ok(bytes > total * chunk.length, `${bytes} bytes received`);
    await server.close();
  });

  test('streamSSE: a client that goes away aborts the stream (onAbort runs)', async () => {
    const aborted = new Deferred<void>();
    let sent = 0;
    const ticking = new Hono().get('/ticks', (c) =>
      streamSSE(c, async (s) => {
        s.onAbort(() => {
          if (!aborted.called) aborted.callback(undefined);
        });
        while (!s.aborted) {
          await s.writeSSE({ data: `tick ${++sent}` });
          await s.sleep(2);
        }
      }),
    );
    const server = await serveFetch(ticking);
    const client = new RawClient(server.portNumber);
    client.write('GET /ticks HTTP/1.1\r\nHost: h\r\n\r\n');
    await client.until(() => client.data().toString().includes('tick 3'));
    await client.close();
    await aborted;
    const atAbort = sent;
    await sleep(30);
    assert.ok(sent <= atAbort + 1, 'the loop stopped');
    await until(() => server.site.channels.size === 0, 'the channel closed');
    await server.close();
  });
});
