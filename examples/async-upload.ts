/**
 * An upload counter that reads its input only with `onGet`, at its own pace:
 * the seed's input flow control, end to end.
 *
 *     npx tsx examples/async-upload.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --app examples/async-upload.ts
 *     curl -T big.iso 'http://127.0.0.1:8080/?rate=1048576'
 *
 * - `POST` or `PUT` with any body (a `Content-Length` or chunked): the app
 *   asks for the body with `AsyncBody.onGet(64 KiB, …)`, one piece at a time,
 *   no faster than `rate` bytes per second (the query's `rate`, default
 *   1 MiB/s; `rate=0`: as fast as it comes), and answers
 *   `bytes: N` / `sha256: HEX` / `seconds: S`. Between two `onGet` calls the
 *   server reads at most 64 KiB ahead, then stops reading the socket: the
 *   upload is paused by TCP, in the client (watch `curl`'s rate settle).
 * - If the upload breaks off (the client goes away, or sends nothing for the
 *   input timeout while the app waits), `onError` gets a `BrokenPipeError`
 *   and the app answers 400 (408 for a timeout) if the client is still there.
 * - `GET`: how to use it. Other methods: 405.
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port),
 * prints `listening on http://HOST:PORT/` and stops on Ctrl-C or SIGTERM.
 * The default export is the app (for `torsion web --app`).
 */

import { createHash, type Hash } from 'node:crypto';
import type { IDelayedCall, IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import {
  type App,
  AppResource,
  type AsyncBody,
  BrokenPipeError,
  type StartResponse,
} from '../src/web/app.js';
import { isMain, serveExample } from './serve.js';

/** The piece asked for with each `onGet`. */
const PIECE = 64 * 1024;

/** Options of {@link createUploadApp}. */
export interface UploadOptions {
  /** The clock the pacing runs on (default: the reactor). */
  clock?: IReactorTime;
  /** Bytes per second when the query gives no `rate` (default 1 MiB/s; 0: unpaced). */
  rate?: number;
}

const USAGE = `Send a body (POST or PUT) and get its byte count and SHA-256 back.
The body is read with onGet at ?rate=BYTES_PER_SECOND (default 1 MiB/s, 0 = unpaced);
meanwhile the server stops reading your upload: TCP paces it.

  curl -T big.iso 'http://HOST:PORT/?rate=1048576'
`;

/** One upload being counted: `onGet`, a pause to keep to the rate, `onGet` again. */
class PacedUpload {
  readonly #body: AsyncBody;
  readonly #startResponse: StartResponse;
  readonly #clock: IReactorTime;
  readonly #rate: number;
  readonly #hash: Hash = createHash('sha256');
  readonly #started: number;
  #bytes = 0;
  #wait: IDelayedCall | null = null;

  constructor(body: AsyncBody, startResponse: StartResponse, clock: IReactorTime, rate: number) {
    this.#body = body;
    this.#startResponse = startResponse;
    this.#clock = clock;
    this.#rate = rate;
    this.#started = clock.seconds();
    // However the response ends, no timer is left behind.
    body.onClose(() => {
      if (this.#wait?.active()) this.#wait.cancel();
    });
  }

  /** Asks for the next piece (bound once: no closure per piece). */
  readonly next = (): void => {
    this.#wait = null;
    this.#body.onGet(PIECE, this.#received, this.#broken);
  };

  readonly #received = (data: Buffer): void => {
    if (data.length === 0) {
      this.#answer('200 OK', `bytes: ${this.#bytes}\nsha256: ${this.#hash.digest('hex')}\n`);
      return;
    }
    this.#bytes += data.length;
    this.#hash.update(data);
    // Keep to the rate: wait until the bytes so far are due.
    const due = this.#rate > 0 ? this.#bytes / this.#rate - this.#elapsed() : 0;
    if (due > 0) this.#wait = this.#clock.callLater(due, this.next);
    else this.next();
  };

  readonly #broken = (error: Error): void => {
    const timedOut = error instanceof BrokenPipeError && error.timedOut;
    this.#answer(
      timedOut ? '408 Request Timeout' : '400 Bad Request',
      `the upload broke off after ${this.#bytes} bytes: ${error.message}\n`,
    );
  };

  #elapsed(): number {
    return this.#clock.seconds() - this.#started;
  }

  #answer(status: string, text: string): void {
    this.#startResponse(status, [['Content-Type', 'text/plain; charset=utf-8']]);
    this.#body.put(`${text}seconds: ${this.#elapsed().toFixed(3)}\n`);
    this.#body.finish();
  }
}

/** The upload counter (see the module documentation). */
export function createUploadApp(options: UploadOptions = {}): App {
  const clock = options.clock ?? reactor;
  const defaultRate = options.rate ?? 1024 * 1024;
  return (environ, startResponse) => {
    const method = environ.REQUEST_METHOD;
    if (method === 'GET' || method === 'HEAD') {
      startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [USAGE];
    }
    if (method !== 'POST' && method !== 'PUT') {
      startResponse('405 Method Not Allowed', [['Allow', 'GET, HEAD, POST, PUT']]);
      return [];
    }
    const given = new URLSearchParams(environ.QUERY_STRING).get('rate');
    const rate = given === null ? defaultRate : Number(given);
    if (!Number.isSafeInteger(rate) || rate < 0) {
      startResponse('400 Bad Request', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`rate must be a non-negative integer (bytes per second), got ${given}\n`];
    }
    const body = environ['torsion.async'];
    new PacedUpload(body, startResponse, clock, rate).next();
    return body;
  };
}

export default createUploadApp();

if (isMain(import.meta.url))
  process.exitCode = await serveExample(new AppResource(createUploadApp()));
