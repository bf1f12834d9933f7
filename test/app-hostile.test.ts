/**
 * The app gateway against odd, hostile or careless input, over real
 * sockets: request targets in the environ (absolute-form, `%2F`, an empty
 * query, an IPv6 `Host`, repeated fields); a malformed `Content-Length` in
 * `startResponse`; a body short of its declared length; bodies that are a
 * string, bytes, or not a body at all; exceptions thrown by `onGet`,
 * `onError`, `onDrain` and producer callbacks; `put()` after `finish()`;
 * `onGet`/`read()` after the end of the input and after a break;
 * `100-continue` answered without reading; pipelined requests; and apps that
 * never finish while the client goes away (no timer, socket or hook left).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import type { IPushProducer, IReactorTime } from '../src/reactor/interfaces.js';
import {
  AppProtocolError,
  type AsyncBody,
  BrokenPipeError,
  type Environ,
  type InputStream,
} from '../src/web/app.js';
import type { IRequestBody } from '../src/web/iweb.js';
import {
  chunked,
  header,
  LogCapture,
  RawClient,
  requestHead,
  serveApp,
  turns,
  until,
} from './app-helpers.js';

/** Sends `raw` on a new connection and returns the responses to `methods`. */
async function exchange(port: number, raw: string, methods: string[]) {
  const client = new RawClient(port);
  client.write(raw);
  const responses = await client.responses(methods);
  await client.close();
  assert.equal(responses.length, methods.length, 'every response came');
  return responses;
}

/** The environ's string values as JSON. */
function strings(environ: Environ): string {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(environ)) {
    if (typeof value === 'string') out[key] = value;
  }
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------- environ

describe('app gateway, hostile input: the environ', () => {
  test('absolute-form target, %2F, an empty query, an IPv6 Host, repeated fields', async () => {
    const server = await serveApp((environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/json']]);
      return [strings(environ)];
    });
    try {
      const env = async (raw: string): Promise<Record<string, string>> => {
        const [r] = await exchange(server.portNumber, raw, ['GET']);
        assert.equal(r!.status, 200, raw);
        return JSON.parse(r!.body.toString()) as Record<string, string>;
      };
      // RFC 9112 §3.2.2: the target's authority, not Host, names the server.
      const absolute = await env(
        'GET http://example.com:81/app/x?y=1 HTTP/1.1\r\nHost: test\r\n\r\n',
      );
      assert.equal(absolute.SERVER_NAME, 'example.com');
      assert.equal(absolute.SCRIPT_NAME, '/app');
      assert.equal(absolute.PATH_INFO, '/x');
      assert.equal(absolute.QUERY_STRING, 'y=1');
      assert.equal(absolute.REQUEST_URI, 'http://example.com:81/app/x?y=1');
      // PATH_INFO is decoded (as every WSGI server does); REQUEST_URI keeps what was sent.
      const slash = await env(requestHead('GET', '/app/a%2Fb/c%25d'));
      assert.equal(slash.PATH_INFO, '/a/b/c%d');
      assert.equal(slash.REQUEST_URI, '/app/a%2Fb/c%25d');
      const emptyQuery = await env(requestHead('GET', '/app?'));
      assert.equal(emptyQuery.PATH_INFO, '');
      assert.equal(emptyQuery.QUERY_STRING, '');
      const v6 = await env(
        'GET /app/v6 HTTP/1.1\r\nHost: [::1]:8080\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\ncookie: b=2\r\n\r\n',
      );
      assert.equal(v6.SERVER_NAME, '[::1]');
      assert.equal(v6.HTTP_HOST, '[::1]:8080');
      assert.equal(v6.HTTP_X_A, '1, 2', 'fields repeated in any case are joined');
      assert.equal(v6.HTTP_COOKIE, 'a=1; b=2');
      assert.equal(v6.SERVER_PORT, String(server.portNumber));
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- the head and its length

describe('app gateway, hostile input: Content-Length', () => {
  test('startResponse refuses a malformed or repeated Content-Length (AppProtocolError)', async () => {
    const seen: string[] = [];
    const server = await serveApp((_environ, startResponse) => {
      for (const headers of [
        [['Content-Length', 'abc']],
        [['Content-Length', ' 5']],
        [['Content-Length', '-1']],
        [['Content-Length', '1e3']],
        [
          ['Content-Length', '5'],
          ['content-length', '5'],
        ],
      ] as [string, string][][]) {
        try {
          startResponse('200 OK', headers);
          seen.push('accepted');
        } catch (e) {
          seen.push(e instanceof AppProtocolError ? e.code : String(e));
        }
      }
      startResponse('200 OK', [['Content-Length', '5']]);
      return ['fine!'];
    });
    try {
      const [r] = await exchange(server.portNumber, requestHead('GET', '/app'), ['GET']);
      assert.deepEqual(seen, Array(5).fill('TORSION_ERR_APP_PROTOCOL'));
      assert.deepEqual(r!.headers.get('content-length'), ['5']);
      assert.equal(r!.body.toString(), 'fine!');
    } finally {
      await server.close();
    }
  });

  test('a body short of its Content-Length: 500 if nothing went out, else aborted; HEAD and 304 may declare one', async () => {
    const log = new LogCapture();
    const server = await serveApp((environ, startResponse) => {
      switch (environ.PATH_INFO) {
        case '/empty':
          startResponse('200 OK', [['Content-Length', '5']]);
          return [];
        case '/short':
          startResponse('200 OK', [['Content-Length', '10']]);
          return (function* () {
            yield 'abc';
            yield ''; // a back-off: 'abc' is written before the end
          })();
        case '/not-modified':
          startResponse('304 Not Modified', [['Content-Length', '100']]);
          return [];
        default:
          startResponse('200 OK', [['Content-Length', '100']]);
          return [];
      }
    });
    try {
      const [empty] = await exchange(server.portNumber, requestHead('GET', '/app/empty'), ['GET']);
      assert.equal(empty!.status, 500);
      const client = new RawClient(server.portNumber);
      client.write(requestHead('GET', '/app/short'));
      await client.untilEnded();
      const text = client.data().toString('latin1');
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      assert.equal(body.length < 10, true, `truncated, never complete-looking: ${text}`);
      await client.close();
      const [head, notModified] = await exchange(
        server.portNumber,
        requestHead('HEAD', '/app/head') + requestHead('GET', '/app/not-modified'),
        ['HEAD', 'GET'],
      );
      assert.equal(head!.status, 200);
      assert.equal(header(head!, 'content-length'), '100', "a HEAD names the GET's length");
      assert.equal(notModified!.status, 304);
      const short = log.errors().filter((m) => m.includes('short of its Content-Length'));
      assert.equal(short.length, 2, log.errors().join('\n'));
    } finally {
      log.stop();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- odd bodies

describe('app gateway, hostile input: what the app returns', () => {
  test('a string, a Buffer or a Uint8Array is the whole body; anything else is a 500, and the connection goes on', async () => {
    const log = new LogCapture();
    const bodies: Record<string, unknown> = {
      string: 'a string é',
      buffer: Buffer.from('a buffer'),
      u8: new Uint8Array([0x41, 0x42]),
      null: null,
      undefined: undefined,
      object: { a: 1 },
      function: function* () {
        yield 'never called';
      },
      map: new Map([['a', 'b']]),
      'array-number': ['fine', 5],
      'iterator-number': { [Symbol.iterator]: () => ({ next: () => 5 }) },
      'iterator-throws': {
        [Symbol.iterator]: () => {
          throw new Error('no iterator for you');
        },
      },
    };
    const server = await serveApp((environ, startResponse) => {
      startResponse('200 OK', []);
      return bodies[environ.PATH_INFO.slice(1)] as string[];
    });
    try {
      const names = Object.keys(bodies);
      const client = new RawClient(server.portNumber);
      // All on one connection, pipelined.
      client.write(names.map((name) => requestHead('GET', `/app/${name}`)).join(''));
      const responses = await client.responses(names.map(() => 'GET'));
      assert.equal(responses.length, names.length);
      const byName = new Map(names.map((name, i) => [name, responses[i]!]));
      assert.equal(byName.get('string')!.body.toString(), 'a string é');
      assert.equal(header(byName.get('string')!, 'content-length'), '11');
      assert.equal(byName.get('buffer')!.body.toString(), 'a buffer');
      assert.equal(byName.get('u8')!.body.toString(), 'AB');
      assert.equal(header(byName.get('u8')!, 'content-length'), '2');
      for (const name of names.slice(3)) {
        assert.equal(byName.get(name)!.status, 500, name);
        assert.equal(byName.get(name)!.body.toString(), 'Internal Server Error\n', name);
      }
      assert.equal(client.ended, false, 'the connection is kept');
      await client.close();
      const errors = log.errors();
      assert.equal(errors.length, names.length - 3, errors.join('\n'));
      for (const needle of [
        'the app returned null',
        'the app returned undefined',
        'the app returned an object (Object)',
        'the app returned function',
        'the body yielded an array',
        'the app returned an array holding number',
        "the body's iterator returned number",
        'no iterator for you',
      ]) {
        assert.equal(
          errors.some((m) => m.includes(needle)),
          true,
          `${needle} in ${errors.join('\n')}`,
        );
      }
    } finally {
      log.stop();
      await server.close();
    }
  });

  test('put() after finish() throws AppProtocolError, then and after the response; the response is intact', async () => {
    const thrown: string[] = [];
    let late: (() => void) | null = null;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      body.put('x');
      body.finish();
      body.finish(); // idempotent
      const tryPut = (): void => {
        try {
          body.put('y');
          thrown.push('nothing');
        } catch (e) {
          thrown.push(e instanceof AppProtocolError ? e.code : String(e));
        }
      };
      tryPut();
      late = tryPut;
      return body;
    });
    try {
      const [r] = await exchange(server.portNumber, requestHead('GET', '/app'), ['GET']);
      assert.equal(r!.body.toString(), 'x');
      late!();
      assert.deepEqual(thrown, ['TORSION_ERR_APP_PROTOCOL', 'TORSION_ERR_APP_PROTOCOL']);
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- callbacks that throw

describe('app gateway, hostile input: callbacks that throw', () => {
  test('onGet, onError, onDrain and producer callbacks: 500 before the head, abort after; logged once each', async () => {
    const log = new LogCapture();
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      const fail = (what: string) => (): void => {
        throw new Error(`thrown in ${what}`);
      };
      switch (environ.PATH_INFO) {
        case '/onget':
          body.onGet(10, fail('onGet'));
          break;
        case '/onerror':
          body.onGet(10, () => {}, fail('onError'));
          break;
        case '/ondrain':
          body.onDrain(fail('onDrain'));
          break;
        case '/pull':
          body.registerProducer(
            { resumeProducing: fail('resumeProducing'), stopProducing() {} },
            false,
          );
          break;
        case '/ondrain-after-head':
          startResponse('200 OK', []);
          body.put('head is out');
          body.onDrain(fail('onDrain after the head'));
          return body;
      }
      // Not reached by a 500 with these headers: startResponse's head is replaced.
      startResponse('200 OK', [['X-App', 'yes']]);
      return body;
    });
    try {
      const post = (path: string, rest: string): string =>
        requestHead('POST', path, 'Transfer-Encoding: chunked\r\n') + rest;
      const cases: [string, string][] = [
        ['onGet', post('/app/onget', chunked(['data']).toString())],
        // A malformed chunk size breaks the input: onError runs, and throws.
        ['onError', post('/app/onerror', 'zz\r\n')],
        ['onDrain', requestHead('GET', '/app/ondrain')],
        ['resumeProducing', requestHead('GET', '/app/pull')],
      ];
      for (const [what, raw] of cases) {
        const [r] = await exchange(server.portNumber, raw, [raw.slice(0, raw.indexOf(' '))]);
        assert.equal(r!.status, 500, what);
        assert.equal(header(r!, 'x-app'), undefined, `${what}: the app's head was replaced`);
      }
      const client = new RawClient(server.portNumber);
      client.write(requestHead('GET', '/app/ondrain-after-head'));
      await client.untilEnded();
      const text = client.data().toString('latin1');
      assert.equal(text.includes('0\r\n\r\n'), false, `aborted, never complete-looking: ${text}`);
      await client.close();
      await turns(5);
      const errors = log.errors();
      for (const what of ['onGet', 'onError', 'onDrain', 'resumeProducing']) {
        const matching = errors.filter(
          (m) => m.includes(`thrown in ${what}\n`) || m.endsWith(`thrown in ${what}`),
        );
        assert.equal(matching.length, 1, `${what} logged once: ${errors.join('\n')}`);
      }
      assert.equal(
        errors.filter((m) => m.includes('thrown in onDrain after the head')).length,
        1,
        errors.join('\n'),
      );
    } finally {
      log.stop();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- input edges

describe('app gateway, hostile input: reading past the end, after a break', () => {
  test('onGet and read() after the end of the input: an empty Buffer each time', async () => {
    const server = await serveApp(async (environ, startResponse) => {
      const body = environ['torsion.async'];
      const input = environ['wsgi.input'];
      const seen: number[] = [];
      const get = (): Promise<number> =>
        new Promise((resolve) => body.onGet(10, (data) => resolve(data.length)));
      for (let i = 0; i < 4; i++) seen.push(await get());
      for (let i = 0; i < 2; i++) seen.push((await input.read()).length);
      seen.push((await input.readline()).length);
      startResponse('200 OK', []);
      return [JSON.stringify(seen)];
    });
    try {
      const [r] = await exchange(
        server.portNumber,
        `${requestHead('POST', '/app', 'Content-Length: 3\r\n')}abc`,
        ['POST'],
      );
      assert.equal(r!.body.toString(), '[3,0,0,0,0,0,0]');
    } finally {
      await server.close();
    }
  });

  test('a client gone while no read is pending: the kept bytes, then BrokenPipeError, never an end', async () => {
    let body: AsyncBody | null = null;
    let input: InputStream | null = null;
    let requestBody: IRequestBody | null = null;
    const server = await serveApp((environ, startResponse) => {
      body = environ['torsion.async'];
      input = environ['wsgi.input'];
      requestBody = environ['torsion.request'].bodyStream();
      startResponse('200 OK', []);
      return body;
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(`${requestHead('POST', '/app', 'Content-Length: 1000\r\n')}abc`);
      await until(() => body !== null, 'the app ran');
      await until(() => requestBody!.received >= 3, 'the first bytes arrived');
      client.socket.destroy();
      await client.close();
      await until(() => server.site.channels.size === 0, 'the connection closed');
      const seen: string[] = [];
      const note = (p: Promise<Buffer>): Promise<void> =>
        p.then(
          (data) => {
            seen.push(`data ${data.length}`);
          },
          (e: unknown) => {
            seen.push(e instanceof BrokenPipeError ? e.code : String(e));
          },
        );
      await note(input!.read());
      await note(input!.read());
      await note(input!.readline());
      await new Promise<void>((resolve) =>
        body!.onGet(
          10,
          (data) => {
            seen.push(`onGet ${data.length}`);
            resolve();
          },
          (e) => {
            seen.push(`onError ${e instanceof BrokenPipeError ? e.code : String(e)}`);
            resolve();
          },
        ),
      );
      assert.deepEqual(seen, [
        'data 3',
        'TORSION_ERR_APP_BROKEN_PIPE',
        'TORSION_ERR_APP_BROKEN_PIPE',
        'onError TORSION_ERR_APP_BROKEN_PIPE',
      ]);
    } finally {
      await server.close();
    }
  });

  test('Expect: 100-continue answered without reading: no 100, and the unread body is not taken as a request', async () => {
    const server = await serveApp((_environ, startResponse) => {
      startResponse('200 OK', []);
      return ['answered without reading'];
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Content-Length: 5\r\nExpect: 100-continue\r\n'));
      const [r] = await client.responses(['POST']);
      assert.equal(r!.status, 200);
      assert.equal(r!.body.toString(), 'answered without reading');
      assert.doesNotMatch(client.data().toString('latin1'), /100 Continue/);
      // The client sends its body anyway, then a request: the server either
      // closed the connection or skips those 5 bytes; it never parses them.
      client.write(`abcde${requestHead('GET', '/app/next')}`);
      const [, next] = await client.responses(['POST', 'GET']);
      if (next !== undefined) assert.equal(next.status, 200, 'the next request, not the body');
      else assert.equal(client.ended, true, 'closed instead');
      await client.close();
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- pipelining

describe('app gateway, hostile input: pipelining', () => {
  test('pipelined requests: answered in order, unread bodies skipped, the connection kept', async () => {
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      const path = environ.PATH_INFO;
      if (path === '/throw') throw new Error('pipelined failure');
      if (path === '/count') {
        let total = 0;
        const more = (data: Buffer): void => {
          if (data.length > 0) {
            total += data.length;
            body.onGet(4, more);
            return;
          }
          startResponse('200 OK', []);
          body.put(`count ${total}`);
          body.finish();
        };
        body.onGet(4, more);
        return body;
      }
      startResponse('200 OK', []);
      // Answers after a delay, so later requests wait their turn.
      setTimeout(
        () => {
          body.put(`${environ.REQUEST_METHOD} ${path}`);
          body.finish();
        },
        path === '/slow' ? 20 : 0,
      );
      return body;
    });
    const log = new LogCapture();
    try {
      const client = new RawClient(server.portNumber);
      client.write(
        requestHead('GET', '/app/slow') +
          `${requestHead('POST', '/app/unread', 'Content-Length: 5\r\n')}abcde` +
          requestHead('GET', '/app/throw') +
          requestHead('POST', '/app/count', 'Transfer-Encoding: chunked\r\n') +
          chunked(['0123456789', 'ab']).toString('latin1') +
          requestHead('GET', '/app/last'),
      );
      const responses = await client.responses(['GET', 'POST', 'GET', 'POST', 'GET']);
      assert.deepEqual(
        responses.map((r) => `${r.status} ${r.body.toString()}`),
        [
          '200 GET /slow',
          '200 POST /unread',
          '500 Internal Server Error\n',
          '200 count 12',
          '200 GET /last',
        ],
      );
      assert.equal(client.ended, false, 'the connection stays open');
      await client.close();
    } finally {
      log.stop();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------- nothing leaks

describe('app gateway, hostile input: apps that never finish', () => {
  test('the client resets: hooks run once, producers stop, no timer or socket is left, late puts are dropped', async () => {
    const clock = new Clock();
    const closes = new Map<string, number>();
    const stops: string[] = [];
    const bodiesSeen = new Map<string, AsyncBody>();
    const server = await serveApp(
      (environ, startResponse) => {
        const path = environ.PATH_INFO;
        const body = environ['torsion.async'];
        bodiesSeen.set(path, body);
        body.onClose(() => closes.set(path, (closes.get(path) ?? 0) + 1));
        startResponse('200 OK', []);
        switch (path) {
          case '/reading': // an onGet pending: the input timer is armed
            body.onGet(
              100,
              () => {},
              () => {},
            );
            return body;
          case '/backing-off': // a middleware with nothing yet: the back-off timer is armed
            return (function* () {
              for (;;) yield '';
            })();
          case '/producing': {
            const producer: IPushProducer = {
              pauseProducing() {},
              resumeProducing() {},
              stopProducing() {
                stops.push(path);
              },
            };
            body.registerProducer(producer, true);
            body.put('started');
            return body;
          }
          default: // waits for nothing at all
            return body;
        }
      },
      { reactor: clock as IReactorTime, inputTimeout: 30 },
    );
    try {
      const paths = ['/reading', '/backing-off', '/producing', '/idle'];
      for (const path of paths) {
        const client = new RawClient(server.portNumber);
        client.write(requestHead('POST', `/app${path}`, 'Content-Length: 100\r\n'));
        await until(() => bodiesSeen.has(path), `${path}: the app ran`);
        await turns(5);
        if (path === '/reading' || path === '/backing-off') {
          assert.equal(clock.getDelayedCalls().length, 1, `${path}: a timer while it waits`);
        }
        client.socket.resetAndDestroy();
        await until(() => server.site.channels.size === 0, `${path}: the connection closed`);
        await turns(5);
        assert.equal(clock.getDelayedCalls().length, 0, `${path}: no timer left`);
        assert.equal(closes.get(path), 1, `${path}: onClose once`);
        const body = bodiesSeen.get(path)!;
        assert.equal(body.closed, true);
        assert.equal(body.writable, false);
        body.put('too late'); // dropped: the client is gone
        body.finish();
      }
      assert.deepEqual(stops, ['/producing']);
      for (let i = 0; i < 100; i++) clock.advance(1);
      assert.equal(
        [...closes.values()].every((n) => n === 1),
        true,
        'no hook ran twice',
      );
    } finally {
      await server.close();
    }
  });
});
