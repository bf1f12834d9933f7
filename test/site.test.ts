/**
 * Site: what render results become (bytes, strings, Promises, Deferreds,
 * NOT_DONE_YET, errors and HTTPExceptions), the access log in the combined
 * format, sessions and their expiry (Clock), graceful shutdown over real
 * sockets, and option checks.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred, succeed } from '../src/reactor/deferred.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import type { IReactorTime } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { HTTPException } from '../src/web/errors.js';
import type { Request } from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';
import { combinedLogLine, escapeLogField, Site } from '../src/web/site.js';
import { header, memoryConnection, parseResponses, RawClient } from './http-wire.js';

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: h\r\n${extra}\r\n`;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Captures error log events while `fn` runs. */
async function capturingErrors(fn: (errors: LogEvent[]) => Promise<void> | void): Promise<void> {
  const errors: LogEvent[] = [];
  const remove = addObserver((e) => {
    if (e.isError) errors.push(e);
  });
  try {
    await fn(errors);
  } finally {
    remove();
  }
}

/** A leaf answering `render` with whatever `answer(path, request)` gives. */
function leaf(answer: (path: string, request: Request) => RenderResult): Resource {
  return new (class extends Resource {
    override isLeaf = true;
    override render(request: IRequest): RenderResult {
      return answer(request.path, request as Request);
    }
  })();
}

// ---------------------------------------------------------------------- rendering

describe('Site: render results', () => {
  test('bytes and strings (UTF-8 length), Promises, Deferreds, NOT_DONE_YET', async () => {
    const later = new Deferred<string>();
    let pending: Request | null = null;
    const root = leaf((path, request) => {
      switch (path) {
        case '/string':
          return 'héllo';
        case '/bytes':
          return Buffer.from([1, 2, 3]);
        case '/promise':
          return Promise.resolve('from a promise');
        case '/fired':
          return succeed('from a fired deferred');
        case '/later':
          return later;
        case '/promise-ndy':
          return Promise.resolve(NOT_DONE_YET).then((v) => {
            request.write('by hand');
            request.finish();
            return v;
          });
        default:
          pending = request;
          return NOT_DONE_YET;
      }
    });
    const c = memoryConnection(root);
    c.feed(
      ['/string', '/bytes', '/promise', '/fired', '/later', '/promise-ndy', '/self']
        .map((p) => GET(p))
        .join(''),
    );
    for (let i = 0; i < 5; i++) await turn();
    later.callback('from a later deferred');
    for (let i = 0; i < 5; i++) await turn();
    pending!.write('self-finished');
    pending!.finish();
    const rs = parseResponses(c.written(), Array(7).fill('GET'), false).responses;
    assert.equal(header(rs[0]!, 'content-length'), '6');
    assert.equal(rs[0]!.body.toString(), 'héllo');
    assert.deepEqual([...rs[1]!.body], [1, 2, 3]);
    assert.deepEqual(
      rs.slice(2).map((r) => r.body.toString()),
      [
        'from a promise',
        'from a fired deferred',
        'from a later deferred',
        'by hand',
        'self-finished',
      ],
    );
  });

  test('a throw or a rejection: logged, 500 with a short body, the headers set before dropped; serving goes on', async () => {
    await capturingErrors(async (errors) => {
      const root = leaf((path, request) => {
        request.setHeader('X-Before', 'dropped');
        if (path === '/throw') throw new Error('kaboom');
        if (path === '/reject') return Promise.reject(new Error('rejected'));
        if (path === '/wrong') return 42 as unknown as RenderResult;
        return 'fine';
      });
      const c = memoryConnection(root);
      c.feed(GET('/throw') + GET('/reject') + GET('/wrong') + GET('/ok'));
      for (let i = 0; i < 5; i++) await turn();
      const rs = parseResponses(c.written(), Array(4).fill('GET'), false).responses;
      assert.deepEqual(
        rs.map((r) => r.status),
        [500, 500, 500, 200],
      );
      assert.equal(rs[0]!.body.toString(), 'Internal Server Error\n');
      assert.equal(header(rs[0]!, 'content-type'), 'text/plain; charset=utf-8');
      assert.equal(header(rs[0]!, 'x-before'), undefined);
      assert.doesNotMatch(rs[0]!.body.toString(), /kaboom/);
      assert.equal(errors.length, 3);
      assert.match(errors[0]!.message, /kaboom/);
      assert.equal(c.closed(), false);
    });
  });

  test('displayTracebacks puts the stack in the 500 body', async () => {
    await capturingErrors(() => {
      const root = leaf(() => {
        throw new Error('visible');
      });
      const c = memoryConnection(root, { displayTracebacks: true });
      c.feed(GET('/'));
      const [r] = parseResponses(c.written(), ['GET'], false).responses;
      assert.equal(r!.status, 500);
      assert.match(r!.body.toString(), /Error: visible\n\s+at /);
    });
  });

  test('an HTTPException answers its own status and is not logged', async () => {
    await capturingErrors(async (errors) => {
      const root = leaf((path) => {
        if (path === '/sync') throw new HTTPException(403, 'members only');
        return Promise.reject(
          new HTTPException(429, undefined, { body: 'slow down', headers: { 'Retry-After': '5' } }),
        );
      });
      const c = memoryConnection(root);
      c.feed(GET('/sync') + GET('/async'));
      await turn();
      const [a, b] = parseResponses(c.written(), ['GET', 'GET'], false).responses;
      assert.equal(a!.status, 403);
      assert.match(a!.body.toString(), /members only/);
      assert.equal(b!.status, 429);
      assert.equal(b!.body.toString(), 'slow down');
      assert.equal(header(b!, 'retry-after'), '5');
      assert.equal(errors.length, 0);
    });
  });

  test('an error after the response started aborts the connection (and is logged)', async () => {
    await capturingErrors(async (errors) => {
      const root = leaf((_path, request) => {
        request.write('partial');
        return Promise.reject(new Error('midway'));
      });
      const c = memoryConnection(root);
      c.feed(GET('/'));
      await turn();
      assert.equal(c.transport.aborted, true);
      assert.equal(errors.length, 1);
    });
  });
});

// ---------------------------------------------------------------------- access log

function collector(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d.toString()));
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== ''),
  };
}

describe('Site: access log (combined log format)', () => {
  test('one line per response: host, time, request line, status, bytes, referer, agent', async () => {
    const log = collector();
    const root = leaf((path) => (path === '/empty' ? '' : 'ok'));
    const c = memoryConnection(root, { accessLog: log.stream });
    c.feed(
      GET('/x?y=1', 'Referer: http://ref/\r\nUser-Agent: agent "quoted" \\ back\r\n') +
        'HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n' +
        GET('/empty') +
        'GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n',
    );
    c.feed('BAD\r\n\r\n');
    await turn();
    const lines = log.lines();
    assert.equal(lines.length, 5);
    const time = String.raw`\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]`;
    assert.match(
      lines[0]!,
      new RegExp(
        String.raw`^127\.0\.0\.1 - - ${time} "GET /x\?y=1 HTTP/1\.1" 200 2 "http://ref/" "agent \\"quoted\\" \\\\ back"$`,
      ),
    );
    assert.match(lines[1]!, /"HEAD \/x HTTP\/1\.1" 200 - "-" "-"$/);
    assert.match(lines[2]!, /"GET \/empty HTTP\/1\.1" 200 - "-" "-"$/);
    assert.match(lines[3]!, /"GET \/\\xe9 HTTP\/1\.1" 200 2 /);
    assert.match(lines[4]!, new RegExp(String.raw`^127\.0\.0\.1 - - ${time} "-" 400 \d+ "-" "-"$`));
  });

  test('escapeLogField and combinedLogLine', () => {
    assert.equal(escapeLogField('plain'), 'plain');
    assert.equal(
      escapeLogField('a"b\\c\nd\x7f\u00e9\u20ac'),
      'a\\"b\\\\c\\x0ad\\x7f\\xe9\\xe2\\x82\\xac',
    );
    assert.equal(
      combinedLogLine(
        new IPv4Address('TCP', '10.0.0.1', 5),
        '[t]',
        'GET / HTTP/1.1',
        204,
        0,
        null,
        'ua',
      ),
      '10.0.0.1 - - [t] "GET / HTTP/1.1" 204 - "-" "ua"\n',
    );
  });

  test('to a file path: appended, and closed by shutdown', async () => {
    const path = join(tmpdir(), `torsion-access-${process.pid}-${Date.now()}.log`);
    try {
      const root = leaf(() => 'ok');
      const c = memoryConnection(root, { accessLog: path });
      c.feed(GET('/one') + GET('/two'));
      c.lose();
      await c.site.shutdown();
      // The stream was ended by the shutdown; its last write may still be on its way.
      for (
        let i = 0;
        i < 100 && (await readFile(path, 'utf8').catch(() => '')).split('\n').length < 3;
        i++
      ) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const text = await readFile(path, 'utf8');
      assert.match(
        text,
        /"GET \/one HTTP\/1\.1" 200 2 "-" "-"\n.*"GET \/two HTTP\/1\.1" 200 2 "-" "-"\n$/,
      );
    } finally {
      await rm(path, { force: true });
    }
  });
});

/** Waits (10 ms steps, at most 3 s) until `test()` holds; fails with `what` otherwise. */
async function eventually(what: string, test: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

const fileText = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');

describe('Site: access log reopening (SIGHUP)', () => {
  test('SIGHUP after a rename: old lines stay in the moved file, new ones go to a new file; the handler leaves at shutdown', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'torsion-logrotate-'));
    const path = join(dir, 'access.log');
    const listeners = process.listenerCount('SIGHUP');
    try {
      const c = memoryConnection(
        leaf(() => 'ok'),
        { accessLog: path },
      );
      assert.equal(process.listenerCount('SIGHUP'), listeners, 'no handler before the file opens');
      c.feed(GET('/one'));
      assert.equal(process.listenerCount('SIGHUP'), listeners + 1, 'a handler while it is open');
      await eventually('the first line', async () => (await fileText(path)).includes('/one'));

      await rename(path, `${path}.1`);
      assert.equal(existsSync(path), false);
      // Safe only with our handler installed (Node's default would end the process).
      assert.equal(process.listenerCount('SIGHUP') > listeners, true, 'handler installed');
      process.kill(process.pid, 'SIGHUP');
      await eventually('the reopened file', () => existsSync(path));
      c.feed(GET('/two'));
      await eventually('the line after the reopen', async () =>
        (await fileText(path)).includes('/two'),
      );
      const rotated = await fileText(`${path}.1`);
      const fresh = await fileText(path);
      assert.match(rotated, /^[^\n]*"GET \/one HTTP\/1\.1" 200 2 "-" "-"\n$/);
      assert.match(fresh, /^[^\n]*"GET \/two HTTP\/1\.1" 200 2 "-" "-"\n$/);

      // reopenLog() directly does the same (no rename: the same file, appended to).
      c.site.reopenLog();
      c.feed(GET('/three'));
      await eventually('the line after reopenLog()', async () =>
        (await fileText(path)).includes('/three'),
      );
      assert.equal((await fileText(path)).split('\n').length, 3, 'two lines, appended');

      c.lose();
      await c.site.shutdown();
      assert.equal(process.listenerCount('SIGHUP'), listeners, 'the handler left at shutdown');
      c.site.reopenLog(); // after shutdown: nothing to reopen, nothing installed
      assert.equal(process.listenerCount('SIGHUP'), listeners);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('two sites share one handler; reopenLog() ignores stream logs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'torsion-logrotate-'));
    const listeners = process.listenerCount('SIGHUP');
    try {
      const a = memoryConnection(
        leaf(() => 'a'),
        { accessLog: join(dir, 'a.log') },
      );
      const b = memoryConnection(
        leaf(() => 'b'),
        { accessLog: join(dir, 'b.log') },
      );
      a.feed(GET('/a'));
      b.feed(GET('/b'));
      assert.equal(process.listenerCount('SIGHUP'), listeners + 1, 'one process listener');
      a.lose();
      await a.site.shutdown();
      assert.equal(process.listenerCount('SIGHUP'), listeners + 1, 'still needed by b');
      b.lose();
      await b.site.shutdown();
      assert.equal(process.listenerCount('SIGHUP'), listeners);

      const log = collector();
      const c = memoryConnection(
        leaf(() => 'ok'),
        { accessLog: log.stream },
      );
      c.feed(GET('/x'));
      c.site.reopenLog();
      c.feed(GET('/y'));
      await turn();
      assert.equal(log.lines().length, 2, 'the stream was not ended');
      assert.equal(log.stream.writableEnded, false);
      assert.equal(process.listenerCount('SIGHUP'), listeners, 'no handler for a stream log');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------- sessions

describe('Site: sessions', () => {
  test('expire after sessionTimeout without use; touch pushes it back; callbacks run once', () => {
    const clock = new Clock();
    const site = new Site(new Resource(), { reactor: clock as IReactorTime, sessionTimeout: 100 });
    const session = site.makeSession();
    assert.equal(site.getSession(session.uid), session);
    const calls: string[] = [];
    session.notifyOnExpire(() => calls.push('a'));
    session.notifyOnExpire(() => calls.push('b'));
    clock.advance(60);
    session.touch();
    assert.equal(session.lastModified, 60);
    clock.advance(99);
    assert.equal(session.expired, false);
    clock.advance(1);
    assert.equal(session.expired, true);
    assert.deepEqual(calls, ['a', 'b']);
    assert.equal(site.getSession(session.uid), null);
    session.expire();
    session.notifyOnExpire(() => calls.push('late'));
    assert.deepEqual(calls, ['a', 'b', 'late']);
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('a request is given the live session of its cookie, touched; an expired one is replaced', () => {
    const clock = new Clock();
    const root = leaf((_p, request) => request.getSession().uid);
    const c = memoryConnection(root, { reactor: clock as IReactorTime, sessionTimeout: 10 });
    c.feed(GET('/'));
    const uid = parseResponses(c.written(), ['GET'], false).responses[0]!.body.toString();
    clock.advance(9);
    c.transport.clear();
    c.feed(GET('/', `Cookie: TORSION_SESSION=${uid}\r\n`));
    assert.equal(parseResponses(c.written(), ['GET'], false).responses[0]!.body.toString(), uid);
    clock.advance(9);
    assert.equal(c.site.sessions.size, 1, 'touched by the second request');
    clock.advance(1);
    assert.equal(c.site.sessions.size, 0);
    c.transport.clear();
    c.feed(GET('/', `Cookie: TORSION_SESSION=${uid}\r\n`));
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.notEqual(r!.body.toString(), uid);
    assert.match(header(r!, 'set-cookie')!, /^TORSION_SESSION=[0-9a-f]{32};/);
  });
});

// ---------------------------------------------------------------------- graceful shutdown

describe('Site: graceful shutdown (sockets)', () => {
  test('idle connections close at once, in-flight requests finish with Connection: close, stuck ones are aborted after the grace period', async () => {
    const clock = new Clock();
    const held: Request[] = [];
    const root = leaf((path, request) => {
      if (path === '/hold') {
        held.push(request);
        return NOT_DONE_YET;
      }
      return 'quick';
    });
    const site = new Site(root, { reactor: clock as IReactorTime, gracePeriod: 10 });
    const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
    const portNumber = (port.getHost() as IPv4Address).port;
    const idle = new RawClient(portNumber);
    idle.write(GET('/'));
    await idle.responses(['GET']);
    const busy = new RawClient(portNumber);
    busy.write(GET('/hold'));
    const stuck = new RawClient(portNumber);
    stuck.write(GET('/hold'));
    while (held.length < 2) await turn();

    await port.stopListening();
    const done = site.shutdown();
    let fired = false;
    done.addCallback(() => {
      fired = true;
    });
    const again = site.shutdown();
    assert.equal(
      site.buildProtocol(new IPv4Address('TCP', '127.0.0.1', 1)),
      null,
      'refuses new connections',
    );

    await idle.untilEnded();
    assert.equal(busy.ended, false);
    held[0]!.write('late but done');
    held[0]!.finish();
    const [r] = await busy.responses(['GET']);
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(r!.body.toString(), 'late but done');
    await busy.untilEnded();

    assert.equal(fired, false);
    clock.advance(10);
    await stuck.untilEnded();
    await done.asPromise();
    await again.asPromise();
    assert.equal(fired, true);
    assert.equal(site.channels.size, 0);
    assert.equal(port.connections.size, 0);
    assert.equal(clock.getDelayedCalls().length, 0);
    await Promise.all([idle.close(), busy.close(), stuck.close()]);
  });

  test("the port's stopListening starts it (the factory stops); starting again accepts again", async () => {
    const site = new Site(leaf(() => 'hi'));
    const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
    const client = new RawClient((port.getHost() as IPv4Address).port);
    client.write(GET('/'));
    await client.responses(['GET']);
    await port.stopListening();
    await client.untilEnded();
    await site.shutdown().asPromise();
    await client.close();
    const again = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
    const second = new RawClient((again.getHost() as IPv4Address).port);
    second.write(GET('/', 'Connection: close\r\n'));
    const [r] = await second.responses(['GET']);
    assert.equal(r!.body.toString(), 'hi');
    await second.close();
    await again.stopListening();
    await site.shutdown().asPromise();
  });
});

describe('Site: reactor shutdown', () => {
  test('the reactor shutdown event waits for the graceful shutdown', async () => {
    const { MemoryReactor } = await import('../src/testing/memory-reactor.js');
    const memory = new MemoryReactor();
    const held: Request[] = [];
    const root = leaf((_p, request) => {
      held.push(request);
      return NOT_DONE_YET;
    });
    const site = new Site(root, { reactor: memory });
    memory.listenTCP(0, site);
    const c = memoryConnection(root, {}, site);
    c.feed(GET('/'));
    let done = false;
    memory.fireSystemEvent('shutdown').addCallback(() => {
      done = true;
    });
    assert.equal(done, false, 'waits for the request in progress');
    held[0]!.finish();
    const [r] = parseResponses(c.written(), ['GET']).responses;
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(done, true);
  });
});

// ---------------------------------------------------------------------- options

describe('Site: options', () => {
  test('bad options are refused at the edge', () => {
    const root = new Resource();
    assert.throws(() => new Site(root, { idleTimeout: -1 }), InvalidArgumentError);
    assert.throws(() => new Site(root, { headerTimeout: 0 }), InvalidArgumentError);
    assert.throws(() => new Site(root, { maxPipelinedRequests: 0 }), InvalidArgumentError);
    assert.throws(() => new Site(root, { limits: { maxHeaderSize: 0 } }), InvalidArgumentError);
    assert.throws(() => new Site(root, { sessionTimeout: 0 }), InvalidArgumentError);
    assert.throws(
      () => new Site(root, { accessLog: 42 as unknown as string }),
      InvalidArgumentError,
    );
    assert.throws(() => new Site({} as Resource), InvalidArgumentError);
    assert.throws(() => new Site(root).shutdown(-1), InvalidArgumentError);
    // null disables a timeout.
    new Site(root, { idleTimeout: null, headerTimeout: null, bodyTimeout: 5 });
  });
});
