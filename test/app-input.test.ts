/**
 * The app gateway's input over real sockets: chunked uploads without a
 * Content-Length read to the end through `onGet`, `wsgi.input.read()`,
 * async iteration and `readline()`; the seed's flag (a generator yielding
 * '' until its `onGet` callback has data); the `length` hint; one-shot `onGet`
 * and one read at a time; a client that aborts mid-upload (`onError`,
 * `BrokenPipeError`); the input timeout on a `Clock`; `InputReplacedError`;
 * `100 Continue` on the first read; and input flow control by counts (the
 * server stops reading at ~64 KiB while no `onGet` or `read()` is pending,
 * and the client's writes back up).
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { ConnectionLost } from '../src/reactor/errors.js';
import type { IAddress, IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import {
  type App,
  AppResource,
  type AsyncApp,
  type AsyncBody,
  BrokenPipeError,
  InputBusyError,
  InputReplacedError,
  type InputStream,
  LineTooLongError,
} from '../src/web/app.js';
import type { HTTPChannel } from '../src/web/http/channel.js';
import type { IRequestBody } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import { Site } from '../src/web/site.js';
import {
  chunked,
  header,
  LogCapture,
  RawClient,
  requestHead,
  serveApp,
  sha256,
  turns,
  until,
} from './app-helpers.js';

/** Answers `"<bytes> <sha256>"` once it has read the whole body through `onGet(length)`. */
function onGetCounter(length: number, sizes: number[] = []): App {
  return (environ, startResponse) => {
    const body = environ['torsion.async'];
    const hash = createHash('sha256');
    let total = 0;
    const more = (data: Buffer): void => {
      if (data.length === 0) {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        body.put(`${total} ${hash.digest('hex')}`);
        body.finish();
        return;
      }
      sizes.push(data.length);
      total += data.length;
      hash.update(data);
      body.onGet(length, more);
    };
    body.onGet(length, more);
    return body;
  };
}

/** Reads the whole input with `read(size)` and answers the same way. */
const readCounter =
  (size?: number, sizes: number[] = []): AsyncApp =>
  async (environ, startResponse) => {
    const input = environ['wsgi.input'];
    const hash = createHash('sha256');
    let total = 0;
    for (;;) {
      const data = await input.read(size);
      if (data.length === 0) break;
      sizes.push(data.length);
      total += data.length;
      hash.update(data);
    }
    startResponse('200 OK', []);
    return [`${total} ${hash.digest('hex')}`];
  };

/** Writes `pieces` a few turns apart (a body that arrives over time). */
async function trickle(client: RawClient, pieces: Buffer[]): Promise<void> {
  for (const piece of pieces) {
    client.write(piece);
    await turns(3);
  }
}

describe('app gateway input: reading to the end', () => {
  const pieces = [randomBytes(1000), randomBytes(70_000), randomBytes(3), randomBytes(200_000)];
  const all = Buffer.concat(pieces);
  const expected = `${all.length} ${sha256(all)}`;
  const apps: [string, App | AsyncApp][] = [
    ['onGet', onGetCounter(65536)],
    ['wsgi.input.read()', readCounter()],
    [
      'async iteration of wsgi.input',
      async (environ, startResponse) => {
        const hash = createHash('sha256');
        let total = 0;
        for await (const data of environ['wsgi.input']) {
          total += data.length;
          hash.update(data);
        }
        startResponse('200 OK', []);
        return [`${total} ${hash.digest('hex')}`];
      },
    ],
  ];
  for (const [name, app] of apps) {
    test(`a chunked upload with no Content-Length, read to the end with ${name}`, async () => {
      const server = await serveApp(app);
      try {
        const client = new RawClient(server.portNumber);
        client.write(requestHead('POST', '/app', 'Transfer-Encoding: chunked\r\n'));
        const body = chunked(pieces);
        // Split anywhere, arriving over several turns.
        await trickle(client, [
          body.subarray(0, 7),
          body.subarray(7, 80_000),
          body.subarray(80_000),
        ]);
        const [r] = await client.responses(['POST']);
        assert.equal(r!.status, 200);
        assert.equal(r!.body.toString(), expected);
        await client.close();
      } finally {
        await server.close();
      }
    });
  }

  test("the seed's flag: a generator yields '' until its onGet callback has data; the server backs off meanwhile", async () => {
    let polls = 0;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      return (function* () {
        let ready: Buffer | null = null;
        const got = (data: Buffer): void => {
          ready = data;
        };
        body.onGet(1 << 16, got);
        for (;;) {
          polls++;
          if (ready === null) {
            yield ''; // nothing yet
            continue;
          }
          const data: Buffer = ready;
          if (data.length === 0) return;
          ready = null;
          body.onGet(1 << 16, got);
          yield data.toString().toUpperCase();
        }
      })();
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Transfer-Encoding: chunked\r\n'));
      for (const piece of ['one ', 'two ', 'three']) {
        await new Promise((r) => setTimeout(r, 30));
        client.write(chunked([piece]).subarray(0, -5)); // the piece, not the last chunk
      }
      client.write('0\r\n\r\n');
      const [r] = await client.responses(['POST']);
      assert.equal(r!.body.toString(), 'ONE TWO THREE');
      // ~100 ms of waiting: a busy loop polls thousands of times; the back-off
      // (1 ms doubling to 100 ms) about ten per piece, or ten a second if the machine stalls.
      assert.equal(polls < 500, true, `${polls} polls`);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('readline(): lines with their LF, a last line without one, then empty', async () => {
    const lines: string[] = [];
    const server = await serveApp(async (environ, startResponse) => {
      const input = environ['wsgi.input'];
      for (;;) {
        const line = await input.readline();
        lines.push(line.toString());
        if (line.length === 0) break;
      }
      startResponse('200 OK', []);
      return ['done'];
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Transfer-Encoding: chunked\r\n'));
      await trickle(client, [chunked(['one\ntw', 'o\n\nthr', 'ee'])]);
      await client.responses(['POST']);
      assert.deepEqual(lines, ['one\n', 'two\n', '\n', 'three', '']);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('readline(size) returns pieces of a long line; past maxLineLength: LineTooLongError, bytes kept', async () => {
    const seen: string[] = [];
    const server = await serveApp(
      async (environ, startResponse) => {
        const input = environ['wsgi.input'];
        seen.push((await input.readline(4)).toString());
        seen.push((await input.readline(4)).toString());
        try {
          await input.readline();
        } catch (e) {
          seen.push(e instanceof LineTooLongError ? 'too long' : String(e));
        }
        // The bytes of the long line are still there.
        seen.push((await input.read(5)).toString());
        startResponse('200 OK', []);
        return ['ok'];
      },
      { maxLineLength: 8 },
    );
    try {
      const client = new RawClient(server.portNumber);
      const text = 'abcdef\n0123456789abc\n';
      client.write(`${requestHead('POST', '/app', `Content-Length: ${text.length}\r\n`)}${text}`);
      await client.responses(['POST']);
      assert.deepEqual(seen, ['abcd', 'ef\n', 'too long', '01234']);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('the length hint: no onGet callback or read() gets more than it asked', async () => {
    const data = randomBytes(150_000);
    const getSizes: number[] = [];
    const readSizes: number[] = [];
    for (const [app, limit, sizes] of [
      [onGetCounter(1000, getSizes), 1000, getSizes],
      [readCounter(777, readSizes), 777, readSizes],
    ] as const) {
      const server = await serveApp(app);
      try {
        const client = new RawClient(server.portNumber);
        client.write(requestHead('POST', '/app', `Content-Length: ${data.length}\r\n`));
        client.write(data);
        const [r] = await client.responses(['POST']);
        assert.equal(r!.body.toString(), `${data.length} ${sha256(data)}`);
        assert.equal(Math.max(...sizes) <= limit, true, `largest piece ${Math.max(...sizes)}`);
        assert.equal(sizes.length >= Math.ceil(data.length / limit), true);
        await client.close();
      } finally {
        await server.close();
      }
    }
  });
});

describe('app gateway input: one-shot onGet, one read at a time', () => {
  test('a second onGet (or a read) while one is pending throws; no callback without a new onGet', async () => {
    let body: AsyncBody | null = null;
    let input: InputStream | null = null;
    let calls = 0;
    const errors: string[] = [];
    const got: string[] = [];
    const server = await serveApp((environ, startResponse) => {
      body = environ['torsion.async'];
      input = environ['wsgi.input'];
      startResponse('200 OK', []);
      body.onGet(100, (data) => {
        calls++;
        got.push(data.toString());
      });
      try {
        body.onGet(100, () => {});
      } catch (e) {
        errors.push(e instanceof InputBusyError ? 'busy' : String(e));
      }
      input.read().then(
        () => errors.push('read resolved'),
        (e: unknown) => errors.push(e instanceof InputBusyError ? 'read busy' : String(e)),
      );
      return body;
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Content-Length: 10\r\n'));
      await until(() => body !== null, 'the app ran');
      client.write('first');
      await until(() => calls === 1, 'the first callback');
      client.write('again');
      await turns(30);
      assert.equal(calls, 1, 'one-shot: no second callback without a second onGet');
      assert.deepEqual(errors, ['busy', 'read busy']);
      body!.onGet(100, (data) => {
        calls++;
        got.push(data.toString());
        body!.onGet(100, (end) => {
          got.push(`end:${end.length}`);
          body!.put('done');
          body!.finish();
        });
      });
      const [r] = await client.responses(['POST']);
      assert.equal(r!.body.toString(), 'done');
      assert.deepEqual(got, ['first', 'again', 'end:0']);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('onGet returns at once: the callback never runs inside it, even with data buffered', async () => {
    const order: string[] = [];
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      // The whole body is buffered by the time the app asks.
      setTimeout(() => {
        body.onGet(3, (data) => {
          order.push(`callback ${data.toString()}`);
          body.onGet(100, (rest) => {
            order.push(`callback ${rest.toString()}`);
            body.finish();
          });
          order.push('second onGet returned');
        });
        order.push('onGet returned');
      }, 20);
      return body;
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(`${requestHead('POST', '/app', 'Content-Length: 6\r\n')}abcdef`);
      await client.responses(['POST']);
      assert.deepEqual(order, [
        'onGet returned',
        'callback abc',
        'second onGet returned',
        'callback def',
      ]);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('Expect: 100-continue: the 100 goes out when the app first asks for input', async () => {
    let ask: (() => void) | null = null;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      ask = () =>
        body.onGet(100, (data) => {
          body.put(`got ${data.toString()}`);
          body.finish();
        });
      return body;
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Content-Length: 2\r\nExpect: 100-continue\r\n'));
      await until(() => ask !== null, 'the app ran');
      await turns(10);
      assert.equal(client.received, 0, 'no 100 before the app asks');
      ask!();
      await client.until(() => client.data().toString().startsWith('HTTP/1.1 100 Continue'));
      client.write('hi');
      const [r] = await client.responses(['POST']);
      assert.equal(r!.body.toString(), 'got hi');
      await client.close();
    } finally {
      await server.close();
    }
  });
});

describe('app gateway input: broken input', () => {
  test('a client that aborts mid-upload: onError(BrokenPipeError), read() rejects, onClose once', async () => {
    const failures: unknown[] = [];
    let closes = 0;
    let started = 0;
    const log = new LogCapture();
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', []);
      body.onClose(() => closes++);
      started++;
      if (environ.PATH_INFO === '/read') {
        void (async () => {
          try {
            for (;;) if ((await environ['wsgi.input'].read()).length === 0) break;
            failures.push('read reached an end');
          } catch (e) {
            failures.push(e);
          }
        })();
        return body;
      }
      if (environ.PATH_INFO === '/unheard') {
        const more = (data: Buffer): void => {
          if (data.length > 0) body.onGet(1 << 16, more);
        };
        body.onGet(1 << 16, more);
        return body;
      }
      const more = (data: Buffer): void => {
        if (data.length === 0) failures.push('onGet reached an end');
        else body.onGet(1 << 16, more, (e) => failures.push(e));
      };
      body.onGet(1 << 16, more, (e) => failures.push(e));
      return body;
    });
    try {
      for (const path of ['/app/onget', '/app/read', '/app/unheard']) {
        const before = failures.length;
        const client = new RawClient(server.portNumber);
        client.write(requestHead('POST', path, 'Content-Length: 1000000\r\n'));
        client.write(randomBytes(5000));
        await until(() => started > 0, 'the app ran');
        await turns(5);
        client.socket.destroy();
        await client.close();
        await until(() => server.site.channels.size === 0, 'the connection closed');
        if (path !== '/app/unheard') {
          await until(() => failures.length > before, `${path}: the failure reached the app`);
          const e = failures.at(-1);
          assert.equal(e instanceof BrokenPipeError, true, `${path}: got ${String(e)}`);
          assert.equal((e as BrokenPipeError).cause instanceof ConnectionLost, true);
          assert.equal((e as BrokenPipeError).code, 'TORSION_ERR_APP_BROKEN_PIPE');
        }
      }
      await turns(10);
      assert.equal(closes, 3, 'onClose once per request');
      assert.equal(failures.length, 2, 'no early end, no second failure');
      assert.deepEqual(log.errors(), [], 'a client going away is not an app error');
    } finally {
      log.stop();
      await server.close();
    }
  });

  test('the input timeout (a Clock): onError(BrokenPipeError) once a read waited inputTimeout', async () => {
    const clock = new Clock();
    let phase = '';
    let body: AsyncBody | null = null;
    const events: string[] = [];
    const server = await serveApp(
      (environ, startResponse) => {
        body = environ['torsion.async'];
        const b = body;
        b.onGet(100, (data) => {
          events.push(`data ${data.length}`);
          phase = 'got first';
        });
        startResponse('200 OK', []);
        return b;
      },
      { reactor: clock as IReactorTime, inputTimeout: 5 },
    );
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', 'Content-Length: 100\r\n'));
      client.write('0123456789');
      await until(() => phase === 'got first', 'the first piece');
      // The app takes its time before asking again: that does not count.
      clock.advance(60);
      body!.onGet(
        100,
        (data) => events.push(`data ${data.length}`),
        (e) => {
          events.push(
            `error ${e instanceof BrokenPipeError && e.timedOut ? 'timed out' : String(e)}`,
          );
          body!.put('gave up waiting');
          body!.finish();
        },
      );
      await turns(5);
      clock.advance(4.9);
      await turns(5);
      assert.deepEqual(events, ['data 10'], 'not yet');
      clock.advance(0.2);
      const [r] = await client.responses(['POST']);
      assert.deepEqual(events, ['data 10', 'error timed out']);
      assert.equal(r!.body.toString(), 'gave up waiting');
      assert.equal(header(r!, 'connection'), 'close', 'the rest of the body is never read');
      await client.untilEnded();
      await client.close();
      assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
    } finally {
      await server.close();
    }
  });

  test('the input timeout under read(), and under an onGet without onError (aborted, logged)', async () => {
    const clock = new Clock();
    const log = new LogCapture();
    const seen: unknown[] = [];
    let started = 0;
    const server = await serveApp(
      (environ, startResponse) => {
        started++;
        const body = environ['torsion.async'];
        body.onClose(() => seen.push('closed'));
        if (environ.PATH_INFO === '/read') {
          environ['wsgi.input'].read().then(
            () => seen.push('read resolved'),
            (e: unknown) => {
              seen.push(e);
              startResponse('408 Request Timeout', []);
              body.finish();
            },
          );
        } else {
          body.onGet(10, () => seen.push('data'));
        }
        return body;
      },
      { reactor: clock as IReactorTime, inputTimeout: 1 },
    );
    try {
      const a = new RawClient(server.portNumber);
      a.write(requestHead('POST', '/app/read', 'Content-Length: 10\r\n'));
      await until(() => started === 1, 'the app ran');
      await turns(3);
      clock.advance(1);
      const [r] = await a.responses(['POST']);
      assert.equal(r!.status, 408);
      assert.equal(seen[0] instanceof BrokenPipeError, true, String(seen[0]));
      await a.close();
      const b = new RawClient(server.portNumber);
      b.write(requestHead('POST', '/app/onget', 'Content-Length: 10\r\n'));
      await until(() => started === 2, 'the app ran');
      await turns(3);
      clock.advance(1);
      await b.untilEnded();
      assert.equal(b.received, 0, 'aborted: no response');
      await b.close();
      assert.deepEqual(seen.slice(1), ['closed', 'closed']);
      assert.equal(
        log.errors().some((m) => m.includes('no request body data for 1000 ms')),
        true,
        log.errors().join('\n'),
      );
    } finally {
      log.stop();
      await server.close();
    }
  });
});

describe('app gateway input: a broken input the app lets through', () => {
  const reader: AsyncApp = async (environ, startResponse) => {
    // No try/catch: the BrokenPipeError goes back to the gateway.
    for (;;) if ((await environ['wsgi.input'].read()).length === 0) break;
    startResponse('200 OK', []);
    return ['read it all'];
  };

  test('a timed-out input answers 408 and closes; a malformed body answers 400', async () => {
    const clock = new Clock();
    const log = new LogCapture();
    const server = await serveApp(reader, { reactor: clock as IReactorTime, inputTimeout: 2 });
    try {
      const slow = new RawClient(server.portNumber);
      slow.write(`${requestHead('POST', '/app', 'Content-Length: 10\r\n')}abc`);
      await turns(20);
      clock.advance(2);
      const [timedOut] = await slow.responses(['POST']);
      assert.equal(timedOut!.status, 408);
      assert.equal(header(timedOut!, 'connection'), 'close');
      await slow.untilEnded();
      await slow.close();
      const bad = new RawClient(server.portNumber);
      bad.write(
        `${requestHead('POST', '/app', 'Transfer-Encoding: chunked\r\n')}3\r\nabc\r\nzz\r\n`,
      );
      const [malformed] = await bad.responses(['POST']);
      assert.equal(malformed!.status, 400);
      await bad.untilEnded();
      await bad.close();
      assert.deepEqual(log.errors(), [], "the client's fault is not logged as an app error");
    } finally {
      log.stop();
      await server.close();
    }
  });
});

describe('app gateway input: middleware', () => {
  test('onGet after a middleware replaced wsgi.input throws InputReplacedError', async () => {
    /** A middleware's input: upper-cases what it reads. */
    class Upper implements InputStream {
      constructor(readonly inner: InputStream) {}
      async read(size?: number): Promise<Buffer> {
        return Buffer.from((await this.inner.read(size)).toString().toUpperCase());
      }
      async readline(size?: number): Promise<Buffer> {
        return Buffer.from((await this.inner.readline(size)).toString().toUpperCase());
      }
      async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
        for (;;) {
          const b = await this.read();
          if (b.length === 0) return;
          yield b;
        }
      }
    }
    const inner: App = (environ, startResponse) => {
      const body = environ['torsion.async'];
      let thrown = 'nothing';
      try {
        body.onGet(100, () => {});
      } catch (e) {
        thrown = e instanceof InputReplacedError ? e.code : String(e);
      }
      void environ['wsgi.input'].read().then((data) => {
        startResponse('200 OK', []);
        body.put(`${thrown} ${data.toString()}`);
        body.finish();
      });
      return body;
    };
    const middleware: App = (environ, startResponse) => {
      environ['wsgi.input'] = new Upper(environ['wsgi.input']);
      return inner(environ, startResponse);
    };
    const server = await serveApp(middleware);
    try {
      const client = new RawClient(server.portNumber);
      client.write(`${requestHead('POST', '/app', 'Content-Length: 5\r\n')}hello`);
      const [r] = await client.responses(['POST']);
      assert.equal(r!.body.toString(), 'TORSION_ERR_APP_INPUT_REPLACED HELLO');
      await client.close();
    } finally {
      await server.close();
    }
  });
});

describe('app gateway input: flow control by counts', () => {
  for (const reader of ['onGet', 'wsgi.input.read()'] as const) {
    test(`no read pending: the server stops at ~64 KiB and the client backs up; then ${reader} reads it all`, async () => {
      let delivered = 0;
      let body: AsyncBody | null = null;
      let input: InputStream | null = null;
      let requestBody: (IRequestBody & { buffered: number }) | null = null;
      let maxHeld = 0;
      const total = 16 * 1024 * 1024;
      const hash = createHash('sha256');
      const root = new Resource();
      root.putChild(
        'app',
        new AppResource((environ, startResponse) => {
          body = environ['torsion.async'];
          input = environ['wsgi.input'];
          requestBody = environ['torsion.request'].bodyStream() as IRequestBody & {
            buffered: number;
          };
          startResponse('200 OK', []);
          return body;
        }),
      );
      const site = new (class extends Site {
        override buildProtocol(addr: IAddress): HTTPChannel | null {
          const channel = super.buildProtocol(addr);
          if (channel !== null) {
            const original = channel.dataReceived.bind(channel);
            channel.dataReceived = (data: Buffer) => {
              delivered += data.length;
              original(data);
            };
          }
          return channel;
        }
      })(root, { accessLog: null });
      const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
      await port.whenListening();
      try {
        const client = new RawClient((port.getHost() as IPv4Address).port);
        client.write(requestHead('POST', '/app', `Content-Length: ${total}\r\n`));
        const data = randomBytes(total);
        const accepted = client.socket.write(data);
        await until(() => body !== null && delivered >= 64 * 1024, 'the first 64 KiB');
        // However long we wait, the server takes no more while nobody reads.
        for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
        const head = 100;
        assert.equal(
          delivered <= 64 * 1024 + 64 * 1024 + head,
          true,
          `the server read ${delivered} bytes while the app did not ask`,
        );
        assert.equal(accepted, false, 'the client saw backpressure on its write');
        assert.equal(
          client.socket.writableLength > 0,
          true,
          'bytes wait in the client, not the server',
        );
        // Now read it, 64 KiB per read: everything arrives, in bounded steps.
        let got = 0;
        const more = (piece: Buffer): void => {
          maxHeld = Math.max(maxHeld, requestBody!.buffered);
          if (piece.length === 0) {
            body!.put(`${got} ${hash.digest('hex')}`);
            body!.finish();
            return;
          }
          got += piece.length;
          hash.update(piece);
          next();
        };
        const next = (): void => {
          if (reader === 'onGet') body!.onGet(64 * 1024, more);
          else input!.read(64 * 1024).then(more, (e: unknown) => body!.fail(e));
        };
        next();
        const [r] = await client.responses(['POST']);
        assert.equal(r!.body.toString(), `${total} ${sha256(data)}`);
        assert.equal(maxHeld <= 128 * 1024, true, `the body held ${maxHeld} bytes`);
        await client.close();
      } finally {
        await port.stopListening();
        await site.shutdown(0);
      }
    });
  }
});
