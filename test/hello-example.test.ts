/**
 * examples/hello.ts, the contract other tools rely on, over real sockets
 * through a Site: GET/HEAD /, /echo with every body framing (streamed, under
 * flow control), 404 elsewhere. Responses are read byte-exactly by a raw
 * client.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import root from '../examples/hello.js';
import type { IPv4Address } from '../src/reactor/address.js';
import type { IListeningPort, IPushProducer } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { DummyRequest, render } from '../src/testing/dummy-request.js';
import { getChildForRequest } from '../src/web/resource.js';
import { Site } from '../src/web/site.js';

// ---------------------------------------------------------------------- a raw client

/** One parsed response. */
interface RawResponse {
  readonly status: number;
  readonly statusLine: string;
  /** Header names lower-cased; repeated names joined with ', '. */
  readonly headers: Map<string, string>;
  /** The head as received (status line to the empty line). */
  readonly head: string;
  readonly body: Buffer;
  /** `chunked`, `length` or `close`: how the body was framed. */
  readonly framing: 'chunked' | 'length' | 'close' | 'none';
}

/** A connection that parses responses as they arrive. */
class RawClient {
  readonly socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #closed = false;
  #waiter: (() => void) | null = null;
  /** Methods of the requests sent, in order, to know which responses have no body. */
  readonly #methods: string[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (data: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = net.connect(port, host);
    await once(socket, 'connect');
    socket.setNoDelay(true);
    return new RawClient(socket);
  }

  static async connectUNIX(path: string): Promise<RawClient> {
    const socket = net.connect(path);
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  #more(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Sends raw bytes; `method` is the method of the request they start (for HEAD). */
  send(data: string | Buffer, method?: string): void {
    if (method !== undefined) this.#methods.push(method);
    this.socket.write(data);
  }

  /** Sends a whole request: the head from `lines`, then `body`. */
  request(method: string, lines: string[], body?: string | Buffer): void {
    this.send(`${method} ${lines.join('\r\n')}\r\n\r\n`, method);
    if (body !== undefined && body.length > 0) this.socket.write(body);
  }

  /** Reads the next response (the request methods sent decide HEAD handling). */
  async response(): Promise<RawResponse> {
    const method = this.#methods.shift() ?? 'GET';
    const end = await this.#indexOf('\r\n\r\n');
    const head = this.#buffer.subarray(0, end).toString('latin1');
    this.#buffer = this.#buffer.subarray(end + 4);
    const [statusLine, ...fieldLines] = head.split('\r\n');
    const status = Number(statusLine!.split(' ')[1]);
    const headers = new Map<string, string>();
    for (const line of fieldLines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prev = headers.get(name);
      headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
    }
    const base = { status, statusLine: statusLine!, headers, head };
    if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      return { ...base, body: Buffer.alloc(0), framing: 'none' };
    }
    const te = headers.get('transfer-encoding');
    if (te !== undefined && /chunked/i.test(te)) {
      return { ...base, body: await this.#chunked(), framing: 'chunked' };
    }
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      const n = Number(cl);
      while (this.#buffer.length < n) await this.#more();
      const body = this.#buffer.subarray(0, n);
      this.#buffer = this.#buffer.subarray(n);
      return { ...base, body, framing: 'length' };
    }
    while (!this.#closed) await this.#more().catch(() => undefined);
    const body = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return { ...base, body, framing: 'close' };
  }

  /** The index of `pattern` in the buffer, once it has arrived. */
  async #indexOf(pattern: string): Promise<number> {
    for (;;) {
      const i = this.#buffer.indexOf(pattern);
      if (i !== -1) return i;
      await this.#more();
    }
  }

  async #chunked(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      let eol = await this.#indexOf('\r\n');
      const size = Number.parseInt(this.#buffer.subarray(0, eol).toString('latin1'), 16);
      this.#buffer = this.#buffer.subarray(eol + 2);
      if (size === 0) {
        // Trailers, then the empty line.
        for (;;) {
          eol = await this.#indexOf('\r\n');
          const empty = eol === 0;
          this.#buffer = this.#buffer.subarray(eol + 2);
          if (empty) return Buffer.concat(parts);
        }
      }
      while (this.#buffer.length < size + 2) await this.#more();
      parts.push(this.#buffer.subarray(0, size));
      this.#buffer = this.#buffer.subarray(size + 2);
    }
  }

  /** Resolves once the server closed the connection. */
  async waitClosed(): Promise<void> {
    while (!this.#closed) await this.#more().catch(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------- the server

let port: IListeningPort;
let portNumber: number;
const clients: RawClient[] = [];

async function client(): Promise<RawClient> {
  const c = await RawClient.connect(portNumber);
  clients.push(c);
  return c;
}

const HOST = 'Host: localhost';

before(async () => {
  port = reactor.listenTCP(0, new Site(root), { interface: '127.0.0.1' });
  await port.whenListening();
  portNumber = (port.getHost() as IPv4Address).port;
});

after(async () => {
  for (const c of clients) c.close();
  await port.stopListening();
});

/** Whether `socket` drains within `ms` (the timer is cleared either way). */
async function drainedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    once(socket, 'drain').then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(r, ms, false);
    }),
  ]);
  clearTimeout(timer);
  return drained;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('examples/hello.ts: /', () => {
  test('GET / is 200, text/plain, exactly "Hello, world!\\n"', async () => {
    const c = await client();
    c.request('GET', ['/ HTTP/1.1', HOST]);
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.body.toString('latin1'), 'Hello, world!\n');
    assert.equal(r.headers.get('content-length'), '14');
  });

  test('HEAD / has the same headers and no body (the next response follows at once)', async () => {
    const c = await client();
    c.request('HEAD', ['/ HTTP/1.1', HOST]);
    c.request('GET', ['/ HTTP/1.1', HOST]);
    const head = await c.response();
    const get = await c.response();
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/plain');
    assert.equal(head.headers.get('content-length'), '14');
    // Had the HEAD response carried a body, it would have been read as the
    // start of the second response.
    assert.match(get.statusLine, /^HTTP\/1\.1 200 /);
    assert.equal(get.body.toString('latin1'), 'Hello, world!\n');
  });

  test('HTTP/1.0 GET / works and closes', async () => {
    const c = await client();
    c.request('GET', ['/ HTTP/1.0']);
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString('latin1'), 'Hello, world!\n');
    await c.waitClosed();
  });

  test('any other path is 404', async () => {
    const c = await client();
    for (const path of ['/nope', '/echo/x', '/index.html', '//', '/echo/']) {
      c.request('GET', [`${path} HTTP/1.1`, HOST]);
      const r = await c.response();
      assert.equal(r.status, 404, path);
    }
  });
});

describe('examples/hello.ts: /echo', () => {
  test('echoes a Content-Length body exactly, for any method', async () => {
    const c = await client();
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'REPORT']) {
      const body = `body of a ${method}\r\n\x00\xff`;
      c.request(method, [
        '/echo HTTP/1.1',
        HOST,
        `Content-Length: ${Buffer.byteLength(body, 'latin1')}`,
      ]);
      c.socket.write(Buffer.from(body, 'latin1'));
      const r = await c.response();
      assert.equal(r.status, 200, method);
      assert.equal(r.body.toString('latin1'), body, method);
    }
  });

  test('echoes a chunked body, sent in pieces, with a trailer', async () => {
    const c = await client();
    c.request('POST', ['/echo HTTP/1.1', HOST, 'Transfer-Encoding: chunked']);
    c.socket.write('5\r\nhello\r\n');
    c.socket.write('1;ext=1\r\n,\r\n');
    c.socket.write('7\r\n world!\r\n0\r\nX-Trailer: yes\r\n\r\n');
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hello, world!');
    // The connection stays usable.
    c.request('GET', ['/ HTTP/1.1', HOST]);
    assert.equal((await c.response()).status, 200);
  });

  test('empty bodies: Content-Length 0, chunked with only the last chunk, none', async () => {
    const c = await client();
    c.request('POST', ['/echo HTTP/1.1', HOST, 'Content-Length: 0']);
    c.request('PUT', ['/echo HTTP/1.1', HOST, 'Transfer-Encoding: chunked']);
    c.socket.write('0\r\n\r\n');
    c.request('GET', ['/echo HTTP/1.1', HOST]);
    c.request('GET', ['/echo?with=query HTTP/1.1', HOST]);
    for (let i = 0; i < 4; i++) {
      const r = await c.response();
      assert.equal(r.status, 200, `response ${i}`);
      assert.equal(r.body.length, 0, `response ${i}`);
    }
  });

  test('HEAD /echo: 200, no body', async () => {
    const c = await client();
    c.request('HEAD', ['/echo HTTP/1.1', HOST]);
    c.request('GET', ['/ HTTP/1.1', HOST]);
    assert.equal((await c.response()).status, 200);
    assert.equal((await c.response()).body.toString(), 'Hello, world!\n');
  });

  test('streams 16 MiB (Content-Length) and 8 MiB (chunked) back intact', async () => {
    const c = await client();
    const big = randomBytes(16 * 1024 * 1024);
    c.request('POST', ['/echo HTTP/1.1', HOST, `Content-Length: ${big.length}`]);
    const reading = c.response();
    for (let i = 0; i < big.length; i += 256 * 1024) {
      if (!c.socket.write(big.subarray(i, i + 256 * 1024))) await once(c.socket, 'drain');
    }
    const r = await reading;
    assert.equal(r.status, 200);
    assert.equal(r.body.length, big.length);
    assert.equal(sha256(r.body), sha256(big));

    const chunked = big.subarray(0, 8 * 1024 * 1024);
    c.request('PUT', ['/echo HTTP/1.1', HOST, 'Transfer-Encoding: chunked']);
    const reading2 = c.response();
    for (let i = 0; i < chunked.length; i += 100_000) {
      const piece = chunked.subarray(i, i + 100_000);
      c.socket.write(`${piece.length.toString(16)}\r\n`);
      c.socket.write(piece);
      if (!c.socket.write('\r\n')) await once(c.socket, 'drain');
    }
    c.socket.write('0\r\n\r\n');
    const r2 = await reading2;
    assert.equal(r2.status, 200);
    assert.equal(sha256(r2.body), sha256(chunked));
  });

  test('a client that does not read the echo stops its own upload (no buffering)', async () => {
    const total = 256 * 1024 * 1024;
    const socket = net.connect(portNumber, '127.0.0.1');
    await once(socket, 'connect');
    socket.on('error', () => {});
    try {
      socket.pause(); // read nothing
      socket.write(`POST /echo HTTP/1.1\r\n${HOST}\r\nContent-Length: ${total}\r\n\r\n`);
      const piece = Buffer.alloc(1024 * 1024, 0x61);
      let queued = 0;
      // Write until the socket's own buffer stays full: the server stopped
      // reading. Bounded: if the server buffered everything, the loop ends
      // after `total` bytes and the assertion below fails.
      while (queued < total) {
        queued += piece.length;
        if (!socket.write(piece)) {
          if (!(await drainedWithin(socket, 1000))) break;
        }
      }
      const accepted = queued - socket.writableLength;
      assert.ok(
        accepted < 64 * 1024 * 1024,
        `the server kept reading: ${accepted} bytes accepted of ${total}`,
      );
    } finally {
      socket.destroy();
    }
  });
});

describe('examples/hello.ts with DummyRequest', () => {
  test('the echo registers the request body as its producer', async () => {
    const request = new DummyRequest({ uri: '/echo', method: 'POST', bodyOpen: true });
    const rendering = render(getChildForRequest(root, request), request);
    assert.equal(request.producer, request.bodyStream());
    assert.equal(request.streaming, true);
    request.requestBody.push(Buffer.from('a'));
    (request.producer as IPushProducer).pauseProducing();
    request.requestBody.push(Buffer.from('b'));
    assert.equal(request.writtenText(), 'a');
    (request.producer as IPushProducer).resumeProducing();
    request.requestBody.end();
    await rendering;
    assert.equal(request.writtenText(), 'ab');
    assert.equal(request.producer, null);
  });

  test('a Content-Length request gets a Content-Length echo', async () => {
    const request = new DummyRequest({ uri: '/echo', method: 'PUT', body: 'xyz' });
    await render(getChildForRequest(root, request), request);
    assert.equal(request.responseHeaders.get('content-length'), '3');
    assert.equal(request.writtenText(), 'xyz');
  });
});
