/**
 * Test support for the app gateway and fetch tests (not a test file): a
 * site serving apps on 127.0.0.1 (port 0), log captures, and bounded waiting.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after } from 'node:test';
import type { IPv4Address } from '../src/reactor/address.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { type App, AppResource, type AppResourceOptions, type AsyncApp } from '../src/web/app.js';
import type { IResource } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import { Site, type SiteOptions } from '../src/web/site.js';

export { header, parseResponses, RawClient, type Response } from './http-wire.js';

/** A listening site and how to stop it. */
export interface Served {
  readonly site: Site;
  readonly port: Port;
  readonly portNumber: number;
  /** Stops listening, aborts what is left, and checks that no connection stays open. */
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1, port 0. */
export async function serve(root: IResource, options: SiteOptions = {}): Promise<Served> {
  const site = new Site(root, { accessLog: null, ...options });
  const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' }) as Port;
  await port.whenListening();
  return {
    site,
    port,
    portNumber: (port.getHost() as IPv4Address).port,
    async close() {
      await port.stopListening();
      await site.shutdown(0);
    },
  };
}

/** Serves `app` mounted at `/app` (and `/` answers 404). */
export async function serveApp(
  app: App | AsyncApp,
  options: AppResourceOptions = {},
  siteOptions: SiteOptions = {},
): Promise<Served & { resource: AppResource }> {
  const root = new Resource();
  const resource = new AppResource(app, options);
  root.putChild('app', resource);
  const served = await serve(root, siteOptions);
  return { ...served, resource };
}

/** Captures log events while active (console output stops meanwhile). */
export class LogCapture {
  readonly events: LogEvent[] = [];
  readonly #remove: () => void;

  constructor() {
    this.#remove = addObserver((event) => this.events.push(event));
  }

  /** The error events' messages. */
  errors(): string[] {
    return this.events.filter((e) => e.isError).map((e) => e.message);
  }

  /** The informational events' messages. */
  messages(): string[] {
    return this.events.filter((e) => !e.isError).map((e) => e.message);
  }

  stop(): void {
    this.#remove();
  }
}

/** Waits (turn by turn, then every 5 ms: about 10 s at most) until `check()` holds. */
export async function until(check: () => boolean, what = 'condition', turns = 2100): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, i < 100 ? 0 : 5));
  }
  assert.fail(`${what}: not reached`);
}

/** Waits `ms` milliseconds of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * For the whole test file: collects unhandled rejections (the file's tests
 * fail at the end if there were any) and the errors the server logs
 * (captured, so nothing goes to the console). Returns the live list of
 * logged error events; clear it with `logged.length = 0`.
 */
export function watchFailures(): LogEvent[] {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  const logged: LogEvent[] = [];
  const removeObserver = addObserver((event) => {
    if (event.isError) logged.push(event);
  });
  after(() => {
    removeObserver();
    process.off('unhandledRejection', onUnhandled);
    assert.deepEqual(unhandled, [], 'no unhandled rejections');
  });
  return logged;
}

/** Lets the reactor run `n` turns (I/O included). */
export async function turns(n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** The SHA-256 of `data`, in hex. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A raw request head. */
export function requestHead(method: string, path: string, extra = ''): string {
  return `${method} ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;
}

/** A chunked body of `pieces` (each one chunk), with the last chunk. */
export function chunked(pieces: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  for (const piece of pieces) {
    const b = typeof piece === 'string' ? Buffer.from(piece) : piece;
    parts.push(Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}
