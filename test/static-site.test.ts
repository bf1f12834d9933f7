/**
 * File over real sockets through Site: exact bytes for whole files, single
 * and multipart ranges, conditionals and HEAD on a kept-alive connection,
 * traversal attempts as raw request targets, symlink escapes, a 1 GiB
 * sparse file served with bounded memory (server in a child process), and
 * descriptors closed when a client aborts mid-download.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { IPv4Address } from '../src/reactor/address.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { Site } from '../src/web/site.js';
import { File } from '../src/web/static.js';
import { FileTruncatedError } from '../src/web/static-producer.js';
import { eventually, openOn, parseMultipart } from './static-helpers.js';

// ---------------------------------------------------------------------- fixture

let base: string;
let root: string;
let port: Port;
let site: Site;
let BIG: string;
const DATA = Buffer.alloc(100_000);
for (let i = 0; i < DATA.length; i++) DATA[i] = (i * 7) % 256;
const PATTERN = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < PATTERN.length; i += 4) PATTERN.writeUInt32LE(i, i);
const SECRET = 'TOP SECRET';

before(() => {
  base = mkdtempSync(join(tmpdir(), 'torsion-static-site-'));
  root = join(base, 'root');
  mkdirSync(root);
  writeFileSync(join(base, 'secret.txt'), SECRET);
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(base, 'outside', 'secret.txt'), SECRET);
  writeFileSync(join(root, 'data.bin'), DATA);
  writeFileSync(join(root, 'pattern.bin'), PATTERN);
  writeFileSync(join(root, 'hello.txt'), 'Hello, world!\n');
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'sub', 'index.html'), '<h1>sub</h1>');
  mkdirSync(join(root, 'a'));
  mkdirSync(join(root, 'evil.example'));
  symlinkSync(join(base, 'secret.txt'), join(root, 'link-out'));
  symlinkSync(join(base, 'outside'), join(root, 'dir-link-out'));
  BIG = join(root, 'big.bin');
  writeFileSync(BIG, '');
  truncateSync(BIG, 256 * 1024 * 1024);
  site = new Site(new File(root));
  port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
});

after(async () => {
  await port.stopListening();
  rmSync(base, { recursive: true, force: true });
});

function portNumber(p: Port): number {
  return (p.getHost() as IPv4Address).port;
}

// ---------------------------------------------------------------------- a raw client

interface Response {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Sends `raw` on a fresh connection and collects everything until the server closes. */
function exchange(raw: string, tcpPort = portNumber(port)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(tcpPort, '127.0.0.1', () => socket.write(raw, 'latin1'));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    // Bound: a server that never closes fails the test instead of hanging it.
    socket.setTimeout(20_000, () => socket.destroy(new Error('no close from the server')));
  });
}

/** Parses consecutive responses to requests with `methods`; asserts nothing is left over. */
function parseResponses(buf: Buffer, methods: readonly string[]): Response[] {
  const out: Response[] = [];
  let at = 0;
  for (const method of methods) {
    const end = buf.indexOf('\r\n\r\n', at);
    assert.ok(end >= 0, `a response head for ${method} (${out.length} parsed)`);
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)![1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    at = end + 4;
    let body: Buffer = Buffer.alloc(0);
    if (method !== 'HEAD' && status !== 304 && status !== 204) {
      assert.ok(!headers.has('transfer-encoding'), 'static responses have a Content-Length');
      const length = Number(headers.get('content-length'));
      assert.ok(Number.isSafeInteger(length), 'Content-Length');
      body = buf.subarray(at, at + length);
      assert.equal(body.length, length, 'the whole body arrived');
      at += length;
    }
    out.push({ status, headers, body });
  }
  assert.equal(at, buf.length, 'nothing after the last response');
  return out;
}

const req = (target: string, extra = '', method = 'GET'): string =>
  `${method} ${target} HTTP/1.1\r\nHost: h\r\n${extra}\r\n`;
const CLOSE = 'Connection: close\r\n';

async function one(target: string, extra = '', method = 'GET'): Promise<Response> {
  const [r] = parseResponses(await exchange(req(target, extra + CLOSE, method)), [method]);
  return r!;
}

// ---------------------------------------------------------------------- tests

describe('File through Site', () => {
  test('GET: exact bytes, headers', async () => {
    const r = await one('/data.bin');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, DATA);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('accept-ranges'), 'bytes');
    assert.ok(r.headers.has('etag') && r.headers.has('last-modified'));
    const t = await one('/hello.txt');
    assert.equal(t.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(t.body.toString(), 'Hello, world!\n');
  });

  test('an 8 MiB file arrives byte-exact under flow control', async () => {
    const r = await one('/pattern.bin');
    assert.equal(r.body.length, PATTERN.length);
    assert.ok(r.body.equals(PATTERN));
  });

  test('HEAD, 304, ranges and multipart pipelined on one connection', async () => {
    const etag = (await one('/data.bin')).headers.get('etag')!;
    const raw =
      req('/data.bin', '', 'HEAD') +
      req('/data.bin', `If-None-Match: ${etag}\r\n`) +
      req('/data.bin', 'Range: bytes=10-19\r\n') +
      req('/data.bin', 'Range: bytes=-5, 0-2, 50000-50099\r\n') +
      req('/data.bin', 'Range: bytes=100000-\r\n') +
      req('/data.bin', 'Range: bytes=5-1\r\n') +
      req('/data.bin', `Range: bytes=0-0\r\nIf-Range: "stale"\r\n`) +
      req('/hello.txt', CLOSE);
    const methods = ['HEAD', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET'];
    const [head, notModified, single, multi, unsat, malformed, staleIfRange, last] = parseResponses(
      await exchange(raw),
      methods,
    );

    assert.equal(head!.status, 200);
    assert.equal(head!.headers.get('content-length'), String(DATA.length));

    assert.equal(notModified!.status, 304);
    assert.equal(notModified!.headers.get('etag'), etag);

    assert.equal(single!.status, 206);
    assert.equal(single!.headers.get('content-range'), `bytes 10-19/${DATA.length}`);
    assert.deepEqual(single!.body, DATA.subarray(10, 20));

    assert.equal(multi!.status, 206);
    const parts = parseMultipart(multi!.body, multi!.headers.get('content-type')!);
    assert.deepEqual(
      parts.map((p) => p.headers['content-range']),
      [`bytes 99995-99999/100000`, 'bytes 0-2/100000', 'bytes 50000-50099/100000'],
    );
    assert.deepEqual(parts[0]!.data, DATA.subarray(99995));
    assert.deepEqual(parts[1]!.data, DATA.subarray(0, 3));
    assert.deepEqual(parts[2]!.data, DATA.subarray(50000, 50100));

    assert.equal(unsat!.status, 416);
    assert.equal(unsat!.headers.get('content-range'), 'bytes */100000');

    assert.equal(malformed!.status, 200);
    assert.deepEqual(malformed!.body, DATA);

    assert.equal(staleIfRange!.status, 200);
    assert.equal(staleIfRange!.body.length, DATA.length);

    assert.equal(last!.body.toString(), 'Hello, world!\n');
  });

  test('directories: redirect, index, listing; no scheme-relative redirect', async () => {
    const r = await one('/sub?x=1');
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/sub/?x=1');
    assert.equal((await one('/sub/')).body.toString(), '<h1>sub</h1>');
    const listing = await one('/');
    assert.equal(listing.status, 200);
    assert.match(listing.body.toString(), /href="data\.bin"/);
    assert.doesNotMatch(listing.body.toString(), /link-out/);
    const absolute = await one('http://h/sub?y');
    assert.equal(absolute.status, 301);
    assert.equal(absolute.headers.get('location'), '/sub/?y');
    const evil = await one('//evil.example');
    assert.equal(evil.status, 301);
    assert.equal(evil.headers.get('location'), '/evil.example/');
  });

  test('other methods: 405 with Allow', async () => {
    const raw = `POST /data.bin HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n${CLOSE}\r\nabc`;
    const [r] = parseResponses(await exchange(raw), ['POST']);
    assert.equal(r!.status, 405);
    assert.equal(r!.headers.get('allow'), 'GET, HEAD');
  });

  const targets = [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/.%2e/secret.txt',
    '/..%2fsecret.txt',
    '/%2e%2e%2fsecret.txt',
    '/a/../../secret.txt',
    '/a/%2e%2e/%2e%2e/secret.txt',
    '/sub/..%2f..%2fsecret.txt',
    '/..%5csecret.txt',
    '/%2fetc%2fpasswd',
    '/hello.txt%00',
    '/%00/../secret.txt',
    '/%c0%ae%c0%ae/secret.txt',
    '/link-out',
    '/dir-link-out/secret.txt',
    '/dir-link-out/',
    'http://h/../secret.txt',
    'http://h/%2e%2e/secret.txt',
  ];
  for (const target of targets) {
    test(`traversal: GET ${target}`, async () => {
      const buf = await exchange(req(target, CLOSE));
      const text = buf.toString('latin1');
      assert.ok(!text.includes(SECRET), 'the secret leaked');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
      // 404 from File; 400 where the server refuses the target outright
      // (bad percent-encoding).
      assert.ok(status === 404 || status === 400, `status ${status}`);
      if (!target.includes('%c0')) assert.equal(status, 404);
    });
  }

  test('a raw backslash or dot segments in the target never leak', async () => {
    for (const target of ['/..\\secret.txt', '/./../secret.txt', '/a/./../../secret.txt']) {
      const text = (await exchange(req(target, CLOSE))).toString('latin1');
      assert.ok(!text.includes(SECRET), target);
      assert.match(text, /^HTTP\/1\.1 40[04] /, target);
    }
  });

  test('client abort mid-download: the file descriptor is closed', async () => {
    const socket = net.connect(portNumber(port), '127.0.0.1');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (d) => {
        received += d.length;
        if (received >= 4 * 1024 * 1024) {
          socket.pause();
          resolve();
        }
      });
      socket.write(req('/big.bin'));
    });
    assert.equal(openOn(BIG), 1, 'the file is open while sending');
    socket.destroy();
    await eventually(() => openOn(BIG) === 0, 'the file to be closed');
    assert.ok(received < 256 * 1024 * 1024);
  });

  test('a file that shrinks mid-download: the connection is aborted, the file closed', async () => {
    const path = join(root, 'shrinks.bin');
    writeFileSync(path, '');
    truncateSync(path, 64 * 1024 * 1024);
    const logged: LogEvent[] = [];
    const remove = addObserver((e) => logged.push(e));
    try {
      const socket = net.connect(portNumber(port), '127.0.0.1');
      let received = 0;
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('error', () => {});
      let waiting = true;
      await new Promise<void>((resolve) => {
        socket.on('data', (d) => {
          received += d.length;
          if (waiting && received >= 1024 * 1024) {
            waiting = false;
            socket.pause();
            resolve();
          }
        });
        socket.write(req('/shrinks.bin'));
      });
      truncateSync(path, 2 * 1024 * 1024);
      socket.resume();
      // Bounded: a server that never notices the truncation fails the test, not the run.
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        socket.destroy();
      }, 20_000);
      await closed;
      clearTimeout(timer);
      assert.equal(timedOut, false, 'the server aborted the cut-short response');
      assert.ok(received < 64 * 1024 * 1024, 'the response is visibly cut short');
      await eventually(() => openOn(path) === 0, 'the file to be closed');
      assert.ok(logged.some((e) => e.failure?.value instanceof FileTruncatedError));
    } finally {
      remove();
    }
  });

  test('a client that stops reading pauses the transfer; closing frees everything', async () => {
    const socket = net.connect(portNumber(port), '127.0.0.1');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.once('data', (d) => {
        received += d.length;
        socket.pause();
        resolve();
      });
      socket.write(req('/big.bin'));
    });
    const rss = process.memoryUsage().rss;
    // Give the server many turns to (wrongly) read ahead into memory.
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    assert.ok(
      process.memoryUsage().rss - rss < 64 * 1024 * 1024,
      'the server does not read ahead while the client does not read',
    );
    socket.destroy();
    await eventually(() => openOn(BIG) === 0, 'the file to be closed');
    assert.ok(received > 0);
  });
});

// ---------------------------------------------------------------------- 1 GiB, bounded memory

describe('a 1 GiB sparse file, server in a child process', () => {
  let child: ChildProcess;
  let childPort = 0;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'torsion-static-gib-'));
    writeFileSync(join(dir, 'huge.bin'), '');
    truncateSync(join(dir, 'huge.bin'), 1024 ** 3);
    const fixture = fileURLToPath(new URL('./fixtures/static-server.ts', import.meta.url));
    child = spawn(process.execPath, ['--import', 'tsx', fixture, dir], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    childPort = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(Number(out.slice(0, nl)));
      });
      child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
  });

  after(async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.end();
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  async function stats(): Promise<{ rss: number; maxRSS: number; fds: number }> {
    const [r] = parseResponses(await exchange(req('/__stats', CLOSE), childPort), ['GET']);
    return JSON.parse(r!.body.toString());
  }

  test('served whole with exact length; server peak RSS grows < 64 MiB; descriptors closed', async () => {
    // Warm up (module loading, first-request paths), then measure.
    await stats();
    await exchange(req('/huge.bin', `Range: bytes=0-1048575\r\n${CLOSE}`), childPort);
    const beforeStats = await stats();
    const total = await new Promise<number>((resolve, reject) => {
      let n = 0;
      let headEnd = -1;
      let head: Buffer = Buffer.alloc(0);
      const socket = net.connect(childPort, '127.0.0.1', () =>
        socket.write(req('/huge.bin', CLOSE)),
      );
      socket.on('data', (d: Buffer) => {
        if (headEnd < 0) {
          head = Buffer.concat([head, d]);
          headEnd = head.indexOf('\r\n\r\n');
          if (headEnd < 0) return;
          assert.match(
            head.toString('latin1', 0, headEnd),
            /^HTTP\/1\.1 200 [\s\S]*\r\nContent-Length: 1073741824\r\n/i,
          );
          n = head.length - headEnd - 4;
          return;
        }
        n += d.length;
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(n));
      socket.setTimeout(120_000, () => socket.destroy(new Error('transfer stalled')));
    });
    assert.equal(total, 1024 ** 3);
    const afterStats = await stats();
    const growth = afterStats.maxRSS - beforeStats.rss;
    assert.ok(growth < 64 * 1024 * 1024, `peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(afterStats.fds, beforeStats.fds, 'no descriptor left open');
  });
});
