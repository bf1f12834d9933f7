/**
 * The web demo: static files, a form echo and a streaming response.
 *
 *     npx tsx examples/site.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --resource examples/site.ts
 *
 * - `/` and every other path: the files under `examples/site/` (`File`:
 *   index page, directory listing under `/files/`, ranges, conditional GETs);
 * - `/form`: `GET` shows an HTML form; `POST` (urlencoded) shows the fields
 *   sent, HTML-escaped (another content type: 415; over 64 KiB: 413);
 * - `/stream`: a line every 100 ms for 2 s, written by a push producer
 *   driven by the reactor's `callLater` (paused while the client does not
 *   read; stopped if it goes away).
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port),
 * prints `listening on http://HOST:PORT/` and stops on Ctrl-C or SIGTERM.
 * The default export builds the root resource (for `torsion web --resource`).
 */

import { fileURLToPath } from 'node:url';
import type { IDelayedCall, IPushProducer, IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { escapeHTML, HTTPException } from '../src/web/errors.js';
import type { IRequest, IResource } from '../src/web/iweb.js';
import type { RenderResult } from '../src/web/resource.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';
import { File } from '../src/web/static.js';
import { isMain, serveExample } from './serve.js';

/** The directory of static files next to this module. */
export const SITE_DIRECTORY = fileURLToPath(new URL('./site/', import.meta.url));

/** The largest form body accepted (bigger: 413). */
const MAX_FORM_BYTES = 64 * 1024;

const FORM_PAGE = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Form echo</title><link rel="stylesheet" href="style.css"></head>
<body>
  <h1>Form echo</h1>
  <form method="post" action="form">
    <label>Name <input name="name"></label>
    <label>Message <textarea name="message" rows="3" cols="40"></textarea></label>
    <label><input type="checkbox" name="topping" value="cheese"> cheese</label>
    <label><input type="checkbox" name="topping" value="olives"> olives</label>
    <button>Send</button>
  </form>
  <p><a href="./">Back</a></p>
</body>
</html>
`;

/** `/form`: GET shows the form; POST echoes the urlencoded fields, escaped. */
export class FormEcho extends Resource {
  render_GET(request: IRequest): RenderResult {
    request.setHeader('Content-Type', 'text/html; charset=utf-8');
    return FORM_PAGE;
  }

  async render_POST(request: IRequest): Promise<string> {
    const type = (request.getHeader('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new HTTPException(415, 'Send the form as application/x-www-form-urlencoded.');
    }
    // Rejects with a 413 HTTPError past the cap: the site answers it.
    const body = await request.body(MAX_FORM_BYTES);
    const rows: string[] = [];
    for (const [name, value] of new URLSearchParams(body.toString('utf8'))) {
      rows.push(`    <tr><th>${escapeHTML(name)}</th><td>${escapeHTML(value)}</td></tr>`);
    }
    request.setHeader('Content-Type', 'text/html; charset=utf-8');
    return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Form echo</title><link rel="stylesheet" href="style.css"></head>
<body>
  <h1>You sent ${rows.length} field${rows.length === 1 ? '' : 's'}</h1>
  <table>
${rows.join('\n')}
  </table>
  <p><a href="form">Again</a></p>
</body>
</html>
`;
  }
}

/**
 * Writes `lines` lines to a request, one every `interval` seconds, then
 * finishes it. A push producer: the request pauses it while the client
 * reads slowly (the pending call is cancelled, and a full interval starts
 * again on resume), and stops it if the connection goes away.
 */
export class LineTicker implements IPushProducer {
  readonly #request: IRequest;
  readonly #clock: IReactorTime;
  readonly #interval: number;
  readonly #lines: number;
  readonly #started: number;
  #sent = 0;
  #call: IDelayedCall | null = null;
  #paused = false;
  #done = false;

  constructor(request: IRequest, clock: IReactorTime, interval: number, lines: number) {
    this.#request = request;
    this.#clock = clock;
    this.#interval = interval;
    this.#lines = lines;
    this.#started = clock.seconds();
  }

  /** Registers itself as the request's producer and schedules the first line. */
  start(): void {
    this.#request.registerProducer(this, true);
    this.#schedule();
  }

  #schedule(): void {
    this.#call = this.#clock.callLater(this.#interval, this.#tick);
  }

  readonly #tick = (): void => {
    this.#call = null;
    this.#sent++;
    const elapsed = (this.#clock.seconds() - this.#started).toFixed(1);
    this.#request.write(`line ${this.#sent} of ${this.#lines} at ${elapsed} s\n`);
    if (this.#sent === this.#lines) {
      this.#done = true;
      this.#request.unregisterProducer();
      this.#request.finish();
    } else if (!this.#paused && !this.#done) {
      this.#schedule();
    }
  };

  pauseProducing(): void {
    this.#paused = true;
    this.#cancel();
  }

  resumeProducing(): void {
    if (!this.#paused || this.#done) return;
    this.#paused = false;
    if (this.#call === null) this.#schedule();
  }

  stopProducing(): void {
    this.#done = true;
    this.#cancel();
  }

  #cancel(): void {
    if (this.#call !== null) {
      this.#call.cancel();
      this.#call = null;
    }
  }
}

/** Options of {@link Stream}. */
export interface StreamOptions {
  /** The clock lines are scheduled on (default: the reactor). */
  clock?: IReactorTime;
  /** Seconds between lines (default 0.1). */
  interval?: number;
  /** How many lines (default 20). */
  lines?: number;
}

/** `/stream`: a line every 100 ms for 2 s (see {@link LineTicker}). */
export class Stream extends Resource {
  override isLeaf = true;
  readonly #clock: IReactorTime;
  readonly #interval: number;
  readonly #lines: number;

  constructor(options: StreamOptions = {}) {
    super();
    this.#clock = options.clock ?? reactor;
    this.#interval = options.interval ?? 0.1;
    this.#lines = options.lines ?? 20;
  }

  render_GET(request: IRequest): RenderResult {
    request.setHeader('Content-Type', 'text/plain; charset=utf-8');
    // Browsers then show the lines as they come instead of sniffing first.
    request.setHeader('X-Content-Type-Options', 'nosniff');
    request.setHeader('Cache-Control', 'no-store');
    const ticker = new LineTicker(request, this.#clock, this.#interval, this.#lines);
    // A lost connection also stops the producer; observing the failure here
    // keeps it from being reported as unhandled.
    request.notifyFinish().addErrback(() => ticker.stopProducing());
    ticker.start();
    return NOT_DONE_YET;
  }
}

/** Options of {@link createSite}. */
export interface DemoOptions {
  /** The clock of `/stream` (default: the reactor). */
  clock?: IReactorTime;
  /** The directory of static files (default {@link SITE_DIRECTORY}). */
  directory?: string;
}

/** The demo's root resource: the static files, with `/form` and `/stream` mounted on them. */
export function createSite(options: DemoOptions = {}): IResource {
  const root = new File(options.directory ?? SITE_DIRECTORY);
  root.putChild('form', new FormEcho());
  root.putChild('stream', new Stream({ clock: options.clock ?? reactor }));
  return root;
}

export default function demo(): IResource {
  return createSite();
}

if (isMain(import.meta.url)) process.exitCode = await serveExample(createSite());
