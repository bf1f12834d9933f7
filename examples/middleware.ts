/**
 * A middleware that wraps an app's body in its own iterator, and what the
 * server does when that hides the app's `AsyncBody`: it iterates the wrapper,
 * takes an empty chunk as "nothing yet", and backs off (1 ms, doubling to
 * 100 ms, reset by a non-empty chunk) instead of spinning; a `put` on the
 * hidden `AsyncBody` still wakes it at once.
 *
 *     npx tsx examples/middleware.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --app examples/middleware.ts
 *     curl -N 'http://127.0.0.1:8080/?lines=5&interval=250'
 *
 * The app ({@link slowLines}) puts `lines` lines (query, default 5), one
 * every `interval` ms (query, default 250), through its `AsyncBody`. The
 * middleware ({@link annotate}) is the classic kind: it knows nothing of
 * `AsyncBody`, iterates whatever body the app returns, and prefixes each
 * chunk with when it came and after how many polls (calls of its `next()` by
 * the server); at the end it adds a summary line. With the default query:
 *
 *     [chunk 1 at 0 ms, poll 1] line 1 of 5
 *     [chunk 2 at 250 ms, poll 11] line 2 of 5
 *     …
 *     middleware: 5 chunks, 43 polls in 1000 ms: the server backed off …
 *
 * Between two lines the server polled about 10 times (at 1, 3, 7, 15, 31,
 * 63, 127 and 227 ms), not thousands: that is the back-off.
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port),
 * prints `listening on http://HOST:PORT/` and stops on Ctrl-C or SIGTERM.
 * The default export is the wrapped app (for `torsion web --app`).
 */

import type { IDelayedCall, IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { type App, AppResource, type BodyChunk } from '../src/web/app.js';
import { isMain, serveExample } from './serve.js';

/**
 * The middleware: `app`'s body, each chunk prefixed with its number, its
 * time (on `clock`) and the poll it came on, then a summary. An empty chunk
 * from the app is passed on as it is ("nothing yet"). If the app's body has
 * a `close()`, it is called when the wrapper closes (PEP 3333's rule for
 * middleware), whether or not the iteration finished.
 */
export function annotate(app: App, clock: IReactorTime = reactor): App {
  return (environ, startResponse) => {
    const body = app(environ, startResponse);
    const started = clock.seconds();
    const ms = (): number => Math.round((clock.seconds() - started) * 1000);
    function* wrapper(): Generator<BodyChunk> {
      let polls = 0;
      let chunks = 0;
      try {
        // Iterating the app's body synchronously: for an AsyncBody that
        // yields '' while its queue is empty.
        const iterator = (body as Iterable<BodyChunk>)[Symbol.iterator]();
        for (;;) {
          polls++;
          const next = iterator.next();
          if (next.done === true) break;
          const chunk = next.value;
          if (chunk.length === 0) {
            yield chunk;
            continue;
          }
          chunks++;
          yield `[chunk ${chunks} at ${ms()} ms, poll ${polls}] `;
          yield chunk;
        }
        yield `middleware: ${chunks} chunks, ${polls} polls in ${ms()} ms: the server backed off ` +
          '(1 ms doubling to 100 ms) while the body had nothing, and a put woke it at once\n';
      } finally {
        const close = (body as { close?: () => void }).close;
        if (typeof close === 'function') close.call(body);
      }
    }
    return wrapper();
  };
}

/** Options of {@link slowLines} and {@link createMiddlewareDemo}. */
export interface DemoOptions {
  /** The clock the lines are timed on (default: the reactor). */
  clock?: IReactorTime;
}

/** The app: `lines` lines, one every `interval` ms, through its `AsyncBody`. */
export function slowLines(options: DemoOptions = {}): App {
  const clock = options.clock ?? reactor;
  return (environ, startResponse) => {
    const query = new URLSearchParams(environ.QUERY_STRING);
    const lines = Number(query.get('lines') ?? '5');
    const interval = Number(query.get('interval') ?? '250');
    if (
      !Number.isSafeInteger(lines) ||
      lines < 1 ||
      lines > 1000 ||
      !Number.isSafeInteger(interval) ||
      interval < 0 ||
      interval > 60_000
    ) {
      startResponse('400 Bad Request', [['Content-Type', 'text/plain; charset=utf-8']]);
      return ['lines: 1 to 1000; interval: 0 to 60000 ms\n'];
    }
    startResponse('200 OK', [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['X-Content-Type-Options', 'nosniff'],
    ]);
    const body = environ['torsion.async'];
    let sent = 0;
    let call: IDelayedCall | null = null;
    const tick = (): void => {
      call = null;
      sent++;
      body.put(`line ${sent} of ${lines}\n`);
      if (sent === lines) body.finish();
      else call = clock.callLater(interval / 1000, tick);
    };
    body.onClose(() => {
      if (call?.active()) call.cancel();
    });
    tick();
    return body;
  };
}

/** The demo: {@link slowLines} wrapped by {@link annotate}, both on `clock`. */
export function createMiddlewareDemo(options: DemoOptions = {}): App {
  return annotate(slowLines(options), options.clock ?? reactor);
}

export default createMiddlewareDemo();

if (isMain(import.meta.url))
  process.exitCode = await serveExample(new AppResource(createMiddlewareDemo()));
