/**
 * The app gateway over real sockets: the environ, `startResponse` (the head
 * goes out with the first non-empty chunk, twice, with an error before and
 * after the head, bad arguments, legacy `write`), the kinds of body, errors
 * (500 before the head, abort after it, the server keeps serving), `close()`
 * exactly once in every ending, HEAD, and `wsgi.errors`.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Deferred } from '../src/reactor/deferred.js';
import { DummyRequest, render } from '../src/testing/dummy-request.js';
import {
  type App,
  AppProtocolError,
  AppResource,
  AsyncBody,
  type Environ,
} from '../src/web/app.js';
import { HTTPException } from '../src/web/errors.js';
import { InvalidHeaderError } from '../src/web/http/errors.js';
import { Resource } from '../src/web/resource.js';
import {
  header,
  LogCapture,
  RawClient,
  requestHead,
  type Served,
  serve,
  serveApp,
  turns,
  until,
} from './app-helpers.js';

const GET = (path: string, extra = ''): string => requestHead('GET', path, extra);

/** Sends one request on a new connection and returns its response. */
async function fetchOne(port: number, raw: string | Buffer, method = 'GET') {
  const client = new RawClient(port);
  client.write(raw);
  const [response] = await client.responses([method]);
  await client.close();
  assert.notEqual(response, undefined, 'a response came');
  return response!;
}

/** The environ as JSON (the plain values only). */
function environJSON(environ: Environ): string {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(environ)) {
    if (typeof value === 'string' || typeof value === 'boolean' || Array.isArray(value)) {
      out[key] = value;
    }
  }
  out.hasInput = typeof environ['wsgi.input'].read === 'function';
  out.isAsyncBody = environ['torsion.async'] instanceof AsyncBody;
  out.requestMethod = environ['torsion.request'].method;
  return JSON.stringify(out);
}

const dumpEnviron: App = (environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [environJSON(environ)];
};

// ---------------------------------------------------------------------- environ

describe('app gateway: the environ', () => {
  let server: Served;
  before(async () => {
    server = await serveApp(dumpEnviron);
  });
  after(() => server.close());

  test('CGI keys, HTTP_* fields, SCRIPT_NAME at the mount point, PATH_INFO the rest', async () => {
    const r = await fetchOne(
      server.portNumber,
      GET(
        '/app/a/b%20c?x=1&y=%20',
        'X-Custom: one\r\nX-Custom: two\r\nX_Spoof: no\r\nCookie: a=1\r\nCookie: b=2\r\n',
      ),
    );
    assert.equal(r.status, 200);
    const env = JSON.parse(r.body.toString()) as Record<string, unknown>;
    assert.equal(env.REQUEST_METHOD, 'GET');
    assert.equal(env.SCRIPT_NAME, '/app');
    assert.equal(env.PATH_INFO, '/a/b c');
    assert.equal(env.QUERY_STRING, 'x=1&y=%20');
    assert.equal(env.REQUEST_URI, '/app/a/b%20c?x=1&y=%20');
    assert.equal(env.CONTENT_TYPE, '');
    assert.equal('CONTENT_LENGTH' in env, false, 'no CONTENT_LENGTH without a body');
    assert.equal(env.SERVER_NAME, 'test');
    assert.equal(env.SERVER_PORT, String(server.portNumber));
    assert.equal(env.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(env.REMOTE_ADDR, '127.0.0.1');
    assert.match(String(env.REMOTE_PORT), /^\d+$/);
    assert.equal(env.HTTP_HOST, 'test');
    assert.equal(env.HTTP_X_CUSTOM, 'one, two');
    assert.equal(env.HTTP_COOKIE, 'a=1; b=2');
    assert.equal('HTTP_X_SPOOF' in env, false, 'a name with "_" is left out');
    assert.deepEqual(env['wsgi.version'], [1, 0]);
    assert.equal(env['wsgi.url_scheme'], 'http');
    assert.equal(env['wsgi.multithread'], false);
    assert.equal(env['wsgi.multiprocess'], false);
    assert.equal(env['wsgi.run_once'], false);
    assert.equal(env.hasInput, true);
    assert.equal(env.isAsyncBody, true);
    assert.equal(env.requestMethod, 'GET');
  });

  test('CONTENT_LENGTH with a Content-Length; absent for a chunked body; CONTENT_TYPE', async () => {
    const withLength = await fetchOne(
      server.portNumber,
      `${requestHead('POST', '/app', 'Content-Type: text/plain\r\nContent-Length: 5\r\n')}hello`,
      'POST',
    );
    const a = JSON.parse(withLength.body.toString()) as Record<string, unknown>;
    assert.equal(a.CONTENT_LENGTH, '5');
    assert.equal(a.CONTENT_TYPE, 'text/plain');
    assert.equal('HTTP_CONTENT_LENGTH' in a, false);
    assert.equal('HTTP_CONTENT_TYPE' in a, false);
    const chunkedBody = await fetchOne(
      server.portNumber,
      `${requestHead('POST', '/app', 'Transfer-Encoding: chunked\r\n')}5\r\nhello\r\n0\r\n\r\n`,
      'POST',
    );
    const b = JSON.parse(chunkedBody.body.toString()) as Record<string, unknown>;
    assert.equal('CONTENT_LENGTH' in b, false, 'no CONTENT_LENGTH for a chunked body');
    assert.equal(b.HTTP_TRANSFER_ENCODING, 'chunked');
  });

  test('PATH_INFO: empty at the mount point, "/" for a trailing slash; an app at the root', async () => {
    const bare = JSON.parse((await fetchOne(server.portNumber, GET('/app'))).body.toString());
    assert.equal(bare.SCRIPT_NAME, '/app');
    assert.equal(bare.PATH_INFO, '');
    const slash = JSON.parse((await fetchOne(server.portNumber, GET('/app/'))).body.toString());
    assert.equal(slash.PATH_INFO, '/');
    const atRoot = await serve(new AppResource(dumpEnviron));
    try {
      const env = JSON.parse((await fetchOne(atRoot.portNumber, GET('/x/y'))).body.toString());
      assert.equal(env.SCRIPT_NAME, '');
      assert.equal(env.PATH_INFO, '/x/y');
    } finally {
      await atRoot.close();
    }
  });
});

// ---------------------------------------------------------------------- startResponse

describe('app gateway: startResponse and the head', () => {
  test('the head goes out with the first non-empty chunk, not before', async () => {
    const gate = new Deferred<void>();
    const app: App = async function* (_environ, startResponse) {
      startResponse('201 Created', [
        ['X-A', '1'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ]);
      await gate;
      yield '';
      yield 'first';
      yield Buffer.from(' second');
    };
    const server = await serveApp(app);
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/app'));
      await turns(20);
      assert.equal(client.received, 0, 'nothing before the first non-empty chunk');
      gate.callback(undefined);
      const [r] = await client.responses(['GET']);
      assert.equal(r!.status, 201);
      assert.equal(header(r!, 'x-a'), '1');
      assert.deepEqual(r!.headers.get('set-cookie'), ['a=1', 'b=2']);
      assert.equal(r!.framing, 'chunked');
      assert.equal(r!.body.toString(), 'first second');
      await client.close();
    } finally {
      await server.close();
    }
  });

  test("AsyncBody: put('') sends nothing, the head goes out with the first non-empty put", async () => {
    let body: AsyncBody | null = null;
    const server = await serveApp((environ, startResponse) => {
      body = environ['torsion.async'];
      startResponse('202 Accepted', [['X-B', '2']]);
      body.put('');
      body.put(Buffer.alloc(0));
      return body;
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/app'));
      await until(() => body !== null, 'the app ran');
      await turns(20);
      assert.equal(client.received, 0, 'no head before a non-empty put');
      body!.put('');
      await turns(5);
      assert.equal(client.received, 0, 'still nothing');
      body!.put('now');
      await client.until(() => client.data().includes('now'));
      assert.match(client.data().toString('latin1'), /^HTTP\/1\.1 202 Accepted\r\n/);
      body!.finish();
      const [r] = await client.responses(['GET']);
      assert.equal(header(r!, 'x-b'), '2');
      assert.equal(r!.body.toString(), 'now');
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('an empty body: the head at the end with Content-Length: 0; an array body gets its length', async () => {
    const server = await serveApp((environ, startResponse) => {
      if (environ.PATH_INFO === '/empty') {
        startResponse('204 No Content', []);
        return [];
      }
      if (environ.PATH_INFO === '/declared') {
        startResponse('200 OK', [['Content-Length', '3']]);
        return ['a', 'b', 'c'];
      }
      startResponse('200 OK', []);
      return ['ab', Buffer.from('cd'), 'é'];
    });
    try {
      const empty = await fetchOne(server.portNumber, GET('/app/empty'));
      assert.equal(empty.status, 204);
      const array = await fetchOne(server.portNumber, GET('/app/array'));
      assert.equal(array.framing, 'length');
      assert.equal(header(array, 'content-length'), '6');
      assert.equal(array.body.toString(), 'abcdé');
      const declared = await fetchOne(server.portNumber, GET('/app/declared'));
      assert.deepEqual(declared.headers.get('content-length'), ['3']);
      assert.equal(declared.body.toString(), 'abc');
      const none = await serveApp((_e, startResponse) => {
        startResponse('200 OK', []);
        return (function* () {})();
      });
      try {
        const r = await fetchOne(none.portNumber, GET('/app'));
        assert.equal(header(r, 'content-length'), '0');
        assert.equal(r.body.length, 0);
      } finally {
        await none.close();
      }
    } finally {
      await server.close();
    }
  });

  test('twice without an error throws; with an error before the head it replaces status and headers', async () => {
    let second: unknown = null;
    const server = await serveApp((_environ, startResponse) => {
      startResponse('200 OK', [['X-First', '1']]);
      try {
        startResponse('200 OK', []);
      } catch (e) {
        second = e;
      }
      startResponse('503 Try Later', [['Content-Type', 'text/plain']], new Error('handled'));
      return ['later'];
    });
    try {
      const r = await fetchOne(server.portNumber, GET('/app'));
      assert.equal(second instanceof AppProtocolError, true, `got ${String(second)}`);
      assert.equal((second as AppProtocolError).code, 'TORSION_ERR_APP_PROTOCOL');
      assert.equal(r.status, 503);
      assert.equal(r.reason, 'Try Later');
      assert.equal(header(r, 'x-first'), undefined, 'the first headers were replaced');
      assert.equal(r.body.toString(), 'later');
    } finally {
      await server.close();
    }
  });

  test('with an error after the head went out, the error is thrown back: connection aborted', async () => {
    const log = new LogCapture();
    let rethrown = false;
    const late = new Error('late failure');
    const server = await serveApp(function* (_environ, startResponse) {
      startResponse('200 OK', []);
      yield 'part';
      yield ''; // a back-off: 'part' reaches the client first
      try {
        throw late;
      } catch (e) {
        try {
          startResponse('500 Internal Server Error', [], e);
        } catch (again) {
          rethrown = again === late;
          throw again;
        }
      }
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/app'));
      await client.untilEnded();
      const text = client.data().toString('latin1');
      assert.equal(rethrown, true, 'startResponse threw the error back');
      assert.match(text, /^HTTP\/1\.1 200 OK/);
      assert.match(text, /4\r\npart\r\n/);
      assert.equal(text.includes('0\r\n\r\n'), false, 'no last chunk: the response is truncated');
      await client.close();
      assert.equal(
        log.errors().some((m) => m.includes('late failure')),
        true,
        'the error was logged',
      );
    } finally {
      log.stop();
      await server.close();
    }
  });

  test('a malformed status or header throws at startResponse, where the app can handle it', async () => {
    const seen: string[] = [];
    const server = await serveApp((_environ, startResponse) => {
      const attempts: [string, [string, string][]][] = [
        ['OK', []],
        ['099 Low', []],
        ['200 Bad\r\nX: y', []],
        ['200 OK', [['Bad Name', 'v']]],
        ['200 OK', [['X-Split', 'a\r\nSet-Cookie: evil=1']]],
      ];
      for (const [status, headers] of attempts) {
        try {
          startResponse(status, headers);
          seen.push('accepted');
        } catch (e) {
          seen.push((e as Error).constructor.name);
        }
      }
      try {
        startResponse('200 OK', 'not a list' as unknown as [string, string][]);
      } catch (e) {
        seen.push((e as Error).constructor.name);
      }
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['fine'];
    });
    try {
      const r = await fetchOne(server.portNumber, GET('/app'));
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'fine');
      assert.deepEqual(seen, [
        AppProtocolError.name,
        AppProtocolError.name,
        InvalidHeaderError.name,
        InvalidHeaderError.name,
        InvalidHeaderError.name,
        AppProtocolError.name,
      ]);
    } finally {
      await server.close();
    }
  });

  test('legacy write(): sent at once, before the returned body', async () => {
    const server = await serveApp((_environ, startResponse) => {
      const write = startResponse('200 OK', [['Content-Type', 'text/plain']]);
      write('a');
      write(Buffer.from('b'));
      write('');
      return ['c'];
    });
    try {
      const r = await fetchOne(server.portNumber, GET('/app'));
      assert.equal(r.body.toString(), 'abc');
      assert.equal(r.framing, 'chunked', 'the head went out with the first write');
    } finally {
      await server.close();
    }
  });

  test('body bytes before startResponse, or no startResponse at all: 500', async () => {
    const log = new LogCapture();
    const server = await serveApp((environ) => {
      if (environ.PATH_INFO === '/never') return ['x'];
      if (environ.PATH_INFO === '/empty') return [];
      // Returned first, put later: the put is sent at once, with no head to send.
      const body = environ['torsion.async'];
      setImmediate(() => body.put('too early'));
      return body;
    });
    try {
      for (const path of ['/app/never', '/app/empty', '/app/put']) {
        const r = await fetchOne(server.portNumber, GET(path));
        assert.equal(r.status, 500, path);
        assert.equal(r.body.toString(), 'Internal Server Error\n');
      }
      assert.equal(
        log.errors().filter((m) => m.includes('startResponse')).length,
        3,
        log.errors().join('\n'),
      );
    } finally {
      log.stop();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- errors

describe('app gateway: errors', () => {
  let server: Served;
  let log: LogCapture;
  before(async () => {
    log = new LogCapture();
    const app: App = (environ, startResponse) => {
      switch (environ.PATH_INFO) {
        case '/throw':
          throw new Error('sync boom');
        case '/reject-before':
          return (async function* () {
            await Promise.resolve();
            if (environ.PATH_INFO !== '') throw new Error('async boom before');
            yield 'never';
          })();
        case '/reject-after':
          return (async function* () {
            startResponse('200 OK', []);
            yield 'some';
            await Promise.resolve();
            throw new Error('async boom after');
          })();
        case '/number':
          return 42 as unknown as string[];
        case '/bad-chunk':
          startResponse('200 OK', []);
          return [7] as unknown as string[];
        case '/http-exception':
          throw new HTTPException(403, 'members only');
        case '/fail': {
          const body = environ['torsion.async'];
          startResponse('200 OK', []);
          body.put('partial');
          setImmediate(() => body.fail(new Error('app gave up')));
          return body;
        }
        case '/async-ok':
          return Promise.resolve().then(() => {
            startResponse('200 OK', []);
            return ['async ok'];
          }) as unknown as string[];
        case '/async-reject':
          return Promise.reject(new Error('async app rejected')) as unknown as string[];
        default:
          startResponse('200 OK', []);
          return ['ok'];
      }
    };
    server = await serveApp(app);
  });
  after(async () => {
    log.stop();
    await server.close();
  });

  test('a synchronous throw: 500, logged, and the connection serves the next request', async () => {
    const client = new RawClient(server.portNumber);
    client.write(GET('/app/throw') + GET('/app/ok'));
    const [first, second] = await client.responses(['GET', 'GET']);
    assert.equal(first!.status, 500);
    assert.equal(second!.status, 200);
    assert.equal(second!.body.toString(), 'ok');
    assert.equal(client.closed, false, 'kept alive');
    await client.close();
    assert.equal(
      log.errors().some((m) => m.includes('sync boom')),
      true,
    );
  });

  test('a rejected async iteration: 500 before the head, abort after it; the server keeps serving', async () => {
    const before = await fetchOne(server.portNumber, GET('/app/reject-before'));
    assert.equal(before.status, 500);
    const client = new RawClient(server.portNumber);
    client.write(GET('/app/reject-after'));
    await client.untilEnded();
    const text = client.data().toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /4\r\nsome\r\n/);
    assert.equal(text.includes('0\r\n\r\n'), false, 'truncated, never complete-looking');
    await client.close();
    const ok = await fetchOne(server.portNumber, GET('/app/ok'));
    assert.equal(ok.body.toString(), 'ok');
    assert.equal(
      log.errors().some((m) => m.includes('async boom after')),
      true,
    );
  });

  test('a body that is not iterable, or a chunk that is not bytes: 500', async () => {
    for (const path of ['/app/number', '/app/bad-chunk']) {
      const r = await fetchOne(server.portNumber, GET(path));
      assert.equal(r.status, 500, path);
    }
    assert.equal(
      log.errors().some((m) => m.includes('expected an iterable')),
      true,
    );
    assert.equal(
      log.errors().some((m) => m.includes('chunks are strings or bytes')),
      true,
    );
  });

  test('an HTTPException answers its own status', async () => {
    const r = await fetchOne(server.portNumber, GET('/app/http-exception'));
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /members only/);
  });

  test('fail(): the connection is aborted and the error logged', async () => {
    const client = new RawClient(server.portNumber);
    client.write(GET('/app/fail'));
    await client.untilEnded();
    const text = client.data().toString('latin1');
    assert.match(text, /partial/);
    assert.equal(text.includes('0\r\n\r\n'), false);
    await client.close();
    assert.equal(
      log.errors().some((m) => m.includes('app gave up')),
      true,
    );
  });

  test('fail() under a middleware iterating the body: aborted, the error logged once', async () => {
    const own = new LogCapture();
    const wrapped = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      body.put('x');
      setTimeout(() => body.fail(new Error('wrapped failure')), 10);
      return (async function* () {
        for await (const chunk of body) yield chunk;
      })();
    });
    try {
      const client = new RawClient(wrapped.portNumber);
      client.write(GET('/app'));
      await client.untilEnded();
      assert.equal(client.data().includes('0\r\n\r\n'), false, 'aborted');
      await client.close();
      await turns(10);
      assert.equal(own.errors().filter((m) => m.includes('wrapped failure')).length, 1);
    } finally {
      own.stop();
      await wrapped.close();
    }
  });

  test('an app returning a Promise of its body; a rejected one is a 500', async () => {
    const ok = await fetchOne(server.portNumber, GET('/app/async-ok'));
    assert.equal(ok.body.toString(), 'async ok');
    const bad = await fetchOne(server.portNumber, GET('/app/async-reject'));
    assert.equal(bad.status, 500);
  });
});

// ---------------------------------------------------------------------- close() exactly once

type Ending = 'complete' | 'fail' | 'gone';

/** Counts the cleanups of each kind of body, for each ending. */
class Counts {
  finallies = 0;
  closes = 0;
  iteratorCloses = 0;
  returns = 0;
  onCloses = 0;
}

/** An iterable with close(), whose iterator has return() and close(): all counted. */
class ClosingBody implements Iterable<string> {
  constructor(
    readonly ending: Ending,
    readonly counts: Counts,
  ) {}
  [Symbol.iterator](): Iterator<string> {
    let step = 0;
    return {
      next: () => {
        step++;
        if (step === 1) return { done: false, value: 'a' };
        if (this.ending === 'complete') return { done: true, value: undefined };
        if (this.ending === 'fail') throw new Error('iteration failed');
        return { done: false, value: '' }; // 'gone': nothing yet, forever
      },
      return: () => {
        this.counts.returns++;
        return { done: true, value: undefined };
      },
      // A WSGI-style iterator may have its own close(): called once too.
      close: () => {
        this.counts.iteratorCloses++;
      },
    } as Iterator<string>;
  }
  close(): void {
    this.counts.closes++;
  }
}

describe('app gateway: close() exactly once, in every ending', () => {
  for (const kind of ['generator', 'async generator', 'close()', 'AsyncBody'] as const) {
    for (const ending of ['complete', 'fail', 'gone'] as const) {
      test(`${kind}: ${ending}`, async () => {
        const counts = new Counts();
        const log = new LogCapture();
        const app: App = (environ, startResponse) => {
          startResponse('200 OK', []);
          if (kind === 'generator') {
            return (function* () {
              try {
                yield 'a';
                if (ending === 'fail') throw new Error('generator failed');
                if (ending === 'gone') for (;;) yield '';
              } finally {
                counts.finallies++;
              }
            })();
          }
          if (kind === 'async generator') {
            return (async function* () {
              try {
                yield 'a';
                await Promise.resolve();
                if (ending === 'fail') throw new Error('async generator failed');
                if (ending === 'gone') for (;;) yield '';
              } finally {
                counts.finallies++;
              }
            })();
          }
          if (kind === 'close()') return new ClosingBody(ending, counts);
          const body = environ['torsion.async'];
          body.onClose(() => counts.onCloses++);
          body.put('a');
          if (ending === 'complete') body.finish();
          if (ending === 'fail') setImmediate(() => body.fail(new Error('failed')));
          return body;
        };
        const server = await serveApp(app);
        try {
          const client = new RawClient(server.portNumber);
          client.write(GET('/app'));
          if (ending === 'complete') {
            const [r] = await client.responses(['GET']);
            assert.equal(r!.body.toString(), 'a');
          } else if (ending === 'fail') {
            await client.untilEnded();
          } else {
            await client.until(() => client.data().includes('\r\na\r\n'));
            // A reset: gone for sure (a FIN alone is a half-close, which HTTP allows).
            client.socket.resetAndDestroy();
          }
          await client.close();
          const total = (): number =>
            counts.finallies + counts.closes + counts.returns + counts.onCloses;
          await until(() => total() > 0, 'a cleanup');
          await until(() => server.site.channels.size === 0, 'the connection closed');
          await turns(10);
          if (kind === 'generator' || kind === 'async generator') {
            assert.equal(counts.finallies, 1, 'finally ran once');
          }
          if (kind === 'close()') {
            assert.equal(counts.closes, 1, 'close() once');
            assert.equal(counts.iteratorCloses, 1, "the iterator's close() once");
            // return() only for an iterator left before its end (not one that ended or threw).
            assert.equal(counts.returns, ending === 'gone' ? 1 : 0, 'return()');
          }
          if (kind === 'AsyncBody') assert.equal(counts.onCloses, 1, 'onClose once');
        } finally {
          log.stop();
          await server.close();
        }
      });
    }
  }
});

describe('app gateway: close() when the app answers after the client left', () => {
  test('an async app resolving after a reset: its body is closed once, never iterated', async () => {
    const gate = new Deferred<void>();
    let closes = 0;
    let iterated = false;
    let called = false;
    const server = await serveApp(async (_environ, startResponse) => {
      called = true;
      await gate;
      startResponse('200 OK', []);
      return {
        [Symbol.iterator]: () => {
          iterated = true;
          return [][Symbol.iterator]();
        },
        close: () => {
          closes++;
        },
      };
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/app'));
      await until(() => called, 'the app was called');
      client.socket.resetAndDestroy();
      await until(() => server.site.channels.size === 0, 'the connection closed');
      gate.callback(undefined);
      await until(() => closes > 0, 'close()');
      await turns(5);
      assert.equal(closes, 1);
      assert.equal(iterated, false);
    } finally {
      await server.close();
    }
  });

  test('without a socket: a DummyRequest renders an app', async () => {
    const request = new DummyRequest({ uri: '/a/b?q=1', method: 'POST', body: 'hello' });
    await render(
      new AppResource(async (environ, startResponse) => {
        let n = 0;
        for await (const piece of environ['wsgi.input']) n += piece.length;
        startResponse('200 OK', [['X-Seen', String(n)]]);
        return [`${environ.REQUEST_METHOD} ${environ.PATH_INFO} ${environ.QUERY_STRING}`];
      }),
      request,
    );
    assert.equal(request.responseCode, 200);
    assert.equal(request.responseHeaders.get('x-seen'), '5');
    assert.equal(request.writtenText(), 'POST /a/b q=1');
  });
});

// ---------------------------------------------------------------------- HEAD, wsgi.errors

describe('app gateway: HEAD and wsgi.errors', () => {
  test('HEAD: a producer that puts while writable is paused between turns, never spins', async () => {
    let pauses = 0;
    let put = 0;
    const total = 8 * 1024 * 1024;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      const piece = Buffer.alloc(64 * 1024, 0x61);
      let paused = false;
      const pump = (): void => {
        while (!paused && put < total) {
          body.put(piece);
          put += piece.length;
        }
        if (put >= total) {
          body.unregisterProducer();
          body.finish();
        }
      };
      body.registerProducer(
        {
          pauseProducing: () => {
            paused = true;
            pauses++;
          },
          resumeProducing: () => {
            paused = false;
            setImmediate(pump);
          },
          stopProducing: () => {
            paused = true;
          },
        },
        true,
      );
      pump();
      return body;
    });
    try {
      const r = await fetchOne(server.portNumber, requestHead('HEAD', '/app'), 'HEAD');
      assert.equal(r.status, 200);
      assert.equal(header(r, 'content-length'), String(total));
      assert.equal(r.body.length, 0);
      assert.equal(put, total);
      assert.equal(pauses > 0, true, 'the producer was paused between turns');
    } finally {
      await server.close();
    }
  });

  test("wsgi.errors: lines go to the reactor's log", async () => {
    const log = new LogCapture();
    const server = await serveApp((environ, startResponse) => {
      const errors = environ['wsgi.errors'];
      errors.write('first line\nsecond ');
      errors.write(Buffer.from('line\n'));
      errors.writelines(['a\n', 'b\n']);
      errors.write('partial');
      startResponse('200 OK', []);
      return ['logged'];
    });
    try {
      const r = await fetchOne(server.portNumber, GET('/app/x'));
      assert.equal(r.body.toString(), 'logged');
      await until(() => log.messages().some((m) => m.endsWith('partial')), 'the partial line');
      const lines = log.messages().filter((m) => m.startsWith('wsgi.errors (GET /app/x): '));
      assert.deepEqual(
        lines.map((m) => m.slice('wsgi.errors (GET /app/x): '.length)),
        ['first line', 'second line', 'a', 'b', 'partial'],
      );
    } finally {
      log.stop();
      await server.close();
    }
  });

  test('AppResource checks its arguments', () => {
    assert.throws(() => new AppResource('nope' as unknown as App), /app must be a function/);
    assert.throws(() => new AppResource(dumpEnviron, { inputTimeout: -1 }), /inputTimeout/);
    assert.throws(() => new AppResource(dumpEnviron, { backoff: { initial: 0 } }), /initial/);
    assert.throws(
      () => new AppResource(dumpEnviron, { backoff: { initial: 0.05, max: 0.01 } }),
      /backoff.max/,
    );
    assert.throws(() => new AppResource(dumpEnviron, { maxLineLength: 0 }), /maxLineLength/);
    assert.equal(new AppResource(dumpEnviron).isLeaf, true);
    assert.equal(new AppResource(dumpEnviron) instanceof Resource, true);
  });
});
