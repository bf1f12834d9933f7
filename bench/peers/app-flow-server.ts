/**
 * torsion's side of the app-gateway flow-control measurements
 * (`bench/app-flow.ts`, `test/app-flow.test.ts`): apps on the async app
 * gateway (`AppResource`), in a process of their own so its RSS is the
 * server's alone. The uvicorn peer, `bench/peers/app_flow_asgi.py`, serves the
 * same paths.
 *
 * - `POST /upload?rate=BYTES_PER_SECOND`: reads the body only through
 *   `AsyncBody.onGet`, paced to `rate` (after each piece, the next `onGet` is
 *   asked when the running total is due); answers JSON counts. While no
 *   `onGet` is pending the gateway must stop reading the socket.
 * - `GET /download?bytes=N&mode=put|producer|pull`: N bytes,
 *   `Content-Length: N`, one fresh 64 KiB Buffer per `put` (so a server that
 *   queued them would show it in its RSS). `put`: puts while `writable`, else
 *   waits for `onDrain`. `producer`: a push producer registered with
 *   `registerProducer(p, true)` that puts up to 256 KiB per reactor turn
 *   until `pauseProducing()`, and again from `resumeProducing()`. `pull`: a
 *   pull producer (`registerProducer(p, false)`) putting one piece per
 *   `resumeProducing()`.
 * - `GET /memory`: `process.memoryUsage()` after a full GC (with `--expose-gc`).
 *
 * Prints `listening on tcp:127.0.0.1:PORT`, then one `stats {json}` line per
 * request when its response is done (finished or lost).
 *
 *     node --expose-gc --import tsx bench/peers/app-flow-server.ts [PORT]
 *
 * @module
 */

import type { IPv4Address } from '../../src/reactor/address.js';
import { Failure } from '../../src/reactor/failure.js';
import type { IPullProducer, IPushProducer } from '../../src/reactor/interfaces.js';
import { reactor } from '../../src/reactor/reactor.js';
import { listenTCP } from '../../src/reactor/tcp.js';
import { type App, AppResource, type AsyncBody, type Environ } from '../../src/web/app.js';
import type { IRequest, IRequestBody } from '../../src/web/iweb.js';
import { Site } from '../../src/web/site.js';

const CHUNK = 64 * 1024;
/** Chunks a producer puts per reactor turn while not paused. */
const PRODUCER_BATCH = 4;

type Stats = Record<string, number | string | boolean>;

/** Prints `stats` with the process's memory at this moment (where the RSS went: V8 heap or Buffers). */
function emit(stats: Stats): void {
  const m = process.memoryUsage();
  const memory = { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external };
  process.stdout.write(`stats ${JSON.stringify({ ...stats, ...memory })}\n`);
}

function queryInt(environ: Environ, name: string, fallback: number): number {
  const value = new URLSearchParams(environ.QUERY_STRING).get(name);
  if (value === null) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad ${name}: ${value}`);
  return n;
}

// ---------------------------------------------------------------------- upload

/** Consumes a request body through `onGet` at `rate` bytes per second. */
class PacedReader {
  readonly #body: AsyncBody;
  readonly #input: IRequestBody;
  readonly #rate: number;
  readonly #start = reactor.seconds();
  #got = 0;
  #gets = 0;
  #maxChunk = 0;
  #maxServerBuffered = 0;

  constructor(body: AsyncBody, input: IRequestBody, rate: number) {
    this.#body = body;
    this.#input = input;
    this.#rate = rate;
  }

  /** Asks for the next piece (bound once: no closure per chunk). */
  readonly want = (): void => {
    this.#body.onGet(CHUNK, this.#onData, this.#onError);
  };

  readonly #onData = (data: Buffer): void => {
    // Everything the server took off the socket that the app has not had yet
    // (the piece being handed over included): the request-body memory the
    // gateway holds, whatever its layers.
    this.#maxServerBuffered = Math.max(this.#maxServerBuffered, this.#input.received - this.#got);
    if (data.length === 0) {
      this.#done(true);
      return;
    }
    this.#got += data.length;
    this.#gets++;
    this.#maxChunk = Math.max(this.#maxChunk, data.length);
    const due = this.#got / this.#rate - (reactor.seconds() - this.#start);
    if (due > 0) reactor.callLater(due, this.want);
    else this.want();
  };

  readonly #onError = (err: Error): void => {
    process.stderr.write(`upload: input failed: ${err.message}\n`);
    this.#done(false, err.message);
    this.#body.fail(err);
  };

  #done(complete: boolean, error = ''): void {
    const stats: Stats = {
      scenario: 'upload',
      bytes: this.#got,
      complete,
      gets: this.#gets,
      maxChunk: this.#maxChunk,
      maxServerBuffered: this.#maxServerBuffered,
      seconds: reactor.seconds() - this.#start,
    };
    if (error !== '') stats.error = error;
    emit(stats);
    if (!complete) return;
    this.#body.put(JSON.stringify(stats));
    this.#body.finish();
  }
}

const uploadApp: App = (environ, startResponse) => {
  const body = environ['torsion.async'];
  const reader = new PacedReader(
    body,
    environ['torsion.request'].bodyStream(),
    queryInt(environ, 'rate', 10 * 1024 * 1024),
  );
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  reader.want();
  return body;
};

// ---------------------------------------------------------------------- download

/** Output counts shared by every download mode. */
class Output {
  readonly start = reactor.seconds();
  sent = 0;
  puts = 0;
  /** Times the app found `writable` false when it wanted to put. */
  notWritable = 0;
  /** Largest `bufferedBytes` seen right after a put. */
  maxBufferedBytes = 0;

  constructor(
    readonly body: AsyncBody,
    readonly total: number,
  ) {}

  /** Puts the next piece: a fresh Buffer, as a real producer makes. */
  putOne(): void {
    const n = Math.min(CHUNK, this.total - this.sent);
    this.body.put(Buffer.allocUnsafe(n).fill(this.puts & 0xff));
    this.sent += n;
    this.puts++;
    this.maxBufferedBytes = Math.max(this.maxBufferedBytes, this.body.bufferedBytes);
  }

  stats(mode: string, extra: Stats): Stats {
    return {
      scenario: 'download',
      mode,
      bytes: this.sent,
      puts: this.puts,
      notWritable: this.notWritable,
      maxBufferedBytes: this.maxBufferedBytes,
      ...extra,
      seconds: reactor.seconds() - this.start,
    };
  }
}

/** Mode `put`: put while `writable`, else wait for `onDrain`. */
class WritablePump {
  readonly #out: Output;
  drains = 0;

  constructor(out: Output) {
    this.#out = out;
  }

  readonly pump = (): void => {
    const out = this.#out;
    while (out.sent < out.total) {
      if (!out.body.writable) {
        out.notWritable++;
        out.body.onDrain(this.#drained);
        return;
      }
      out.putOne();
    }
    out.body.finish();
  };

  readonly #drained = (): void => {
    this.drains++;
    this.pump();
  };
}

/** Mode `producer`: a streaming push producer, PRODUCER_BATCH puts per turn. */
class ChunkProducer implements IPushProducer {
  readonly #out: Output;
  #paused = false;
  #stopped = false;
  #scheduled = false;
  pauses = 0;
  resumes = 0;
  stops = 0;

  constructor(out: Output) {
    this.#out = out;
  }

  start(): void {
    this.#out.body.registerProducer(this, true);
    this.#schedule();
  }

  pauseProducing(): void {
    this.pauses++;
    if (!this.#out.body.writable) this.#out.notWritable++;
    this.#paused = true;
  }

  resumeProducing(): void {
    this.resumes++;
    this.#paused = false;
    this.#schedule();
  }

  stopProducing(): void {
    this.stops++;
    this.#stopped = true;
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    reactor.callLater(0, this.#tick);
  }

  readonly #tick = (): void => {
    this.#scheduled = false;
    const out = this.#out;
    for (let i = 0; i < PRODUCER_BATCH && !this.#paused && !this.#stopped; i++) {
      if (out.sent >= out.total) break;
      out.putOne();
    }
    if (this.#stopped) return;
    if (out.sent >= out.total) {
      out.body.unregisterProducer();
      out.body.finish();
    } else if (!this.#paused) {
      this.#schedule();
    }
  };
}

/** Mode `pull`: a pull producer (`registerProducer(p, false)`): one put per `resumeProducing()`. */
class PullProducer implements IPullProducer {
  readonly #out: Output;
  resumes = 0;
  stops = 0;

  constructor(out: Output) {
    this.#out = out;
  }

  start(): void {
    this.#out.body.registerProducer(this, false);
  }

  resumeProducing(): void {
    this.resumes++;
    const out = this.#out;
    if (out.sent < out.total) out.putOne();
    if (out.sent >= out.total) {
      out.body.unregisterProducer();
      out.body.finish();
    }
  }

  stopProducing(): void {
    this.stops++;
  }
}

/** The stats of a download when its response is done (finished, or lost: `finished: false`). */
function reportWhenDone(request: IRequest, out: Output, mode: string, counts: () => Stats): void {
  request.notifyFinish().addBoth((result) => {
    emit(out.stats(mode, { ...counts(), finished: !(result instanceof Failure) }));
    return null;
  });
}

const downloadApp: App = (environ, startResponse) => {
  const body = environ['torsion.async'];
  const total = queryInt(environ, 'bytes', 0);
  const mode = new URLSearchParams(environ.QUERY_STRING).get('mode') ?? 'put';
  if (mode !== 'put' && mode !== 'producer' && mode !== 'pull') {
    throw new RangeError(`bad mode: ${mode}`);
  }
  startResponse('200 OK', [
    ['Content-Type', 'application/octet-stream'],
    ['Content-Length', String(total)],
  ]);
  const out = new Output(body, total);
  const request = environ['torsion.request'];
  if (mode === 'put') {
    const pump = new WritablePump(out);
    reportWhenDone(request, out, mode, () => ({ drains: pump.drains }));
    pump.pump();
  } else if (mode === 'producer') {
    const producer = new ChunkProducer(out);
    reportWhenDone(request, out, mode, () => ({
      pauses: producer.pauses,
      resumes: producer.resumes,
      stops: producer.stops,
    }));
    producer.start();
  } else {
    const producer = new PullProducer(out);
    reportWhenDone(request, out, mode, () => ({
      resumes: producer.resumes,
      stops: producer.stops,
    }));
    producer.start();
  }
  return body;
};

// ---------------------------------------------------------------------- the server

/** `gc()`, when the process runs with `--expose-gc` (the flow client starts it so). */
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * `GET /memory`: the process's memory after a full GC (twice, 100 ms apart,
 * so Buffers freed by the first are swept), as JSON: what the GC frees was
 * garbage, not something the server held on to. 501 without `--expose-gc`.
 */
const memoryApp: App = (environ, startResponse) => {
  if (gc === undefined) {
    startResponse('501 Not Implemented', [['Content-Length', '0']]);
    return [];
  }
  const body = environ['torsion.async'];
  gc();
  reactor.callLater(0.1, () => {
    gc();
    const m = process.memoryUsage();
    const json = JSON.stringify({
      rss: m.rss,
      heapTotal: m.heapTotal,
      heapUsed: m.heapUsed,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    });
    startResponse('200 OK', [['Content-Type', 'application/json']]);
    body.put(json);
    body.finish();
  });
  return body;
};

const notFound: App = (_environ, startResponse) => {
  startResponse('404 Not Found', [['Content-Length', '0']]);
  return [];
};

const app: App = (environ, startResponse) => {
  if (environ.PATH_INFO === '/upload' && environ.REQUEST_METHOD === 'POST') {
    return uploadApp(environ, startResponse);
  }
  if (environ.PATH_INFO === '/download' && environ.REQUEST_METHOD === 'GET') {
    return downloadApp(environ, startResponse);
  }
  if (environ.PATH_INFO === '/memory' && environ.REQUEST_METHOD === 'GET') {
    return memoryApp(environ, startResponse);
  }
  return notFound(environ, startResponse);
};

const site = new Site(new AppResource(app), { accessLog: null });
const port = listenTCP(reactor, Number(process.argv[2] ?? 0), site, { interface: '127.0.0.1' });
process.stdout.write(`listening on tcp:127.0.0.1:${(port.getHost() as IPv4Address).port}\n`);
