/**
 * FetchResource over real sockets with plain fetch handlers: the web
 * Request it builds (URL, method, headers, body), bodies both ways
 * (buffered, streamed, piped back), pull-driven uploads proven by counts,
 * a slow client pausing the response stream (counted pulls), framing
 * (Content-Length vs chunked, head before a slow first chunk), HEAD,
 * Set-Cookie, errors (500, HTTPException, aborted connection), client
 * aborts (stream cancelled, signal aborted), stripPrefix, and nothing
 * leaked (no unhandled rejection, every socket closed).
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import type { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import { ConnectionLost, InvalidArgumentError } from '../src/reactor/errors.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { DummyRequest, render } from '../src/testing/dummy-request.js';
import { HTTPException } from '../src/web/errors.js';
import {
  FetchBodyError,
  type FetchHandler,
  FetchResource,
  type FetchResourceOptions,
  FetchResponseError,
} from '../src/web/fetch.js';
import type { Request as TorsionRequest } from '../src/web/http/request.js';
import type { IRequest, IResource, RenderResult } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import { Site, type SiteOptions } from '../src/web/site.js';
import { sleep, until, watchFailures } from './app-helpers.js';
import { request } from './cli-helpers.js';
import { header, parseResponses, RawClient } from './http-wire.js';

// ---------------------------------------------------------------------- harness

/** Errors logged by the server (captured: nothing goes to the console). */
const logged = watchFailures();

afterEach(() => {
  logged.length = 0;
});

/**
 * Waits (bounded) until `value()` has not changed for `quiet` polls 20 ms
 * apart: the flow of bytes has reached its steady state.
 */
async function settle(value: () => number, quiet = 8): Promise<number> {
  let last = value();
  let same = 0;
  for (let i = 0; i < 500 && same < quiet; i++) {
    await sleep(20);
    const now = value();
    if (now === last) same++;
    else {
      same = 0;
      last = now;
    }
  }
  return last;
}

/** Records the torsion requests it renders (for server-side counts). */
class SpyFetch extends FetchResource {
  readonly requests: TorsionRequest[] = [];

  override render(request: IRequest): RenderResult {
    this.requests.push(request as TorsionRequest);
    return super.render(request);
  }
}

interface Server {
  site: Site;
  port: Port;
  portNumber: number;
  close(): Promise<void>;
}

const servers = new Set<Server>();
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(root: IResource, options: SiteOptions = {}): Promise<Server> {
  const site = new Site(root, options);
  const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
  await port.whenListening();
  const server: Server = {
    site,
    port,
    portNumber: (port.getHost() as IPv4Address).port,
    async close() {
      if (!servers.delete(server)) return;
      await port.stopListening();
      await site.shutdown(0);
    },
  };
  servers.add(server);
  return server;
}

/** Serves `handler` at the root (a FetchResource). */
function serveHandler(
  handler: FetchHandler,
  options: SiteOptions = {},
  fetchOptions: FetchResourceOptions = {},
): Promise<Server> {
  return serve(new FetchResource(handler, fetchOptions), options);
}

/** Sends raw bytes, collects until the server closes. */
async function rawExchange(port: number, bytes: string): Promise<Buffer> {
  const client = new RawClient(port);
  client.write(bytes);
  await client.untilEnded();
  await client.close();
  return client.data();
}

// ---------------------------------------------------------------------- the web Request

describe('FetchResource: the Request the handler gets', () => {
  test('URL from Host and target, method, headers in order, no body for GET', async () => {
    let seen: Request | null = null;
    const server = await serveHandler((req) => {
      seen = req;
      return new Response('ok');
    });
    const r = await request(server.portNumber, 'GET', '/a/b%20c?x=1&y=%C3%A9', undefined, {
      'X-One': 'first',
      Accept: 'text/plain',
      Host: 'example.test:8443',
    });
    assert.equal(r.status, 200);
    const req = seen as unknown as Request;
    assert.equal(req.url, 'http://example.test:8443/a/b%20c?x=1&y=%C3%A9');
    assert.equal(req.method, 'GET');
    assert.equal(req.headers.get('x-one'), 'first');
    assert.equal(req.headers.get('accept'), 'text/plain');
    assert.equal(req.body, null);
    assert.equal(req.signal.aborted, false);
    await server.close();
  });

  test('HTTP/1.0 without Host: the URL names the server address', async () => {
    const urls: string[] = [];
    const server = await serveHandler((req) => {
      urls.push(req.url);
      return new Response('ok');
    });
    const data = await rawExchange(server.portNumber, 'GET /p?q HTTP/1.0\r\n\r\n');
    assert.match(data.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(urls, [`http://127.0.0.1:${server.portNumber}/p?q`]);
    await server.close();
  });

  test('an IPv6 Host, and an absolute-form target (its authority, not Host: RFC 9112 §3.2.2)', async () => {
    const urls: string[] = [];
    const server = await serveHandler((req) => {
      urls.push(req.url);
      return new Response(new URL(req.url).hostname);
    });
    const client = new RawClient(server.portNumber);
    client.write(
      'GET /v6?x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n' +
        'GET http://example.test:81/abs/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n',
    );
    const [v6, absolute] = await client.responses(['GET', 'GET']);
    assert.equal(v6!.body.toString(), '[::1]');
    assert.equal(absolute!.body.toString(), 'example.test');
    assert.deepEqual(urls, ['http://[::1]:8080/v6?x', 'http://example.test:81/abs/p?q=1']);
    await client.close();
    await server.close();
  });

  test('repeated request fields arrive in order; a POST without a body has body null', async () => {
    let cookies: string | null = null;
    let body: unknown = 'unset';
    const server = await serveHandler((req) => {
      cookies = req.headers.get('x-multi');
      body = req.body;
      return new Response(null, { status: 204 });
    });
    const client = new RawClient(server.portNumber);
    client.write(
      'POST / HTTP/1.1\r\nHost: h\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    await client.untilEnded();
    await client.close();
    const [res] = parseResponses(client.data(), ['POST']).responses;
    assert.equal(res!.status, 204);
    assert.equal(cookies, 'a, b');
    assert.equal(body, null);
    await server.close();
  });

  test('TRACE (not carried by fetch) answers 501 without calling the handler', async () => {
    let calls = 0;
    const server = await serveHandler(() => {
      calls++;
      return new Response('no');
    });
    const r = await request(server.portNumber, 'TRACE', '/');
    assert.equal(r.status, 501);
    assert.equal(calls, 0);
    await server.close();
  });

  test('an object with fetch() is called as a method; stripPrefix gives the path below the mount', async () => {
    const app = {
      prefix: 'app',
      urls: [] as string[],
      fetch(req: Request): Response {
        this.urls.push(req.url);
        return new Response(`${this.prefix} ${new URL(req.url).pathname}`);
      },
    };
    const root = new Resource();
    root.putChild('full', new FetchResource(app));
    root.putChild('api', new FetchResource(app, { stripPrefix: true }));
    const server = await serve(root);
    const p = server.portNumber;
    assert.equal((await request(p, 'GET', '/full/x/y')).body.toString(), 'app /full/x/y');
    assert.equal((await request(p, 'GET', '/api/users/7?z=1')).body.toString(), 'app /users/7');
    assert.equal((await request(p, 'GET', '/api')).body.toString(), 'app /');
    assert.equal((await request(p, 'GET', '/api/')).body.toString(), 'app /');
    assert.equal(app.urls[1], `http://127.0.0.1:${p}/users/7?z=1`);
    await server.close();
  });

  test('Expect: 100-continue: the 100 goes out when the handler first pulls the body', async () => {
    const gate = new Deferred<void>();
    const server = await serveHandler(async (req) => {
      if (new URL(req.url).pathname === '/ignore') return new Response('not read');
      await gate;
      return new Response(`got ${(await req.text()).length}`);
    });
    const client = new RawClient(server.portNumber);
    client.write(
      'POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n',
    );
    await sleep(30);
    assert.equal(client.received, 0, 'no 100 before the handler reads');
    gate.callback(undefined);
    await client.until(() => client.data().toString().startsWith('HTTP/1.1 100 Continue\r\n\r\n'));
    client.write('body');
    const [res] = await client.responses(['POST']);
    assert.equal(res!.body.toString(), 'got 4');
    await client.close();
    const other = new RawClient(server.portNumber);
    other.write(
      'POST /ignore HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n',
    );
    const [ignored] = await other.responses(['POST']);
    assert.equal(ignored!.body.toString(), 'not read');
    assert.doesNotMatch(other.data().toString(), /100 Continue/);
    await other.close();
    await server.close();
  });

  test('works on a DummyRequest too (no sockets): status, headers, streamed body', async () => {
    const resource = new FetchResource(async (req) => {
      const text = req.body === null ? '-' : await req.text();
      return new Response(`${req.method} ${req.url} ${text}`, {
        status: 202,
        headers: { 'X-A': '1' },
      });
    });
    const post = new DummyRequest({
      uri: '/a?b=1',
      method: 'POST',
      body: 'hello',
      headers: { Host: 'ex.test' },
    });
    await render(resource, post);
    assert.equal(post.code, 202);
    assert.equal(post.responseHeaders.get('x-a'), '1');
    assert.equal(post.writtenText(), 'POST http://ex.test/a?b=1 hello');
    const streamed = new FetchResource(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new Uint8Array([0x41]));
              setTimeout(() => {
                controller.enqueue(new Uint8Array([0x42]));
                controller.close();
              }, 5);
            },
          }),
        ),
    );
    const get = new DummyRequest(['']);
    await render(streamed, get);
    assert.equal(get.writtenText(), 'AB');
    assert.equal(get.finished, true);
  });

  test('bad handlers and options throw InvalidArgumentError', () => {
    for (const bad of [null, 42, 'x', {}, { fetch: 1 }]) {
      assert.throws(
        () => new FetchResource(bad as unknown as FetchHandler),
        InvalidArgumentError,
        String(bad),
      );
    }
    assert.throws(
      () => new FetchResource(() => new Response(''), { stripPrefix: 'yes' as unknown as boolean }),
      (e: unknown) =>
        e instanceof InvalidArgumentError && e.code === 'TORSION_ERR_INVALID_ARGUMENT',
    );
  });
});

// ---------------------------------------------------------------------- bodies

describe('FetchResource: bodies both ways', () => {
  test('text, JSON and binary bodies are echoed; a one-chunk answer has a Content-Length', async () => {
    const server = await serveHandler(async (req) => {
      const type = req.headers.get('content-type') ?? '';
      if (type.startsWith('application/json')) {
        const value = (await req.json()) as unknown;
        return Response.json({ got: value });
      }
      return new Response(await req.arrayBuffer(), {
        headers: { 'Content-Type': 'application/octet-stream' },
      });
    });
    const p = server.portNumber;
    const text = await request(p, 'POST', '/', 'héllo wörld');
    assert.equal(text.body.toString(), 'héllo wörld');
    assert.equal(text.headers['content-length'], String(Buffer.byteLength('héllo wörld')));
    assert.equal(text.headers['transfer-encoding'], undefined);
    const json = await request(p, 'PUT', '/', JSON.stringify({ a: [1, 2], b: 'x' }), {
      'Content-Type': 'application/json',
    });
    assert.deepEqual(JSON.parse(json.body.toString()), { got: { a: [1, 2], b: 'x' } });
    assert.match(String(json.headers['content-type']), /^application\/json/);
    const bytes = randomBytes(300_000);
    const binary = await request(p, 'POST', '/', bytes);
    assert.equal(Buffer.compare(binary.body, bytes), 0);
    await server.close();
  });

  test('a chunked upload without Content-Length is read to its end', async () => {
    const server = await serveHandler(async (req) => {
      const text = await req.text();
      return new Response(`${text.length}:${text}`);
    });
    const client = new RawClient(server.portNumber);
    client.write(
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n',
    );
    await client.untilEnded();
    await client.close();
    const [res] = parseResponses(client.data(), ['POST']).responses;
    assert.equal(res!.body.toString(), '11:hello world');
    await server.close();
  });

  test('a request body piped back as the response (16 MiB): streamed both ways, intact', async () => {
    const server = await serveHandler(
      (req) => new Response(req.body, { headers: { 'Content-Type': 'application/octet-stream' } }),
    );
    const data = randomBytes(16 * 1024 * 1024);
    const r = await request(server.portNumber, 'POST', '/', data);
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.body.length, data.length);
    assert.equal(
      createHash('sha256').update(r.body).digest('hex'),
      createHash('sha256').update(data).digest('hex'),
    );
    await server.close();
  });

  test('a slow stream: the head goes out before the first chunk; chunks follow as produced', async () => {
    const gate = new Deferred<void>();
    const server = await serveHandler(() => {
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (n === 0) await gate;
          n++;
          controller.enqueue(new TextEncoder().encode(`event ${n}\n`));
          if (n === 3) controller.close();
        },
      });
      return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
    });
    const client = new RawClient(server.portNumber);
    client.write('GET /events HTTP/1.1\r\nHost: h\r\n\r\n');
    await client.until(() => client.data().includes('\r\n\r\n'));
    const head = client.data().toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.match(head, /\r\ncontent-type: text\/event-stream\r\n/i);
    assert.ok(head.endsWith('\r\n\r\n'), 'only the head so far');
    gate.callback(undefined);
    const [res] = await client.responses(['GET']);
    assert.equal(res!.body.toString(), 'event 1\nevent 2\nevent 3\n');
    assert.equal(res!.framing, 'chunked');
    await client.close();
    await server.close();
  });

  test("the Response's Content-Length is used; a body short of it or past it aborts the connection, logged", async () => {
    const server = await serveHandler((req) => {
      const path = new URL(req.url).pathname;
      const enc = new TextEncoder();
      const parts =
        path === '/short' ? ['abc'] : path === '/long' ? ['abc', 'def', 'ghi'] : ['abc', 'def'];
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = parts.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(enc.encode(next));
        },
      });
      return new Response(body, { headers: { 'Content-Length': '6' } });
    });
    const ok = await request(server.portNumber, 'GET', '/ok');
    assert.equal(ok.body.toString(), 'abcdef');
    assert.equal(ok.headers['content-length'], '6');
    assert.equal(ok.headers['transfer-encoding'], undefined);

    const client = new RawClient(server.portNumber);
    client.write('GET /short HTTP/1.1\r\nHost: h\r\n\r\n');
    await client.untilEnded();
    await client.close();
    const text = client.data().toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\n\r\nabc$/);
    await until(() => logged.length > 0, 'the error log');
    assert.ok(logged[0]!.failure?.value instanceof FetchBodyError, 'a FetchBodyError is logged');
    assert.match(logged[0]!.message, /short of its Content-Length 6/);

    const long = new RawClient(server.portNumber);
    long.write('GET /long HTTP/1.1\r\nHost: h\r\n\r\n');
    await long.untilEnded();
    await long.close();
    assert.match(long.data().toString('latin1'), /\r\n\r\nabcdef$/);
    await until(() => logged.length > 1, 'the second error');
    assert.equal(logged[1]!.failure?.value.name, 'ContentLengthMismatch');
    assert.match(logged[1]!.message, /connection aborted/);
    await server.close();
  });

  test('several Set-Cookie lines, a reason phrase, a redirect, and 204/304 without bodies', async () => {
    const server = await serveHandler((req) => {
      const path = new URL(req.url).pathname;
      if (path === '/cookies') {
        const headers = new Headers();
        headers.append('Set-Cookie', 'a=1; Path=/');
        headers.append('Set-Cookie', 'b=2, with comma; HttpOnly');
        headers.append('Set-Cookie', 'c=3');
        headers.append('X-Other', 'x');
        return new Response('cookies', { status: 201, statusText: 'Made Cookies', headers });
      }
      if (path === '/redirect') return Response.redirect('http://example.test/there', 307);
      if (path === '/304') return new Response(null, { status: 304, headers: { ETag: '"v1"' } });
      return new Response(null, { status: 204 });
    });
    const p = server.portNumber;
    const c = await request(p, 'GET', '/cookies');
    assert.equal(c.status, 201);
    assert.equal(c.statusMessage, 'Made Cookies');
    assert.deepEqual(c.headers['set-cookie'], ['a=1; Path=/', 'b=2, with comma; HttpOnly', 'c=3']);
    assert.equal(c.headers['x-other'], 'x');
    const redirect = await request(p, 'GET', '/redirect');
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.location, 'http://example.test/there');
    const client = new RawClient(p);
    client.write('GET /304 HTTP/1.1\r\nHost: h\r\n\r\nGET /204 HTTP/1.1\r\nHost: h\r\n\r\n');
    const [notModified, noContent] = await client.responses(['GET', 'GET']);
    assert.equal(notModified!.status, 304);
    assert.equal(header(notModified!, 'etag'), '"v1"');
    assert.equal(noContent!.status, 204);
    assert.equal(client.data().toString('latin1').split('HTTP/1.1').length, 3, 'two heads only');
    await client.close();
    await server.close();
  });

  test("HEAD: the handler's headers, no body, and its body stream is cancelled", async () => {
    let cancelled = 0;
    let pulls = 0;
    const server = await serveHandler((req) => {
      assert.equal(req.method, 'HEAD');
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulls++;
          controller.enqueue(new Uint8Array(10));
        },
        cancel() {
          cancelled++;
        },
      });
      return new Response(body, { headers: { 'Content-Length': '10', 'X-Kind': 'head' } });
    });
    const client = new RawClient(server.portNumber);
    client.write('HEAD / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n');
    const responses = await client.responses(['HEAD', 'HEAD']);
    for (const res of responses) {
      assert.equal(res.status, 200);
      assert.equal(header(res, 'content-length'), '10');
      assert.equal(header(res, 'x-kind'), 'head');
      assert.equal(res.body.length, 0);
    }
    await until(() => cancelled === 2, 'both bodies cancelled');
    assert.ok(pulls <= 2, `at most the stream's own first pull each (${pulls})`);
    await client.close();
    await server.close();
  });
});

// ---------------------------------------------------------------------- errors

describe('FetchResource: errors', () => {
  test('a handler that throws or rejects: 500 with a short body, logged', async () => {
    const server = await serveHandler((req) => {
      if (req.url.endsWith('/sync')) throw new Error('sync boom');
      return Promise.reject(new Error('async boom'));
    });
    for (const path of ['/sync', '/async']) {
      const r = await request(server.portNumber, 'GET', path);
      assert.equal(r.status, 500, path);
      assert.equal(r.body.toString(), 'Internal Server Error\n');
      assert.doesNotMatch(r.body.toString(), /boom/);
    }
    assert.equal(logged.length, 2);
    assert.match(logged[0]!.message, /sync boom/);
    assert.match(logged[1]!.message, /async boom/);
    await server.close();
  });

  test('displayTracebacks puts the stack in the 500', async () => {
    const server = await serveHandler(
      () => {
        throw new Error('traced boom');
      },
      { displayTracebacks: true },
    );
    const r = await request(server.portNumber, 'GET', '/');
    assert.equal(r.status, 500);
    assert.match(r.body.toString(), /Error: traced boom\n\s+at /);
    await server.close();
  });

  test('an HTTPException answers its status; a non-Response, a used or locked body, Response.error(): FetchResponseError 500s', async () => {
    const server = await serveHandler((req) => {
      if (req.url.endsWith('/teapot')) throw new HTTPException(418, 'short and stout');
      if (req.url.endsWith('/locked')) {
        const res = new Response('x');
        res.body!.getReader();
        return res;
      }
      if (req.url.endsWith('/used')) {
        const res = new Response('x');
        return res.text().then(() => res);
      }
      if (req.url.endsWith('/network-error')) return Response.error();
      if (req.url.endsWith('/undefined')) return undefined as unknown as Response;
      return { not: 'a response' } as unknown as Response;
    });
    const teapot = await request(server.portNumber, 'GET', '/teapot');
    assert.equal(teapot.status, 418);
    assert.match(teapot.body.toString(), /short and stout/);
    assert.equal(logged.length, 0, 'an HTTPException is an answer, not a failure');
    const paths = ['/wrong', '/locked', '/used', '/network-error', '/undefined'];
    for (const path of paths) {
      const r = await request(server.portNumber, 'GET', path);
      assert.equal(r.status, 500, path);
      assert.equal(r.body.toString(), 'Internal Server Error\n', path);
    }
    assert.equal(logged.length, paths.length);
    for (const event of logged) {
      assert.ok(event.failure?.value instanceof FetchResponseError, event.message);
      assert.equal((event.failure.value as FetchResponseError).code, 'TORSION_ERR_FETCH_RESPONSE');
    }
    await server.close();
  });

  test('a body stream that errors after the head: connection aborted, logged; the server goes on', async () => {
    const server = await serveHandler((req) => {
      let n = 0;
      const fails = req.url.endsWith('/fail');
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          n++;
          if (n === 3 && req.url.endsWith('/ok')) {
            controller.close();
            return;
          }
          if (n === 3) {
            if (fails) throw new Error('stream broke');
            controller.enqueue('not bytes' as unknown as Uint8Array);
            return;
          }
          controller.enqueue(new Uint8Array(1000).fill(0x61));
          await new Promise((r) => setImmediate(r));
        },
      });
      return new Response(body);
    });
    for (const path of ['/fail', '/string-chunk']) {
      const client = new RawClient(server.portNumber);
      client.write(`GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`);
      await client.untilEnded();
      await client.close();
      const text = client.data().toString('latin1');
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/, path);
      assert.match(text, /Transfer-Encoding: chunked/i);
      assert.ok(!text.endsWith('0\r\n\r\n'), `${path}: no last chunk (the response is truncated)`);
    }
    assert.equal(logged.length, 2);
    assert.match(logged[0]!.message, /connection aborted/);
    assert.ok(logged[0]!.failure?.value instanceof FetchBodyError);
    assert.match(String((logged[0]!.failure.value as Error).cause), /stream broke/);
    assert.match(logged[1]!.message, /must give Uint8Arrays/);
    // The server still serves.
    const again = await request(server.portNumber, 'GET', '/ok');
    assert.equal(again.status, 200);
    assert.equal(again.body.length, 2000);
    assert.equal(logged.length, 2);
    await server.close();
  });
});

// ---------------------------------------------------------------------- flow control

describe('FetchResource: flow control', () => {
  test('a large upload is pulled: the server reads at most ~64 KiB (+ one socket read) ahead of a handler that does not pull', async (t) => {
    const total = 32 * 1024 * 1024;
    const gate = new Deferred<void>();
    let handlerRead = 0;
    let reads = 0;
    const spy = new SpyFetch(async (req) => {
      const reader = req.body!.getReader();
      // One read, then nothing until the gate opens.
      const first = await reader.read();
      handlerRead += first.value?.length ?? 0;
      reads++;
      await gate;
      const hash = createHash('sha256');
      if (first.value !== undefined) hash.update(first.value);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        reads++;
        handlerRead += value.length;
        hash.update(value);
      }
      return new Response(`${handlerRead} ${hash.digest('hex')}`);
    });
    const server = await serve(spy);
    let bodyReads = 0;
    const client = new RawClient(server.portNumber);
    client.write(`POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: ${total}\r\n\r\n`);
    // The client writes as fast as the socket takes it (bounded memory: one
    // 1 MiB buffer reused), stopping when the kernel pushes back.
    const piece = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    let written = 0;
    const pump = (): void => {
      while (written < total) {
        written += piece.length;
        sent.update(piece);
        if (!client.socket.write(piece)) {
          client.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
    await until(() => spy.requests.length === 1 && reads === 1, 'the first read');
    const request = spy.requests[0]!;
    const body = request.bodyStream();
    const original = body.read.bind(body);
    body.read = (max?: number) => {
      bodyReads++;
      return original(max);
    };
    const received = await settle(() => body.received);
    const ahead = received - handlerRead;
    assert.ok(written < total, `the client is paused (${written} of ${total} bytes taken)`);
    assert.ok(
      ahead <= 64 * 1024 + 128 * 1024,
      `read ${ahead} bytes ahead of the handler (64 KiB buffer + a socket read or two)`,
    );
    assert.ok(body.buffered <= 192 * 1024, `buffered ${body.buffered}`);
    assert.equal(bodyReads, 0, 'no read from the body while the handler does not pull');
    t.diagnostic(
      `stalled: client wrote ${written} B, server received ${received} B, ${ahead} B ahead of the handler, ${body.buffered} B buffered`,
    );
    gate.callback(undefined);
    const [res] = await client.responses(['POST']);
    const [count, digest] = res!.body.toString().split(' ');
    assert.equal(Number(count), total);
    assert.equal(digest, sent.digest('hex'));
    assert.ok(
      bodyReads >= reads - 1,
      `one body read per pull (${bodyReads} reads, ${reads} pulls)`,
    );
    assert.ok(
      bodyReads <= reads + 1,
      `no read beyond the pulls (${bodyReads} reads, ${reads} pulls)`,
    );
    await client.close();
    await server.close();
  });

  test('a client that does not read pauses the pulls from the response stream', async (t) => {
    const chunk = 64 * 1024;
    const chunks = 1024; // 64 MiB in all
    let pulls = 0;
    const server = await serveHandler(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              pulls++;
              if (pulls > chunks) controller.close();
              else controller.enqueue(new Uint8Array(chunk).fill(pulls & 0xff));
            },
          }),
        ),
    );
    // A raw client that counts what it reads (and keeps only the tail).
    const socket = net.connect(server.portNumber, '127.0.0.1');
    socket.on('error', () => {});
    socket.pause();
    let bytes = 0;
    let tail = '';
    const ended = new Deferred<void>();
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      tail = (tail + d.toString('latin1', Math.max(0, d.length - 16))).slice(-16);
      if (tail.endsWith('\r\n0\r\n\r\n') && !ended.called) ended.callback(undefined);
    });
    socket.write('GET /big HTTP/1.1\r\nHost: h\r\n\r\n');
    await until(() => pulls > 0, 'the first pull');
    const stalled = await settle(() => pulls);
    // Paused by the socket: the server's 64 KiB high-water mark, plus what
    // the kernel's socket buffers on both ends hold (a few MiB on loopback).
    assert.ok(stalled < chunks, `paused before the end (${stalled} pulls of ${chunks})`);
    assert.ok(
      stalled * chunk <= 32 * 1024 * 1024,
      `${stalled} pulls while the client reads nothing`,
    );
    assert.equal(bytes, 0, 'the client has read nothing');
    t.diagnostic(
      `stalled after ${stalled} pulls of 64 KiB (of ${chunks}) with the client not reading`,
    );
    socket.resume();
    await ended;
    assert.equal(pulls, chunks + 1, 'every chunk pulled once the client reads, then the end');
    // The head, 1024 chunks with their framing, the last chunk.
    const framing = chunks * (`${chunk.toString(16)}\r\n`.length + 2) + 5;
    assert.ok(bytes > chunk * chunks + framing, `${bytes} bytes received`);
    socket.destroy();
    await server.close();
  });

  test('a client that goes away: the response stream is cancelled and the signal aborted', async () => {
    const cancelled = new Deferred<unknown>();
    const aborted = new Deferred<unknown>();
    let pulls = 0;
    const server = await serveHandler((req) => {
      req.signal.addEventListener('abort', () => aborted.callback(req.signal.reason));
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            pulls++;
            controller.enqueue(new Uint8Array(16 * 1024));
            await new Promise((r) => setImmediate(r));
          },
          cancel(reason) {
            cancelled.callback(reason);
          },
        }),
      );
    });
    const client = new RawClient(server.portNumber);
    client.write('GET /forever HTTP/1.1\r\nHost: h\r\n\r\n');
    await client.until(() => client.received > 100_000);
    await client.close();
    const reason = await cancelled;
    assert.ok(
      reason instanceof ConnectionLost,
      `cancelled with ConnectionLost (${String(reason)})`,
    );
    const signalReason = await aborted;
    assert.ok(signalReason instanceof ConnectionLost, `aborted with ${String(signalReason)}`);
    const after = pulls;
    await sleep(50);
    assert.ok(pulls <= after + 1, 'no more pulls after the cancel');
    await until(() => server.site.channels.size === 0, 'the channel closed');
    assert.equal(logged.length, 0, 'a client going away is not an error');
    await server.close();
  });

  test('a client that goes away while the handler waits: signal aborted, the late body cancelled, nothing logged', async () => {
    const started = new Deferred<void>();
    const cancelled = new Deferred<void>();
    const finished = new Deferred<void>();
    const server = await serveHandler(async (req) => {
      started.callback(undefined);
      await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
      const late = new Response(
        new ReadableStream<Uint8Array>({
          cancel() {
            cancelled.callback(undefined);
          },
        }),
      );
      setImmediate(() => finished.callback(undefined));
      return late;
    });
    const client = new RawClient(server.portNumber);
    client.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    await started;
    // A reset (a FIN alone would do too: the server takes it as the client leaving).
    client.socket.resetAndDestroy();
    await cancelled;
    await finished;

    // A handler that rejects with the abort reason is quiet too.
    const server2 = await serveHandler(async (req) => {
      await new Promise<void>((_, reject) =>
        req.signal.addEventListener('abort', () => reject(req.signal.reason)),
      );
      return new Response('never');
    });
    const client2 = new RawClient(server2.portNumber);
    client2.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    await until(() => server2.site.channels.size === 1, 'connected');
    await sleep(10);
    client2.socket.resetAndDestroy();
    await until(() => server2.site.channels.size === 0, 'the channel closed');
    await sleep(20);
    assert.equal(logged.length, 0, `nothing logged: ${logged.map((e) => e.message).join('; ')}`);
    await server.close();
    await server2.close();
  });

  test('a client that aborts mid-upload: the request body stream errors with ConnectionLost', async () => {
    const failed = new Deferred<unknown>();
    let got = 0;
    const server = await serveHandler(async (req) => {
      try {
        for await (const piece of req.body as unknown as AsyncIterable<Uint8Array>) {
          got += piece.length;
        }
        failed.callback('ended without error');
      } catch (e) {
        failed.callback(e);
      }
      return new Response('done');
    });
    const client = new RawClient(server.portNumber);
    client.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n');
    client.write(Buffer.alloc(1000, 0x62));
    await until(() => got >= 1000, 'the first bytes');
    await client.close();
    const reason = await failed;
    assert.ok(
      reason instanceof ConnectionLost,
      `failed with ConnectionLost, got ${String(reason)}`,
    );
    await until(() => server.site.channels.size === 0, 'the channel closed');
    await server.close();
  });

  test('keep-alive and pipelining: responses in order on one connection, bodies not read are skipped', async () => {
    const server = await serveHandler(async (req) => {
      const path = new URL(req.url).pathname;
      if (path === '/slow') await new Promise((r) => setTimeout(r, 20));
      if (path === '/read') return new Response(`read ${(await req.text()).length}`);
      return new Response(`${req.method} ${path}`);
    });
    const client = new RawClient(server.portNumber);
    client.write(
      'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n' +
        'POST /ignored HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde' +
        'POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz' +
        'GET /last HTTP/1.1\r\nHost: h\r\n\r\n',
    );
    const responses = await client.responses(['GET', 'POST', 'POST', 'GET']);
    assert.deepEqual(
      responses.map((r) => r.body.toString()),
      ['GET /slow', 'POST /ignored', 'read 3', 'GET /last'],
    );
    assert.equal(client.ended, false, 'the connection stays open');
    await client.close();
    await server.close();
  });
});
