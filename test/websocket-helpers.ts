/**
 * Shared pieces of the WebSocket tests: a site on 127.0.0.1:0 hosting a
 * `WebSocketResource`, a recording protocol, `ws` client helpers, raw
 * frames for `net` peers, and leak checks (sockets, delayed calls).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach } from 'node:test';
import { WebSocket } from 'ws';
import { Deferred } from '../src/reactor/deferred.js';
import type { Failure } from '../src/reactor/failure.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { listenSSL } from '../src/reactor/tls.js';
import { Resource } from '../src/web/resource.js';
import { Site, type SiteOptions } from '../src/web/site.js';
import {
  type WebSocketClosed,
  WebSocketFactory,
  WebSocketProtocol,
  WebSocketResource,
  type WebSocketResourceOptions,
} from '../src/web/websocket.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';

/** Records everything that happens to it; `made`/`lost` resolve on those events. */
export class Recorder extends WebSocketProtocol {
  readonly messages: { data: Buffer | string; isBinary: boolean }[] = [];
  readonly pongs: Buffer[] = [];
  readonly made = new Deferred<void>();
  readonly lost = new Deferred<WebSocketClosed>();
  /** Called for each message (tests set it to react). */
  onMessage: ((data: Buffer | string, isBinary: boolean) => void) | null = null;

  override connectionMade(): void {
    this.made.callback(undefined);
  }

  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    this.messages.push({ data, isBinary });
    this.onMessage?.(data, isBinary);
  }

  override pongReceived(data: Buffer): void {
    this.pongs.push(data);
  }

  override connectionLost(reason: Failure<WebSocketClosed>): void {
    this.lost.callback(reason.value);
  }
}

/** Echoes every message back (same type). */
export class Echo extends WebSocketProtocol {
  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    this.transport.sendMessage(data, { binary: isBinary });
  }
}

/** A factory that remembers the protocols it built. */
export class RecordingFactory<P extends WebSocketProtocol> extends WebSocketFactory<P> {
  readonly built: P[] = [];
  readonly #next: Deferred<P>[] = [];

  /** Resolves with the next protocol built (or the first one not yet taken). */
  nextProtocol(): Promise<P> {
    const d = new Deferred<P>();
    this.#next.push(d);
    this.#flush();
    return d.asPromise();
  }

  #taken = 0;

  #flush(): void {
    while (this.#next.length > 0 && this.#taken < this.built.length) {
      this.#next.shift()!.callback(this.built[this.#taken++]!);
    }
  }

  override buildProtocol(request: Parameters<WebSocketFactory<P>['buildProtocol']>[0]): P | null {
    const p = super.buildProtocol(request);
    if (p !== null) {
      this.built.push(p);
      this.#flush();
    }
    return p;
  }
}

export function recordingFactory<P extends WebSocketProtocol>(
  cls: new () => P,
): RecordingFactory<P> {
  const f = new RecordingFactory<P>();
  f.protocol = cls;
  return f;
}

export interface TestServer<P extends WebSocketProtocol> {
  readonly port: number;
  readonly resource: WebSocketResource<P>;
  readonly root: Resource;
  url(path?: string): string;
  close(): Promise<void>;
}

/**
 * A Site on 127.0.0.1:0 with `resource` at `/ws` (keep-alive off unless
 * asked); `siteOptions` go to the Site (e.g. an `accessLog`).
 */
export async function startServer<P extends WebSocketProtocol>(
  factory: WebSocketFactory<P>,
  options: WebSocketResourceOptions = {},
  siteOptions: SiteOptions = {},
): Promise<TestServer<P>> {
  const resource = new WebSocketResource(factory, { pingInterval: 0, ...options });
  const root = new Resource();
  root.putChild('ws', resource);
  const port: Port = listenTCP(reactor, 0, new Site(root, siteOptions), {
    interface: '127.0.0.1',
    backlog: 1024,
  });
  await port.whenListening();
  const number = (port.getHost() as unknown as { port: number }).port;
  return {
    port: number,
    resource,
    root,
    url: (path = '/ws') => `ws://127.0.0.1:${number}${path}`,
    close: async () => {
      await resource.shutdown().asPromise();
      await port.stopListening().asPromise();
    },
  };
}

/** A recording factory of {@link Recorder}s and a server hosting it at `/ws`. */
export async function recordingServer(
  options: WebSocketResourceOptions = {},
): Promise<{ factory: RecordingFactory<Recorder>; server: TestServer<Recorder> }> {
  const factory = recordingFactory(Recorder);
  return { factory, server: await startServer(factory, options) };
}

/** {@link recordingServer}, a `ws` client connected to `/ws`, and the server side's protocol. */
export async function connectedClient(options: WebSocketResourceOptions = {}): Promise<{
  factory: RecordingFactory<Recorder>;
  server: TestServer<Recorder>;
  ws: WebSocket;
  proto: Recorder;
}> {
  const { factory, server } = await recordingServer(options);
  const ws = await openClient(server.url());
  return { factory, server, ws, proto: await factory.nextProtocol() };
}

/** The client closes normally; waits for the server side's `connectionLost`, then closes the server. */
export async function closeNormally(
  ws: WebSocket,
  proto: Recorder,
  server: TestServer<WebSocketProtocol>,
): Promise<void> {
  ws.close();
  await proto.lost.asPromise();
  await server.close();
}

/** A raw peer upgraded at `path` (101 checked), and the server side's protocol. */
export async function rawUpgrade<P extends WebSocketProtocol>(
  server: TestServer<P>,
  factory: RecordingFactory<P>,
  path = '/ws',
): Promise<{ peer: RawPeer; proto: P }> {
  const peer = new RawPeer(server.port);
  peer.socket.write(upgradeRequest(path));
  assert.equal((await peer.response()).status, 101, 'upgraded');
  return { peer, proto: await factory.nextProtocol() };
}

/**
 * A Site over TLS (`listenSSL`, a throwaway certificate for 127.0.0.1) on
 * 127.0.0.1:0 with a `WebSocketResource` of `factory` mounted at `segments`.
 * `close()` shuts the resource down, stops listening and removes the certificate.
 */
export async function startSecureServer<P extends WebSocketProtocol>(
  factory: WebSocketFactory<P>,
  segments: readonly string[] = ['ws'],
): Promise<{
  port: number;
  cert: TestCert;
  resource: WebSocketResource<P>;
  close(): Promise<void>;
}> {
  const cert = makeCert();
  const resource = new WebSocketResource(factory, { pingInterval: 0 });
  const root = new Resource();
  let parent = root;
  for (const segment of segments.slice(0, -1)) {
    const child = new Resource();
    parent.putChild(segment, child);
    parent = child;
  }
  parent.putChild(segments.at(-1)!, resource);
  const port = listenSSL(
    reactor,
    0,
    new Site(root),
    { key: cert.key, cert: cert.cert },
    { interface: '127.0.0.1' },
  );
  try {
    await port.whenListening();
  } catch (e) {
    cert.remove();
    throw e;
  }
  return {
    port: (port.getHost() as unknown as { port: number }).port,
    cert,
    resource,
    close: async () => {
      try {
        await resource.shutdown().asPromise();
        await port.stopListening().asPromise();
      } finally {
        cert.remove();
      }
    },
  };
}

/** The payload of a close frame: the code, then the reason's bytes. */
export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code);
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason) : reason]);
}

/** A `ws` client, resolved once open (rejects on error). */
export function openClient(
  url: string,
  protocols?: string | string[],
  options?: ConstructorParameters<typeof WebSocket>[2],
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** The next message on `ws`. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => {
    ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary }));
  });
}

/** Resolves with the close code and reason once `ws` has closed. */
export function clientClosed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: '' });
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** Polls `condition` every 5 ms, for at most `ms`; fails naming `what`. */
export async function waitFor(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A client frame (masked, as RFC 6455 requires from clients). */
export function maskedFrame(opcode: number, payload: Buffer | string, fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const mask = randomBytes(4);
  let header: Buffer;
  if (data.length < 126) {
    header = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | data.length]);
  } else if (data.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(data.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, mask, masked]);
}

/** One unmasked server frame parsed from the front of `buf`, or `null` if incomplete. */
export function parseFrame(
  buf: Buffer,
): { fin: boolean; opcode: number; payload: Buffer; size: number } | null {
  if (buf.length < 2) return null;
  let length = buf[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  if (buf.length < offset + length) return null;
  return {
    fin: (buf[0]! & 0x80) !== 0,
    opcode: buf[0]! & 0x0f,
    payload: buf.subarray(offset, offset + length),
    size: offset + length,
  };
}

export const CLIENT_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** An upgrade request for `path` with `extra` header lines (each ending in CRLF). */
export function upgradeRequest(
  path: string,
  extra = '',
  overrides: Record<string, string> = {},
): string {
  const headers: Record<string, string> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': CLIENT_KEY,
    'Sec-WebSocket-Version': '13',
    ...overrides,
  };
  let text = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== '') text += `${name}: ${value}\r\n`;
  }
  return `${text}${extra}\r\n`;
}

/**
 * A raw `net` peer: collects what it receives; `response()` resolves with the
 * first HTTP response (head and Content-Length body) and keeps the rest in
 * `buffer`.
 */
export class RawPeer {
  readonly socket: net.Socket;
  buffer = Buffer.alloc(0);
  readonly ended: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.socket.on('error', () => {});
    this.ended = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.once('close', () => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  connected(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.socket.connecting) resolve();
      else this.socket.once('connect', () => resolve());
    });
  }

  /** Waits for more data (or the close). */
  more(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The first HTTP response: status, lower-cased headers, body; removed from `buffer`. */
  async response(): Promise<{ status: number; headers: Map<string, string>; body: string }> {
    for (let i = 0; i < 1000; i++) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(head[0]!.split(' ')[1]);
        const headers = new Map<string, string>();
        for (const line of head.slice(1)) {
          const colon = line.indexOf(':');
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        const length = Number(headers.get('content-length') ?? '0');
        if (this.buffer.length >= end + 4 + length) {
          const body = this.buffer.subarray(end + 4, end + 4 + length).toString();
          this.buffer = this.buffer.subarray(end + 4 + length);
          return { status, headers, body };
        }
      }
      if (this.socket.destroyed) break;
      await this.more();
    }
    assert.fail(`no complete HTTP response: ${JSON.stringify(this.buffer.toString('latin1'))}`);
  }

  /** The next server frame (removed from `buffer`). */
  async frame(): Promise<{ fin: boolean; opcode: number; payload: Buffer }> {
    for (let i = 0; i < 1000; i++) {
      const f = parseFrame(this.buffer);
      if (f !== null) {
        this.buffer = this.buffer.subarray(f.size);
        return f;
      }
      if (this.socket.destroyed) break;
      await this.more();
    }
    assert.fail('no complete frame');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sockets and servers still open in this process (libuv handles). */
export function openHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
}

/** Checks for leaks ({@link assertNoLeaks}) after each test of the file, naming the test. */
export function checkLeaksAfterEach(): void {
  afterEach(async (t) => {
    await assertNoLeaks(t.name);
  });
}

/** Fails unless every socket and server closed and no delayed call is left on the reactor. */
export async function assertNoLeaks(what: string): Promise<void> {
  await waitFor(() => openHandles() === 0, `${what}: every socket closed`, 15_000);
  const calls = reactor.getDelayedCalls();
  assert.equal(calls.length, 0, `${what}: ${calls.length} delayed call(s) left on the reactor`);
}
