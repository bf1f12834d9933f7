/**
 * Server-sent events from a push producer that `put`s them into the
 * request's `AsyncBody`, at the client's pace: the seed's output flow
 * control, end to end.
 *
 *     npx tsx examples/async-stream.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --app examples/async-stream.ts
 *     curl -N 'http://127.0.0.1:8080/?count=5&interval=500'
 *     curl -N 'http://127.0.0.1:8080/?count=0&interval=0&size=65536' | pv > /dev/null
 *
 * `GET` answers `text/event-stream`: `count` events (query, default 30;
 * `0`: endless), one every `interval` ms (query, default 1000; `0`: as fast
 * as the client reads), each
 *
 *     id: N
 *     event: tick
 *     data: {"n":N,"time":SECONDS,"pad":"…"}
 *
 * with `size` bytes of padding (query, default 0, at most 1 MiB). The
 * producer is registered with `registerProducer(producer, true)`: when the
 * client reads slowly the body stops being `writable` and the producer gets
 * `pauseProducing()` (its timer stops: nothing piles up in the server), then
 * `resumeProducing()` when the client caught up; it also checks `writable`
 * before each `put`. When the client goes away it gets `stopProducing()`.
 * Other methods: 405.
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port),
 * prints `listening on http://HOST:PORT/` and stops on Ctrl-C or SIGTERM.
 * The default export is the app (for `torsion web --app`).
 */

import type { IDelayedCall, IPushProducer, IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { type App, AppResource, type AsyncBody } from '../src/web/app.js';
import { isMain, serveExample } from './serve.js';

/** Options of {@link createStreamApp}. */
export interface StreamOptions {
  /** The clock events are timed on (default: the reactor). */
  clock?: IReactorTime;
}

/** Events put in one go when `interval` is 0, before letting the reactor run. */
const BURST = 64;
const MAX_PAD = 1024 * 1024;

/** Puts `count` events into `body`, one per `interval` seconds, while the body is writable. */
export class EventProducer implements IPushProducer {
  readonly #body: AsyncBody;
  readonly #clock: IReactorTime;
  readonly #interval: number;
  readonly #count: number;
  readonly #pad: string;
  readonly #started: number;
  #sent = 0;
  #call: IDelayedCall | null = null;
  #paused = false;
  #done = false;
  /** Times the producer was paused (the client read slowly). */
  pauses = 0;

  /**
   * @param interval - seconds between events (0: as fast as the client reads).
   * @param count - events to send (0: endless).
   * @param padding - bytes of padding in each event.
   */
  constructor(
    body: AsyncBody,
    clock: IReactorTime,
    interval: number,
    count: number,
    padding: number,
  ) {
    this.#body = body;
    this.#clock = clock;
    this.#interval = interval;
    this.#count = count;
    this.#pad = 'x'.repeat(padding);
    this.#started = clock.seconds();
  }

  /** Events put so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Registers with the body and schedules the first event. */
  start(): void {
    this.#body.registerProducer(this, true);
    this.#schedule();
  }

  pauseProducing(): void {
    this.#paused = true;
    this.pauses++;
    this.#cancel();
  }

  resumeProducing(): void {
    if (!this.#paused || this.#done) return;
    this.#paused = false;
    this.#schedule();
  }

  stopProducing(): void {
    this.#done = true;
    this.#cancel();
  }

  #schedule(): void {
    if (this.#call === null && !this.#done) {
      this.#call = this.#clock.callLater(this.#interval, this.#tick);
    }
  }

  #cancel(): void {
    const call = this.#call;
    this.#call = null;
    if (call?.active()) call.cancel();
  }

  readonly #tick = (): void => {
    this.#call = null;
    const body = this.#body;
    // One event per interval; a burst when there is no interval (then the
    // reactor runs before the next burst).
    let burst = this.#interval > 0 ? 1 : BURST;
    while (burst-- > 0 && body.writable && !this.#done) {
      this.#sent++;
      const time = (this.#clock.seconds() - this.#started).toFixed(3);
      const data = JSON.stringify({ n: this.#sent, time: Number(time), pad: this.#pad });
      body.put(`id: ${this.#sent}\nevent: tick\ndata: ${data}\n\n`);
      if (this.#sent === this.#count) {
        this.#done = true;
        body.unregisterProducer();
        body.finish();
        return;
      }
    }
    // Not writable: pauseProducing() came with it, and resumeProducing() will
    // schedule the next event.
    if (!this.#paused) this.#schedule();
  };
}

/** Reads a non-negative integer query parameter (or the default); `null` if malformed. */
function queryInt(
  query: URLSearchParams,
  name: string,
  fallback: number,
  max: number,
): number | null {
  const given = query.get(name);
  if (given === null) return fallback;
  const n = Number(given);
  return /^\d+$/.test(given) && n <= max ? n : null;
}

/** The event stream (see the module documentation). */
export function createStreamApp(options: StreamOptions = {}): App {
  const clock = options.clock ?? reactor;
  return (environ, startResponse) => {
    if (environ.REQUEST_METHOD !== 'GET' && environ.REQUEST_METHOD !== 'HEAD') {
      startResponse('405 Method Not Allowed', [['Allow', 'GET, HEAD']]);
      return [];
    }
    const query = new URLSearchParams(environ.QUERY_STRING);
    const count = queryInt(query, 'count', 30, Number.MAX_SAFE_INTEGER);
    const interval = queryInt(query, 'interval', 1000, 86_400_000);
    const size = queryInt(query, 'size', 0, MAX_PAD);
    if (count === null || interval === null || size === null) {
      startResponse('400 Bad Request', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`count, interval (ms) and size (at most ${MAX_PAD}) are non-negative integers\n`];
    }
    startResponse('200 OK', [
      ['Content-Type', 'text/event-stream; charset=utf-8'],
      ['Cache-Control', 'no-store'],
      // Proxies (nginx) would otherwise hold events back.
      ['X-Accel-Buffering', 'no'],
    ]);
    const body = environ['torsion.async'];
    if (environ.REQUEST_METHOD === 'HEAD') {
      body.finish();
      return body;
    }
    // A comment line first: the client sees the stream open at once.
    body.put(': stream open\n\n');
    new EventProducer(body, clock, interval / 1000, count, size).start();
    return body;
  };
}

export default createStreamApp();

if (isMain(import.meta.url))
  process.exitCode = await serveExample(new AppResource(createStreamApp()));
