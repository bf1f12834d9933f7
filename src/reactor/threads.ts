/**
 * Threads: {@link ThreadPool}, a pool of `worker_threads` workers, and
 * `deferToThreadPool` / `deferToThread`, Twisted's `deferToThread` for
 * Node.
 *
 * A JavaScript function cannot be sent to another thread, so work is named
 * by module and export: the worker imports `modulePath` (an absolute path, a
 * `file:` URL, or a `node:` built-in; cached per worker) and calls
 * `exportName(...args)`, awaiting it if it returns a promise. Arguments and
 * results are copied with the structured clone algorithm (as `postMessage`
 * does): plain data, `Buffer`s (they arrive as `Uint8Array`), `Map`, `Set`,
 * `Date`, typed arrays, `SharedArrayBuffer` (shared, not copied)… but no
 * functions, class instances (they arrive as plain objects) or sockets.
 *
 * TypeScript task modules work when the parent runs under tsx: a worker
 * asked to import a `.ts`/`.mts`/`.cts`/`.tsx` module first registers tsx's
 * loader in itself (`tsx/esm/api`'s `register()`), since workers do not
 * inherit the parent's `--import tsx` hooks.
 *
 * @module
 */

import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Deferred, fail, succeed } from './deferred.js';
import { CancelledError, InvalidArgumentError, TorsionError } from './errors.js';
import { Failure } from './failure.js';
import type { IReactorTime } from './interfaces.js';
import { err } from './log.js';
import { reactor as defaultReactor } from './reactor.js';

// ====================================================================== errors

/**
 * An error thrown (or a promise rejected) by a task in a worker. The
 * original class cannot cross threads, so it is described: `remoteName`
 * (`'TypeError'`…), `message`, `remoteCode` (an error's `code`, if any), and
 * `stack`, which is the worker's stack (it starts with the original
 * `name: message` line).
 */
export class WorkerError extends TorsionError {
  /** The original error's `name`, e.g. `'TypeError'` (`'NonErrorThrown'` for a thrown non-Error). */
  readonly remoteName: string;
  /** The original error's `code` property, if it had a string or number one. */
  readonly remoteCode: string | number | undefined;

  constructor(remote: RemoteError) {
    super(remote.message, 'TORSION_ERR_WORKER');
    this.remoteName = remote.name;
    this.remoteCode = remote.code;
    if (remote.stack !== undefined) this.stack = remote.stack;
  }
}

/**
 * The worker running a task died (`process.exit()` in the task, an uncaught
 * error thrown outside it, an out-of-memory kill…). The pool replaces it.
 */
export class WorkerCrashedError extends TorsionError {
  /** The worker thread's exit code. */
  readonly exitCode: number;

  constructor(task: string, exitCode: number, cause: Error | null) {
    const why = cause === null ? '' : `: ${cause.message}`;
    super(
      `worker thread exited with code ${exitCode} while running ${task}${why}`,
      'TORSION_ERR_WORKER_CRASHED',
      {
        cause,
      },
    );
    this.exitCode = exitCode;
  }
}

/** Work was submitted to a stopped (or stopping) pool, or dropped by `terminate()`. */
export class ThreadPoolStoppedError extends TorsionError {
  constructor(message = 'the thread pool is stopped') {
    super(message, 'TORSION_ERR_THREAD_POOL_STOPPED');
  }
}

// ====================================================================== the worker

/** What a worker sends back for a failed task. */
interface RemoteError {
  name: string;
  message: string;
  stack?: string;
  code?: string | number;
}

type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: RemoteError };

/**
 * The worker's program (an ES module, run from a `data:` URL so that it
 * needs no file next to this one, in `src/` or `dist/` alike). One task at a
 * time: import (cached; tsx registered first for TypeScript), call, await,
 * reply. A result that cannot be cloned is reported as the task's error.
 */
const WORKER_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
const modules = new Map();
let tsx = null;
function load(url) {
  let loading = modules.get(url);
  if (loading === undefined) {
    loading = (async () => {
      if (workerData.tsxApi && /\\.(?:[cm]?ts|tsx)$/.test(url.split(/[?#]/)[0])) {
        tsx ??= import(workerData.tsxApi).then((api) => api.register());
        await tsx;
      }
      return import(url);
    })();
    modules.set(url, loading);
  }
  return loading;
}
function describe(error) {
  if (error instanceof Error) {
    const code = error.code;
    return {
      name: String(error.name),
      message: String(error.message),
      stack: typeof error.stack === 'string' ? error.stack : undefined,
      code: typeof code === 'string' || typeof code === 'number' ? code : undefined,
    };
  }
  let message;
  try { message = String(error); } catch { message = Object.prototype.toString.call(error); }
  return { name: 'NonErrorThrown', message: 'non-Error value thrown: ' + message };
}
parentPort.on('message', async ({ id, url, name, args }) => {
  try {
    const module = await load(url);
    const fn = module[name];
    if (typeof fn !== 'function') {
      throw new TypeError(name + ' is not a function exported by ' + url);
    }
    parentPort.postMessage({ id, ok: true, value: await fn(...args) });
  } catch (error) {
    parentPort.postMessage({ id, ok: false, error: describe(error) });
  }
});
`;

const WORKER_URL = new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`);

/** tsx's ESM API, resolved from torsion's own location (it is a dependency), or `null`. */
const TSX_API: string | null = (() => {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return null;
  }
})();

// ====================================================================== ThreadPool

/** Options of {@link ThreadPool}. */
export interface ThreadPoolOptions {
  /** Workers kept even when idle, started by `start()` (default 0: workers start on demand). */
  minThreads?: number;
  /** Most workers at once; more work waits in a queue (default 10). */
  maxThreads?: number;
  /** A name for logs and `toString()` (default `'ThreadPool'`). */
  name?: string;
}

/** Called with `(true, result)` or `(false, failure)` when a task completes. */
export type ThreadCallback = (success: boolean, result: unknown) => void;

interface Task {
  readonly id: number;
  readonly url: string;
  readonly name: string;
  readonly args: unknown[];
  readonly onResult: ThreadCallback;
}

interface Slot {
  readonly worker: Worker;
  task: Task | null;
  /** The worker program started ('online'). */
  online: boolean;
  /** Being terminated by the pool: takes no work; its exit is expected. */
  retiring: boolean;
  /** The first 'error' the worker reported (an uncaught exception). */
  error: Error | null;
}

const NEW = 0;
const RUNNING = 1;
const STOPPING = 2;
const STOPPED = 3;

/**
 * A pool of worker threads (Twisted's `ThreadPool`). Work queues until a
 * worker is free; at most `maxThreads` workers run, each one task at a time;
 * workers are started on demand (and `minThreads` of them by `start()`) and
 * kept once started.
 *
 * Work submitted before `start()` waits for it. Idle workers do not keep the
 * process alive (they are `unref()`ed); busy ones do. A worker that dies
 * fails its task with {@link WorkerCrashedError} and is replaced as needed.
 * A worker that cannot even start fails its task and the queue the same way,
 * rather than being retried forever.
 */
export class ThreadPool {
  readonly name: string;
  #min: number;
  #max: number;
  #state = NEW;
  readonly #slots = new Set<Slot>();
  readonly #queue: Task[] = [];
  #nextId = 1;
  #stopWaiters: Deferred<void>[] = [];

  /** @throws InvalidArgumentError unless 0 ≤ minThreads ≤ maxThreads and maxThreads ≥ 1. */
  constructor(options: ThreadPoolOptions = {}) {
    const min = options.minThreads ?? 0;
    const max = options.maxThreads ?? Math.max(10, min);
    checkSizes(min, max);
    this.#min = min;
    this.#max = max;
    this.name = options.name ?? 'ThreadPool';
  }

  /** `true` between `start()` and `stop()`. */
  get started(): boolean {
    return this.#state === RUNNING;
  }

  /** The minimum number of workers kept. */
  get minThreads(): number {
    return this.#min;
  }

  /** The maximum number of workers. */
  get maxThreads(): number {
    return this.#max;
  }

  /** Live workers (busy or idle; workers being terminated are not counted). */
  get workerCount(): number {
    let live = 0;
    for (const slot of this.#slots) if (!slot.retiring) live++;
    return live;
  }

  /** Workers running a task. */
  get busyCount(): number {
    let busy = 0;
    for (const slot of this.#slots) if (slot.task !== null) busy++;
    return busy;
  }

  /** Tasks waiting for a worker. */
  get queuedCount(): number {
    return this.#queue.length;
  }

  /**
   * Starts `minThreads` workers and the queued work. Does nothing if started.
   * @throws ThreadPoolStoppedError after `stop()`.
   */
  start(): void {
    if (this.#state === RUNNING) return;
    if (this.#state !== NEW)
      throw new ThreadPoolStoppedError('a stopped thread pool cannot be restarted');
    this.#state = RUNNING;
    this.#grow();
  }

  /**
   * Sets the pool's sizes (each left as it is when `undefined`). Workers
   * above a lower maximum are retired once idle; a higher minimum starts
   * workers at once (if started).
   * @throws InvalidArgumentError unless 0 ≤ min ≤ max and max ≥ 1.
   */
  adjustPoolsize(minThreads?: number, maxThreads?: number): void {
    const min = minThreads ?? this.#min;
    const max = maxThreads ?? this.#max;
    checkSizes(min, max);
    this.#min = min;
    this.#max = max;
    let excess = this.workerCount - max;
    for (const slot of this.#slots) {
      if (excess <= 0) break;
      if (slot.task === null && !slot.retiring) {
        this.#retire(slot);
        excess--;
      }
    }
    this.#grow();
  }

  /**
   * Runs `exportName(...args)` of `modulePath` in a worker and calls
   * `onResult(true, value)` or `onResult(false, failure)` (a {@link Failure}
   * of {@link WorkerError}, {@link WorkerCrashedError},
   * `InvalidArgumentError` for arguments that cannot be cloned, or
   * {@link ThreadPoolStoppedError} after `terminate()`), later, from the
   * event loop. An exception from `onResult` is logged.
   * @returns the task's id, for {@link ThreadPool.cancel}.
   * @throws InvalidArgumentError for a relative path or an empty export name.
   * @throws ThreadPoolStoppedError once `stop()` has been called.
   */
  callInThreadWithCallback(
    onResult: ThreadCallback,
    modulePath: string | URL,
    exportName: string,
    ...args: unknown[]
  ): number {
    if (this.#state >= STOPPING) throw new ThreadPoolStoppedError();
    const url = moduleURL(modulePath);
    if (typeof exportName !== 'string' || exportName === '') {
      throw new InvalidArgumentError('exportName must be a non-empty string');
    }
    const task: Task = { id: this.#nextId++, url, name: exportName, args, onResult };
    this.#queue.push(task);
    this.#dispatch();
    return task.id;
  }

  /**
   * Runs `exportName(...args)` of `modulePath` in a worker; its failure, if
   * any, is logged.
   * @throws as {@link ThreadPool.callInThreadWithCallback}.
   */
  callInThread(modulePath: string | URL, exportName: string, ...args: unknown[]): void {
    this.callInThreadWithCallback(logFailure, modulePath, exportName, ...args);
  }

  /**
   * Removes a task that is still queued; its callback is never called.
   * @returns `false` if it is already running or done (it cannot be stopped).
   */
  cancel(taskId: number): boolean {
    const index = this.#queue.findIndex((task) => task.id === taskId);
    if (index === -1) return false;
    this.#queue.splice(index, 1);
    this.#maybeStopped();
    return true;
  }

  /**
   * Stops the pool: no more work is accepted; the work already queued and
   * running completes (in a pool that was never started, queued work fails
   * with {@link ThreadPoolStoppedError}); then every worker is terminated.
   * The Deferred fires once the last worker has exited. Every call returns a
   * Deferred firing at that moment (at once when already stopped).
   */
  stop(): Deferred<void> {
    if (this.#state === STOPPED) return succeed(undefined);
    const d = new Deferred<void>();
    this.#stopWaiters.push(d);
    if (this.#state === NEW) {
      this.#failQueue(new ThreadPoolStoppedError('the thread pool was stopped before it started'));
    }
    this.#state = STOPPING;
    this.#maybeStopped();
    return d;
  }

  /**
   * Stops at once: queued and running tasks fail with
   * {@link ThreadPoolStoppedError} and every worker is terminated (a task in
   * the middle of synchronous code is interrupted). Fires as `stop()`'s
   * Deferred does.
   */
  terminate(): Deferred<void> {
    const d = this.stop();
    this.#failQueue(new ThreadPoolStoppedError('the thread pool was terminated'));
    for (const slot of this.#slots) {
      const task = slot.task;
      slot.task = null;
      if (task !== null)
        deliver(
          task,
          false,
          new Failure(new ThreadPoolStoppedError('the thread pool was terminated')),
        );
      this.#retire(slot);
    }
    return d;
  }

  /** `<ThreadPool name: N workers, B busy, Q queued>`, for logs. */
  toString(): string {
    return `<ThreadPool ${this.name}: ${this.workerCount} workers, ${this.busyCount} busy, ${this.queuedCount} queued>`;
  }

  // ------------------------------------------------------------------ internals

  /** Hands queued tasks to idle workers, starting workers up to the maximum. */
  #dispatch(): void {
    if (this.#state === NEW || this.#state === STOPPED) return;
    while (this.#queue.length > 0) {
      let free: Slot | null = null;
      for (const slot of this.#slots) {
        if (slot.task === null && !slot.retiring) {
          free = slot;
          break;
        }
      }
      if (free === null) {
        if (this.workerCount >= this.#max) return;
        free = this.#spawn();
      }
      this.#run(free, this.#queue.shift()!);
    }
  }

  /** Starts workers up to the minimum, then dispatches. */
  #grow(): void {
    if (this.#state !== RUNNING) return;
    while (this.workerCount < this.#min) this.#spawn();
    this.#dispatch();
  }

  #spawn(): Slot {
    const worker = new Worker(WORKER_URL, { workerData: { tsxApi: TSX_API } });
    const slot: Slot = { worker, task: null, online: false, retiring: false, error: null };
    worker.on('online', () => {
      slot.online = true;
    });
    worker.on('message', (reply: Reply) => this.#replied(slot, reply));
    worker.on('error', (error: Error) => {
      slot.error ??= error;
    });
    worker.on('exit', (code: number) => this.#exited(slot, code));
    worker.unref();
    this.#slots.add(slot);
    return slot;
  }

  #run(slot: Slot, task: Task): void {
    slot.task = task;
    slot.worker.ref();
    try {
      slot.worker.postMessage({ id: task.id, url: task.url, name: task.name, args: task.args });
    } catch (e) {
      slot.task = null;
      slot.worker.unref();
      const why = e instanceof Error ? e.message : String(e);
      deliver(
        task,
        false,
        new Failure(
          new InvalidArgumentError(
            `arguments of ${describeTask(task)} cannot be sent to a worker: ${why}`,
          ),
        ),
      );
    }
  }

  #replied(slot: Slot, reply: Reply): void {
    const task = slot.task;
    if (task === null || task.id !== reply.id) return;
    slot.task = null;
    slot.worker.unref();
    if (reply.ok) deliver(task, true, reply.value);
    else deliver(task, false, new Failure(new WorkerError(reply.error)));
    if (this.workerCount > this.#max) this.#retire(slot);
    this.#dispatch();
    this.#maybeStopped();
  }

  #exited(slot: Slot, code: number): void {
    this.#slots.delete(slot);
    const task = slot.task;
    slot.task = null;
    if (task !== null) {
      deliver(
        task,
        false,
        new Failure(new WorkerCrashedError(describeTask(task), code, slot.error)),
      );
    }
    if (!slot.online && !slot.retiring) {
      // The worker could not start at all: another would fail the same way.
      const error = new WorkerCrashedError('the worker program', code, slot.error);
      if (this.#slots.size === 0) this.#failQueue(error);
      err(error, `${this.name}: a worker thread failed to start`);
    } else if (this.#state === RUNNING || this.#state === STOPPING) {
      this.#grow();
      this.#dispatch();
    }
    this.#maybeStopped();
  }

  #retire(slot: Slot): void {
    if (slot.retiring) return;
    slot.retiring = true;
    // 'exit' follows and removes the slot.
    slot.worker.terminate().catch(noop);
  }

  #failQueue(error: Error): void {
    const tasks = this.#queue.splice(0);
    for (const task of tasks) deliver(task, false, new Failure(error));
  }

  #maybeStopped(): void {
    if (this.#state !== STOPPING || this.#queue.length > 0) return;
    for (const slot of this.#slots) if (slot.task !== null) return;
    for (const slot of this.#slots) this.#retire(slot);
    if (this.#slots.size > 0) return;
    this.#state = STOPPED;
    const waiters = this.#stopWaiters;
    this.#stopWaiters = [];
    for (const d of waiters) d.callback(undefined);
  }
}

function noop(): void {}

function checkSizes(min: number, max: number): void {
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || max < 1 || min > max) {
    throw new InvalidArgumentError(
      `thread pool sizes need 0 <= minThreads <= maxThreads and maxThreads >= 1: min ${min}, max ${max}`,
    );
  }
}

function moduleURL(modulePath: string | URL): string {
  if (modulePath instanceof URL) modulePath = modulePath.href;
  if (typeof modulePath === 'string') {
    if (/^(?:file|node|data):/.test(modulePath)) return modulePath;
    if (isAbsolute(modulePath)) return pathToFileURL(modulePath).href;
  }
  throw new InvalidArgumentError(
    `modulePath must be an absolute path or a file:, node: or data: URL: ${String(modulePath)}`,
  );
}

function describeTask(task: Task): string {
  return `${task.name}() of ${task.url}`;
}

function deliver(task: Task, success: boolean, result: unknown): void {
  try {
    task.onResult(success, result);
  } catch (e) {
    err(e, `Unhandled error in the callback of ${describeTask(task)}`);
  }
}

function logFailure(success: boolean, result: unknown): void {
  if (!success) err(result, 'Unhandled error in a thread pool task');
}

// ====================================================================== deferToThread

/**
 * Runs `exportName(...args)` of the module `modulePath` in a worker of
 * `pool` and returns a Deferred of its (awaited) result; a failure arrives as
 * a {@link Failure} of {@link WorkerError} (thrown or rejected in the
 * worker), {@link WorkerCrashedError}, `InvalidArgumentError` (arguments that
 * cannot be cloned, a bad path) or {@link ThreadPoolStoppedError}. Never
 * throws. Cancelling it removes the task if it is still queued; a running
 * task goes on and its result is dropped.
 *
 * `reactor` is taken for Twisted's signature: results are delivered from
 * Node's event loop whatever the reactor.
 *
 * @typeParam R - the result type; the module is not type-checked against it.
 */
export function deferToThreadPool<R = unknown>(
  _reactor: IReactorTime,
  pool: ThreadPool,
  modulePath: string | URL,
  exportName: string,
  ...args: unknown[]
): Deferred<R> {
  let taskId = 0;
  const d = new Deferred<R>((self) => {
    if (pool.cancel(taskId)) self.errback(new Failure(new CancelledError()));
  });
  try {
    taskId = pool.callInThreadWithCallback(
      (success, result) => {
        if (d.called) return; // cancelled while running
        if (success) d.callback(result as R);
        else d.errback(result);
      },
      modulePath,
      exportName,
      ...args,
    );
  } catch (e) {
    return fail(e);
  }
  return d;
}

/**
 * `deferToThreadPool` on the default reactor's pool
 * (`reactor.getThreadPool()`, started on first use and stopped at the
 * reactor's shutdown).
 */
export function deferToThread<R = unknown>(
  modulePath: string | URL,
  exportName: string,
  ...args: unknown[]
): Deferred<R> {
  return deferToThreadPool<R>(
    defaultReactor,
    defaultReactor.getThreadPool(),
    modulePath,
    exportName,
    ...args,
  );
}
