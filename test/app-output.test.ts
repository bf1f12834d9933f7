/**
 * The app gateway's output over real sockets: an empty queue waits for the
 * next `put` without polling (counted on a `Clock`); a wrapping middleware's
 * empty chunks make the server back off 1, 2, 4 … 100 ms (polls counted on a
 * `Clock`), reset by a non-empty chunk and cut short by a `put`; output flow
 * control (a push producer paused while the client does not read and
 * resumed when it does, `writable` and `onDrain`, a pull producer asked once
 * per drain, an iterator not pulled while the client is slow), by counts.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import type { IReactorTime } from '../src/reactor/interfaces.js';
import type { AppBody, AsyncBody, BodyChunk } from '../src/web/app.js';
import {
  LogCapture,
  RawClient,
  requestHead,
  serveApp,
  sleep,
  turns,
  until,
} from './app-helpers.js';

const KIB = 1024;

/** A GET that reads a Content-Length response, hashing the body; `pause()` stops reading. */
class Download {
  readonly socket: net.Socket;
  readonly hash = createHash('sha256');
  head = '';
  length = -1;
  bodyBytes = 0;
  closed = false;
  #buffered: Buffer = Buffer.alloc(0);
  #done: (() => void) | null = null;

  constructor(port: number, path: string) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.#done?.();
    });
    this.socket.on('data', (data: Buffer) => this.#data(data));
    this.socket.write(requestHead('GET', path));
  }

  #data(data: Buffer): void {
    if (this.length === -1) {
      this.#buffered = Buffer.concat([this.#buffered, data]);
      const end = this.#buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.head = this.#buffered.toString('latin1', 0, end);
      const m = /\r\ncontent-length: (\d+)/i.exec(this.head);
      assert.ok(m !== null, `a Content-Length in ${this.head}`);
      this.length = Number(m[1]);
      data = this.#buffered.subarray(end + 4);
      this.#buffered = Buffer.alloc(0);
    }
    this.bodyBytes += data.length;
    this.hash.update(data);
    if (this.bodyBytes >= this.length) this.#done?.();
  }

  /** Stops reading; once `reached()` holds, waits `ms` more of real time (the server settles). */
  async stall(reached: () => boolean, what: string, ms: number): Promise<void> {
    this.socket.pause();
    await until(reached, what);
    await sleep(ms);
  }

  /** Reads on to the end and checks that the body is the first `chunks` {@link piece}s, in order. */
  async readAll(chunks: number): Promise<void> {
    this.socket.resume();
    await this.complete();
    assert.equal(this.bodyBytes, chunks * 64 * KIB);
    assert.equal(this.hash.digest('hex'), expectedHash(chunks));
  }

  /** Resolves once the whole body arrived (or the connection closed). */
  complete(): Promise<void> {
    if (this.closed || (this.length >= 0 && this.bodyBytes >= this.length))
      return Promise.resolve();
    return new Promise((resolve) => {
      this.#done = resolve;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.destroy();
    await once(this.socket, 'close');
  }
}

/** The `i`th 64 KiB chunk of a download (its bytes tell its position). */
function piece(i: number): Buffer {
  return Buffer.alloc(64 * KIB, i & 0xff);
}

function expectedHash(chunks: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < chunks; i++) h.update(piece(i));
  return h.digest('hex');
}

/** What {@link onClock} hands its check. */
interface Clocked {
  readonly clock: Clock;
  /** The request's AsyncBody (the app has run). */
  readonly body: AsyncBody;
  /** A client that sent `GET /app`. */
  readonly client: RawClient;
}

/**
 * Serves on a `Clock` an app that starts a 200 response and returns
 * `makeBody(asyncBody)`; sends `GET /app`, waits for the app, runs `check`,
 * then closes the client and the server.
 */
async function onClock(
  makeBody: (body: AsyncBody, clock: Clock) => AppBody,
  check: (t: Clocked) => Promise<void>,
): Promise<void> {
  const clock = new Clock();
  let body: AsyncBody | null = null;
  const server = await serveApp(
    (environ, startResponse) => {
      body = environ['torsion.async'];
      startResponse('200 OK', []);
      return makeBody(body, clock);
    },
    { reactor: clock as IReactorTime },
  );
  const client = new RawClient(server.portNumber);
  try {
    client.write(requestHead('GET', '/app'));
    await until(() => body !== null, 'the app ran');
    await check({ clock, body: body!, client });
  } finally {
    await client.close();
    await server.close();
  }
}

/** Advances `clock` by `seconds`, one millisecond at a time (each delayed call on its due time). */
function advanceByMs(clock: Clock, seconds: number): void {
  for (let ms = 0; ms < Math.round(seconds * 1000); ms++) clock.advance(0.001);
}

describe('app gateway output: waiting without spinning', () => {
  test('an empty queue waits for the next put: nothing polls, no timer runs (Clock)', async () => {
    let iterations = 0;
    await onClock(
      (body) => {
        // Spy on the iterators: the server must not iterate a body it can see.
        const b = body as unknown as Record<symbol, () => unknown>;
        for (const key of [Symbol.iterator, Symbol.asyncIterator]) {
          const original = b[key]!.bind(body);
          b[key] = () => {
            iterations++;
            return original();
          };
        }
        return body;
      },
      async ({ clock, body, client }) => {
        for (const word of ['one', 'two', 'three']) {
          // A long wait with an empty queue: no timer, nothing runs.
          for (let i = 0; i < 10; i++) clock.advance(1);
          await turns(10);
          assert.equal(clock.getDelayedCalls().length, 0, 'no timer while the queue is empty');
          body.put(word);
          await client.until(() => client.data().includes(word));
        }
        body.finish();
        const [r] = await client.responses(['GET']);
        assert.equal(r!.body.toString(), 'onetwothree');
        assert.equal(iterations, 0, 'the server never iterated the body');
      },
    );
  });

  test('a middleware iterating the body asynchronously waits too: one iteration per chunk', async () => {
    let iterations = 0;
    await onClock(
      (inner) =>
        (async function* (): AsyncGenerator<BodyChunk> {
          for await (const chunk of inner) {
            iterations++;
            yield typeof chunk === 'string' ? chunk.toUpperCase() : chunk;
          }
        })(),
      async ({ clock, body, client }) => {
        for (const word of ['one', 'two']) {
          for (let i = 0; i < 10; i++) clock.advance(1);
          await turns(20);
          assert.equal(clock.getDelayedCalls().length, 0, 'no back-off: nothing was empty');
          body.put(word);
          await client.until(() => client.data().includes(word.toUpperCase()));
        }
        body.finish();
        const [r] = await client.responses(['GET']);
        assert.equal(r!.body.toString(), 'ONETWO');
        assert.equal(iterations, 2, 'one iteration per chunk put');
      },
    );
  });
});

describe('app gateway output: middleware back-off', () => {
  test('empty chunks: polls at 1, 2, 4 … 100 ms; a non-empty chunk resets the delay (Clock)', async () => {
    const polls: number[] = [];
    const script: string[] = [];
    await onClock(
      (_body, clock) =>
        // A middleware that has "nothing yet" until the test gives it something.
        (function* () {
          for (;;) {
            polls.push(Math.round(clock.seconds() * 1000));
            const next = script.shift();
            if (next === 'END') return;
            yield next ?? '';
          }
        })(),
      async ({ clock, client }) => {
        advanceByMs(clock, 0.4);
        assert.deepEqual(polls, [0, 1, 3, 7, 15, 31, 63, 127, 227, 327]);
        script.push('x');
        advanceByMs(clock, 0.04);
        // 427: 'x', then at once the next poll (empty), then 1, 2, 4 ms again.
        assert.deepEqual(polls.slice(10), [427, 427, 428, 430, 434]);
        await client.until(() => client.data().includes('\r\nx\r\n'));
        script.push('END');
        for (let ms = 440; ms < 460 && !client.data().includes('0\r\n\r\n'); ms++) {
          clock.advance(0.001);
          await turns(2);
        }
        const [r] = await client.responses(['GET']);
        assert.equal(r!.body.toString(), 'x');
        assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
      },
    );
  });

  test('a middleware over the async body: a put wakes the server at once; idle polls stay few', async () => {
    let polls = 0;
    await onClock(
      (inner) =>
        // Wraps the async body synchronously: '' from it means "nothing yet".
        (function* () {
          for (const chunk of inner) {
            polls++;
            yield chunk;
          }
        })(),
      async ({ clock, body, client }) => {
        // Ten idle seconds: the back-off caps polls at 10 per second.
        advanceByMs(clock, 10);
        assert.equal(polls <= 10 + 100, true, `${polls} polls in 10 s`);
        assert.equal(polls >= 100, true, `${polls} polls in 10 s`);
        const before = polls;
        body.put('now');
        // No clock advance needed: the put woke the server.
        await client.until(() => client.data().includes('now'));
        assert.equal(polls - before <= 2, true);
        body.finish();
        const [r] = await client.responses(['GET']);
        assert.equal(r!.body.toString(), 'now');
      },
    );
  });
});

describe('app gateway output: flow control', () => {
  test('a push producer is paused while the client does not read, resumed when it does', async () => {
    const chunks = 512; // 32 MiB
    const state = { produced: 0, pauses: 0, resumes: 0, paused: false, sawUnwritable: false };
    let maxBuffered = 0;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', [['Content-Length', String(chunks * 64 * KIB)]]);
      const pump = (): void => {
        while (!state.paused && state.produced < chunks) {
          body.put(piece(state.produced++));
          maxBuffered = Math.max(maxBuffered, body.bufferedBytes);
          if (!body.writable) state.sawUnwritable = true;
        }
        if (state.produced === chunks) {
          body.unregisterProducer();
          body.finish();
        }
      };
      body.registerProducer(
        {
          pauseProducing: () => {
            state.paused = true;
            state.pauses++;
          },
          resumeProducing: () => {
            state.paused = false;
            state.resumes++;
            setImmediate(pump);
          },
          stopProducing: () => {
            state.paused = true;
          },
        },
        true,
      );
      pump();
      return body;
    });
    try {
      const download = new Download(server.portNumber, '/app');
      await download.stall(() => state.pauses > 0, 'the producer was paused', 100);
      const whilePaused = state.produced;
      assert.equal(
        whilePaused < chunks / 2,
        true,
        `produced ${whilePaused} chunks for a stalled client`,
      );
      assert.equal(state.sawUnwritable, true, 'writable went false');
      await download.readAll(chunks);
      assert.equal(state.resumes > 0, true, 'resumed when the client caught up');
      assert.equal(
        maxBuffered <= 64 * KIB + 64 * KIB,
        true,
        `bufferedBytes reached ${maxBuffered}`,
      );
      await download.close();
    } finally {
      await server.close();
    }
  });

  test('put while writable, else onDrain: each drain fires once, the queue stays empty', async () => {
    const chunks = 512;
    let produced = 0;
    let waits = 0;
    let drains = 0;
    let maxQueued = 0;
    const server = await serveApp((environ, startResponse) => {
      const body = environ['torsion.async'];
      startResponse('200 OK', [['Content-Length', String(chunks * 64 * KIB)]]);
      const go = (): void => {
        while (body.writable && produced < chunks) body.put(piece(produced++));
        maxQueued = Math.max(maxQueued, body.bufferedBytes);
        if (produced === chunks) body.finish();
        else {
          waits++;
          body.onDrain(() => {
            drains++;
            go();
          });
        }
      };
      go();
      return body;
    });
    try {
      const download = new Download(server.portNumber, '/app');
      await download.stall(() => waits > 0, 'the app waited', 50);
      assert.equal(produced < chunks / 2, true, `produced ${produced} chunks for a stalled client`);
      await download.readAll(chunks);
      assert.equal(drains, waits, 'each onDrain fired once');
      assert.equal(maxQueued <= 2 * 64 * KIB + 64 * KIB, true, `buffered ${maxQueued}`);
      await download.close();
    } finally {
      await server.close();
    }
  });

  test('a pull producer is asked again only after it put and the body drained', async () => {
    const chunks = 64;
    let asks = 0;
    let idleAsks = 0;
    let idle = false;
    let body: AsyncBody | null = null;
    const server = await serveApp((environ, startResponse) => {
      const b = environ['torsion.async'];
      body = b;
      startResponse('200 OK', [['Content-Length', String(chunks * 64 * KIB)]]);
      let produced = 0;
      b.registerProducer(
        {
          resumeProducing: () => {
            asks++;
            if (idle) {
              idleAsks++;
              return; // puts nothing: must not be asked again in a loop
            }
            b.put(piece(produced++));
            if (produced === chunks / 2) idle = true;
            if (produced === chunks) {
              b.unregisterProducer();
              b.finish();
            }
          },
          stopProducing: () => {},
        },
        false,
      );
      return b;
    });
    try {
      const download = new Download(server.portNumber, '/app');
      await until(() => idle, 'half produced');
      await turns(50);
      assert.equal(idleAsks, 1, 'asked once, then waits for a put');
      idle = false;
      // The producer puts on its own (e.g. after an async fetch): it is asked on from there.
      const b = body!;
      b.put(piece(chunks / 2));
      let produced = chunks / 2 + 1;
      b.unregisterProducer();
      b.registerProducer(
        {
          resumeProducing: () => {
            asks++;
            b.put(piece(produced++));
            if (produced === chunks) {
              b.unregisterProducer();
              b.finish();
            }
          },
          stopProducing: () => {},
        },
        false,
      );
      await download.readAll(chunks);
      assert.equal(asks <= chunks + 2, true, `${asks} asks for ${chunks} chunks`);
      await download.close();
    } finally {
      await server.close();
    }
  });

  test('an iterator body is not pulled while the client is slow; a reset client ends it', async () => {
    let pulls = 0;
    let finallies = 0;
    const log = new LogCapture();
    const server = await serveApp((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Length', String(1 << 30)]]);
      return (function* () {
        try {
          for (let i = 0; i < 1 << 14; i++) {
            pulls++;
            yield piece(i);
          }
        } finally {
          finallies++;
        }
      })();
    });
    try {
      const download = new Download(server.portNumber, '/app');
      await download.stall(() => pulls > 0, 'pulled', 100);
      const stalled = pulls;
      await sleep(50);
      assert.equal(pulls, stalled, 'no pulls while the client does not read');
      assert.equal(stalled < 256, true, `${stalled} chunks pulled for a stalled client`);
      download.socket.resetAndDestroy();
      await until(() => finallies === 1, 'the generator was closed');
      await until(() => server.site.channels.size === 0, 'the connection closed');
      assert.deepEqual(log.errors(), []);
    } finally {
      log.stop();
      await server.close();
    }
  });
});
