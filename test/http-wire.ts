/**
 * Test support for the HTTP server tests (not a test file): a strict parser
 * of raw HTTP/1.1 responses, raw-socket exchanges, and a channel wired to a
 * StringTransport with a Clock.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import { ConnectionDone } from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import type { IReactorTime } from '../src/reactor/interfaces.js';
import { StringTransportWithDisconnection } from '../src/testing/string-transport.js';
import type { HTTPChannel } from '../src/web/http/channel.js';
import type { IResource } from '../src/web/iweb.js';
import { Site, type SiteOptions } from '../src/web/site.js';

// ---------------------------------------------------------------------- parsing responses

/** One parsed response. */
export interface Response {
  status: number;
  reason: string;
  /** Lower-cased names → values in order. */
  headers: Map<string, string[]>;
  /** The head as sent (status line to the empty line). */
  head: string;
  body: Buffer;
  /** Trailer fields of a chunked body. */
  trailers: Map<string, string[]>;
  /** How the body was framed. */
  framing: 'none' | 'length' | 'chunked' | 'close';
}

/** The first value of `name` in `r`, or undefined. */
export function header(r: Response, name: string): string | undefined {
  return r.headers.get(name.toLowerCase())?.[0];
}

function parseFields(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `bad field line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    assert.match(name, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, `field name ${JSON.stringify(name)}`);
    const value = line.slice(colon + 1).trim();
    const key = name.toLowerCase();
    const list = out.get(key);
    if (list === undefined) out.set(key, [value]);
    else list.push(value);
  }
  return out;
}

/**
 * Parses one response from `buf` at `at`, for a request of `method`
 * (HEAD: no body). `eof`: the connection has closed (a close-delimited
 * body ends there). Returns null if incomplete. 1xx responses are returned
 * as they are (no body).
 */
export function parseResponse(
  buf: Buffer,
  at: number,
  method: string,
  eof: boolean,
): { response: Response; next: number } | null {
  const end = buf.indexOf('\r\n\r\n', at, 'latin1');
  if (end === -1) return null;
  const head = buf.toString('latin1', at, end + 4);
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(lines[0]!);
  assert.ok(m !== null, `bad status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers = parseFields(lines.slice(1).join('\r\n'));
  let pos = end + 4;
  const response: Response = {
    status,
    reason: m[2]!,
    headers,
    head,
    body: Buffer.alloc(0),
    trailers: new Map(),
    framing: 'none',
  };
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) {
    return { response, next: pos };
  }
  const te = headers.get('transfer-encoding');
  const cl = headers.get('content-length');
  assert.ok(!(te && cl), 'both Transfer-Encoding and Content-Length');
  if (te !== undefined) {
    assert.deepEqual(te, ['chunked']);
    response.framing = 'chunked';
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
      if (lineEnd === -1) return null;
      const sizeText = buf.toString('latin1', pos, lineEnd);
      assert.match(sizeText, /^[0-9a-f]+$/, `chunk size ${JSON.stringify(sizeText)}`);
      const size = Number.parseInt(sizeText, 16);
      pos = lineEnd + 2;
      if (size === 0) {
        const tEnd = buf.indexOf('\r\n', pos, 'latin1');
        if (tEnd === -1) return null;
        if (tEnd === pos) {
          pos += 2;
        } else {
          const tAll = buf.indexOf('\r\n\r\n', pos, 'latin1');
          if (tAll === -1) return null;
          response.trailers = parseFields(buf.toString('latin1', pos, tAll));
          pos = tAll + 4;
        }
        break;
      }
      assert.ok(size > 0, 'empty chunk before the last');
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      assert.equal(buf.toString('latin1', pos + size, pos + size + 2), '\r\n', 'chunk CRLF');
      pos += size + 2;
    }
    response.body = Buffer.concat(parts);
    return { response, next: pos };
  }
  if (cl !== undefined) {
    assert.equal(cl.length, 1, 'one Content-Length');
    response.framing = 'length';
    const n = Number(cl[0]);
    if (buf.length < pos + n) return null;
    response.body = buf.subarray(pos, pos + n);
    return { response, next: pos + n };
  }
  response.framing = 'close';
  if (!eof) return null;
  response.body = buf.subarray(pos);
  return { response, next: buf.length };
}

/**
 * Parses every response in `buf` for requests of `methods` (in order);
 * 1xx responses are skipped. Returns them and the unparsed rest's length.
 */
export function parseResponses(
  buf: Buffer,
  methods: readonly string[],
  eof = true,
): { responses: Response[]; informational: Response[]; rest: number } {
  const responses: Response[] = [];
  const informational: Response[] = [];
  let at = 0;
  while (at < buf.length && responses.length < methods.length) {
    const r = parseResponse(buf, at, methods[responses.length]!, eof);
    if (r === null) break;
    at = r.next;
    if (r.response.status < 200) informational.push(r.response);
    else responses.push(r.response);
  }
  return { responses, informational, rest: buf.length - at };
}

// ---------------------------------------------------------------------- raw sockets

/** A raw client connection: what it received, and whether the server closed. */
export class RawClient {
  readonly socket: net.Socket;
  readonly chunks: Buffer[] = [];
  received = 0;
  ended = false;
  closed = false;
  readonly #closed = new Deferred<void>();
  #waiters: { test: () => boolean; d: Deferred<void> }[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.received += d.length;
      this.#check();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.#check();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.ended = true;
      this.#closed.callback(undefined);
      this.#check();
    });
  }

  /** Everything received so far. */
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Resolves once `test()` holds (checked on each event). */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    const d = new Deferred<void>();
    this.#waiters.push({ test, d });
    return d.asPromise();
  }

  /** Resolves once the server has closed the connection (FIN received). */
  untilEnded(): Promise<void> {
    return this.until(() => this.ended);
  }

  /** Resolves once `n` final responses (for `methods`) have been received. */
  async responses(methods: readonly string[]): Promise<Response[]> {
    await this.until(() => {
      const { responses } = parseResponses(this.data(), methods, this.ended);
      return responses.length === methods.length || this.ended;
    });
    return parseResponses(this.data(), methods, this.ended).responses;
  }

  /** Closes the client side and waits for the socket to close. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.socket.destroy();
      await this.#closed.asPromise();
    }
  }

  #check(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      if (w.test()) w.d.callback(undefined);
      else this.#waiters.push(w);
    }
  }
}

/** Sends `bytes` on a new connection, half-closes unless told not to, and collects until the server closes. */
export async function exchange(
  port: number,
  bytes: string | Buffer,
  options: { halfClose?: boolean } = {},
): Promise<{ data: Buffer; client: RawClient }> {
  const client = new RawClient(port);
  client.write(bytes);
  if (options.halfClose) client.socket.end();
  await client.untilEnded();
  await client.close();
  return { data: client.data(), client };
}

// ---------------------------------------------------------------------- in memory

/** A channel of `site` (or of a new Site over `root`) on a StringTransport. */
export interface MemoryConnection {
  site: Site;
  clock: Clock;
  channel: HTTPChannel;
  transport: StringTransportWithDisconnection;
  /** Feeds bytes (latin1 strings) to the channel. */
  feed(bytes: string | Buffer): void;
  /** What the channel wrote (all of it). */
  written(): Buffer;
  /** Whether the channel has closed (or aborted) the connection. */
  closed(): boolean;
  /** Tells the channel the connection is gone (as the transport would). */
  lose(reason?: Error): void;
}

export function memoryConnection(
  root: IResource,
  options: SiteOptions & { secure?: boolean } = {},
  existing?: Site,
): MemoryConnection {
  const clock =
    (existing?.reactor as Clock | undefined) ??
    (options.reactor as Clock | undefined) ??
    new Clock();
  const { secure, ...siteOptions } = options;
  const site = existing ?? new Site(root, { reactor: clock as IReactorTime, ...siteOptions });
  const channel = site.buildProtocol(new IPv4Address('TCP', '127.0.0.1', 40000))!;
  const transport = new StringTransportWithDisconnection({
    peerAddress: new IPv4Address('TCP', '127.0.0.1', 40000),
    hostAddress: new IPv4Address('TCP', '127.0.0.1', 8080),
  });
  transport.protocol = channel;
  // The channel asks its transport whether it is TLS.
  if (secure) Object.assign(transport, { secure: true });
  channel.makeConnection(transport);
  return {
    site,
    clock,
    channel,
    transport,
    feed: (bytes) =>
      channel.dataReceived(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes),
    written: () => transport.value(),
    closed: () => transport.disconnecting,
    lose: (reason = new ConnectionDone()) => {
      if (!transport.disconnecting) {
        transport.disconnecting = true;
        channel.connectionLost(new Failure(reason));
      }
    },
  };
}

// ---------------------------------------------------------------------- strictness cases

/**
 * Bad requests and the status each must get (the chunked ones go to `/echo`,
 * a resource that reads its body, so the error comes before any response).
 */
export const BAD: [string, string, number][] = [
  [
    'CL and TE together',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
    400,
  ],
  [
    'differing Content-Length',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
    400,
  ],
  ['signed Content-Length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n', 400],
  ['hex Content-Length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\n', 400],
  [
    'unknown transfer coding',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    501,
  ],
  [
    'chunked not final',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    400,
  ],
  [
    'bad chunk size',
    'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    400,
  ],
  [
    'chunk size overflow',
    'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n',
    400,
  ],
  [
    'missing CRLF after chunk data',
    'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n',
    400,
  ],
  ['space before colon', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n', 400],
  ['bare CR', 'GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n', 400],
  ['NUL in a field', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n', 400],
  ['control byte in a field', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n', 400],
  ['bad token in a field name', 'GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n', 400],
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['duplicate Host', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 505],
  ['request line too long', `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: h\r\n\r\n`, 414],
  ['header section too large', `GET / HTTP/1.1\r\nHost: h\r\nX: ${'a'.repeat(70000)}\r\n\r\n`, 431],
  ['too many fields', `GET / HTTP/1.1\r\nHost: h\r\n${'X: y\r\n'.repeat(101)}\r\n`, 431],
  ['invalid method character', 'G(T / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['invalid request-target', 'GET nonsense HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['malformed version', 'GET / HTTP/1.10\r\nHost: h\r\n\r\n', 400],
  ['two spaces in the request line', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['too many empty lines first', `${'\r\n'.repeat(20)}GET / HTTP/1.1\r\nHost: h\r\n\r\n`, 400],
  ['field line without a colon', 'GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n', 400],
  ['empty field name', 'GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n', 400],
  ['invalid Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
  ['Transfer-Encoding in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
  [
    'CONNECT with a body',
    'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 5\r\n\r\n',
    400,
  ],
  [
    'control byte in a chunk extension',
    'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n',
    400,
  ],
  [
    'chunk extension too long',
    `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;${'x'.repeat(5000)}\r\nabc\r\n`,
    400,
  ],
  [
    'trailer section too large',
    `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'t'.repeat(17000)}\r\n\r\n`,
    431,
  ],
  [
    'too many trailer fields',
    `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'T: x\r\n'.repeat(101)}\r\n`,
    431,
  ],
];
