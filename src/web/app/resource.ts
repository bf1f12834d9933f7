/**
 * {@link AppResource}: the resource that hosts an app (Twisted's
 * `WSGIResource`, on the reactor instead of a thread pool).
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import type { IReactorTime } from '../../reactor/interfaces.js';
import { type IRequest, NOT_DONE_YET, type RenderResult } from '../iweb.js';
import { Resource } from '../resource.js';
import { type AppConfig, AppDriver } from './driver.js';
import type { App, AsyncApp } from './types.js';

/** Options of an {@link AppResource}. Times in seconds (as `callLater`). */
export interface AppResourceOptions {
  /**
   * Time for the input timeout and the back-off (a `Clock` in tests).
   * Default: the reactor of the site serving the request (the global
   * reactor unless the site was given another).
   */
  reactor?: IReactorTime;
  /**
   * How long a read of the request body (`onGet`, `wsgi.input`) may wait
   * for the client before the input breaks with `BrokenPipeError`, in
   * seconds (as everywhere in torsion).
   * Only time spent waiting for the client counts, not time the app takes
   * between reads. Default 60; 0 disables it.
   */
  inputTimeout?: number;
  /**
   * The back-off when a wrapped body yields empty chunks, in seconds: the
   * first delay (default 0.001: 1 ms), doubled after each empty chunk up to
   * `max` (default 0.1: 100 ms), back to `initial` after a non-empty chunk.
   */
  backoff?: { initial?: number; max?: number };
  /** The longest line `wsgi.input.readline()` without a size returns, in bytes. Default 64 KiB. */
  maxLineLength?: number;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${name} must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = nonNegative(name, value, fallback);
  if (v === 0) throw new InvalidArgumentError(`${name} must be greater than 0`);
  return v;
}

/**
 * Hosts an app (see `App`): a leaf resource, so every path below where it
 * is mounted reaches the app, with `SCRIPT_NAME` the mount point and
 * `PATH_INFO` the rest; every method is the app's. Each request is one app
 * call, on the reactor.
 *
 * @example
 * ```ts
 * const hello: App = (environ, startResponse) => {
 *   startResponse('200 OK', [['Content-Type', 'text/plain']]);
 *   return [`Hello from ${environ.PATH_INFO}\n`];
 * };
 * const root = new Resource();
 * root.putChild('app', new AppResource(hello));
 * ```
 */
export class AppResource extends Resource {
  override isLeaf = true;
  /** The app this resource hosts. */
  readonly app: App | AsyncApp;
  readonly #config: AppConfig;

  /**
   * @throws InvalidArgumentError if `app` is not a function, or for a bad option.
   */
  constructor(app: App | AsyncApp, options: AppResourceOptions = {}) {
    super();
    if (typeof app !== 'function') {
      throw new InvalidArgumentError(
        'AppResource: app must be a function (environ, startResponse)',
      );
    }
    const reactor = options.reactor;
    if (
      reactor !== undefined &&
      (reactor === null ||
        typeof reactor.callLater !== 'function' ||
        typeof reactor.seconds !== 'function')
    ) {
      throw new InvalidArgumentError('AppResource: reactor must provide IReactorTime');
    }
    const initial = positive('backoff.initial', options.backoff?.initial, 0.001);
    const max = positive('backoff.max', options.backoff?.max, 0.1);
    if (max < initial) {
      throw new InvalidArgumentError('AppResource: backoff.max must not be below backoff.initial');
    }
    const maxLine = options.maxLineLength ?? 64 * 1024;
    if (!Number.isSafeInteger(maxLine) || maxLine < 1) {
      throw new InvalidArgumentError('AppResource: maxLineLength must be a positive integer');
    }
    this.app = app;
    this.#config = {
      reactor: reactor ?? null,
      inputTimeout: nonNegative('inputTimeout', options.inputTimeout, 60),
      // The puller counts its delays in whole milliseconds (exact doubling).
      backoffInitial: initial * 1000,
      backoffMax: max * 1000,
      maxLineLength: maxLine,
    };
  }

  /** Runs the app for `request` (any method); the app's driver finishes the request. */
  override render(request: IRequest): RenderResult {
    new AppDriver(this.#config, request, this.app).start();
    return NOT_DONE_YET;
  }
}
