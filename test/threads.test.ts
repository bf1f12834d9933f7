/**
 * Threads: ThreadPool / deferToThreadPool / deferToThread with real worker
 * threads running the TypeScript fixture test/fixtures/thread-tasks.ts:
 * results, errors, crashes, sizing (counted through shared memory, not
 * timed), stop and terminate, and the reactor's pool.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Deferred } from '../src/reactor/deferred.js';
import { CancelledError, InvalidArgumentError } from '../src/reactor/errors.js';
import { reactor } from '../src/reactor/reactor.js';
import {
  deferToThread,
  deferToThreadPool,
  ThreadPool,
  ThreadPoolStoppedError,
  WorkerCrashedError,
  WorkerError,
} from '../src/reactor/threads.js';

const TASKS = fileURLToPath(new URL('./fixtures/thread-tasks.ts', import.meta.url));

/**
 * `assert.ok(value instanceof type)` with a message: a failing `assert.ok`
 * without one makes Node re-parse the (tsx-compiled) source, which can hang.
 */
function isA<T>(value: unknown, type: abstract new (...args: never[]) => T): asserts value is T {
  const got = value as { constructor?: { name?: string }; message?: string } | null;
  assert.ok(
    value instanceof type,
    `expected a ${type.name}, got ${got?.constructor?.name}: ${got?.message ?? String(value)}`,
  );
}

/** The failure's error of a Deferred expected to fail. */
async function failureOf(d: Deferred<unknown>): Promise<Error> {
  return d.asPromise().then(
    (value) => assert.fail(`expected a failure, got ${String(value)}`),
    (error: Error) => error,
  );
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Runs `fn` with a started pool, always stopped (terminated) afterwards. */
async function withPool(
  options: ConstructorParameters<typeof ThreadPool>[0],
  fn: (pool: ThreadPool) => Promise<void>,
): Promise<void> {
  const pool = new ThreadPool(options);
  pool.start();
  try {
    await fn(pool);
  } finally {
    await pool.terminate();
    assert.equal(pool.workerCount, 0);
  }
}

function run<R>(pool: ThreadPool, name: string, ...args: unknown[]): Deferred<R> {
  return deferToThreadPool<R>(reactor, pool, TASKS, name, ...args);
}

// ---------------------------------------------------------------------- tests

describe('deferToThreadPool: results', () => {
  test('sync and async exports of a TypeScript module', async () => {
    await withPool({ maxThreads: 2 }, async (pool) => {
      assert.equal(await run<number>(pool, 'add', 2, 3), 5);
      assert.equal(await run<string>(pool, 'upper', 'quiet'), 'QUIET');
    });
  });

  test('the module may be a file: URL (string or URL) or a node: built-in', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const url = pathToFileURL(TASKS);
      assert.equal(await deferToThreadPool(reactor, pool, url, 'add', 1, 1), 2);
      assert.equal(await deferToThreadPool(reactor, pool, url.href, 'add', 2, 2), 4);
      assert.equal(await deferToThreadPool(reactor, pool, 'node:path', 'join', 'a', 'b'), 'a/b');
    });
  });

  test('arguments and results are structured clones', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const date = new Date(0);
      const [map, when, bytes, nested] = await run<unknown[]>(
        pool,
        'echo',
        new Map([['k', 1]]),
        date,
        Buffer.from('hi'),
        { a: [1, { b: null }] },
      );
      assert.deepEqual(map, new Map([['k', 1]]));
      isA(when, Date);
      assert.equal(when.getTime(), 0);
      assert.notEqual(when, date);
      isA(bytes, Uint8Array);
      assert.equal(Buffer.from(bytes).toString(), 'hi');
      assert.deepEqual(nested, { a: [1, { b: null }] });
    });
  });

  test('a relative path or empty export is InvalidArgumentError, as a failed Deferred', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      isA(
        await failureOf(deferToThreadPool(reactor, pool, './tasks.ts', 'add')),
        InvalidArgumentError,
      );
      isA(await failureOf(deferToThreadPool(reactor, pool, TASKS, '')), InvalidArgumentError);
      assert.equal(pool.workerCount, 0);
    });
  });
});

describe('deferToThreadPool: errors', () => {
  test('a thrown error arrives as a WorkerError with its name, message, code and stack', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const error = await failureOf(run(pool, 'throwsTypeError', 'bad input'));
      isA(error, WorkerError);
      assert.equal(error.code, 'TORSION_ERR_WORKER');
      assert.equal(error.remoteName, 'TypeError');
      assert.equal(error.message, 'bad input');
      assert.equal(error.remoteCode, 'E_FIXTURE');
      assert.match(error.stack ?? '', /^TypeError: bad input/);
      assert.match(error.stack ?? '', /thread-tasks\.ts/);
      // The worker survives a task's error.
      assert.equal(pool.workerCount, 1);
      assert.equal(await run<number>(pool, 'add', 1, 2), 3);
    });
  });

  test('a rejected promise, a thrown string, a missing export, a missing module', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const rejected = await failureOf(run(pool, 'rejects', 'out of range'));
      isA(rejected, WorkerError);
      assert.equal(rejected.remoteName, 'RangeError');
      const thrown = await failureOf(run(pool, 'throwsString'));
      isA(thrown, WorkerError);
      assert.equal(thrown.remoteName, 'NonErrorThrown');
      assert.match(thrown.message, /just a string/);
      const missing = await failureOf(run(pool, 'notAFunction'));
      isA(missing, WorkerError);
      assert.match(missing.message, /notAFunction is not a function/);
      const noModule = await failureOf(
        deferToThreadPool(reactor, pool, '/nonexistent/torsion/tasks.js', 'add'),
      );
      isA(noModule, WorkerError);
      assert.equal(noModule.remoteCode, 'ERR_MODULE_NOT_FOUND');
    });
  });

  test('arguments or results that cannot be cloned', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const badArgs = await failureOf(run(pool, 'echo', () => {}));
      isA(badArgs, InvalidArgumentError);
      assert.match(badArgs.message, /cannot be sent to a worker/);
      const badResult = await failureOf(run(pool, 'returnsFunction'));
      isA(badResult, WorkerError);
      assert.equal(badResult.remoteName, 'DataCloneError');
      assert.equal(await run<number>(pool, 'add', 1, 1), 2);
    });
  });

  test('process.exit in a task: WorkerCrashedError, and the worker is replaced', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const before = await run<number>(pool, 'whoAmI');
      const error = await failureOf(run(pool, 'exit', 7));
      isA(error, WorkerCrashedError);
      assert.equal(error.code, 'TORSION_ERR_WORKER_CRASHED');
      assert.equal(error.exitCode, 7);
      assert.match(error.message, /exit\(\) of .*thread-tasks\.ts/);
      const after = await run<number>(pool, 'whoAmI');
      assert.notEqual(after, before);
      assert.equal(pool.workerCount, 1);
    });
  });

  test('an uncaught error in the worker fails the running task; queued work goes on', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const crashed = run(pool, 'crashLater');
      const queued = run<number>(pool, 'add', 20, 22);
      const error = await failureOf(crashed);
      isA(error, WorkerCrashedError);
      assert.equal(error.exitCode, 1);
      assert.match(error.message, /uncaught in the worker/);
      assert.equal(await queued, 42);
    });
  });
});

describe('ThreadPool', () => {
  test('maxThreads 2: six blocking tasks run two at a time, the rest queue', async () => {
    await withPool({ maxThreads: 2 }, async (pool) => {
      const counters = new Int32Array(new SharedArrayBuffer(16));
      const results = Array.from({ length: 6 }, (_, i) => run<number>(pool, 'gated', counters, i));
      // Bounded by the test timeout; two tasks start as soon as two workers are up.
      while (Atomics.load(counters, 2) < 2) await turns(1);
      assert.equal(Atomics.load(counters, 0), 2);
      assert.equal(pool.busyCount, 2);
      assert.equal(pool.queuedCount, 4);
      assert.equal(pool.workerCount, 2);
      Atomics.store(counters, 3, 1);
      Atomics.notify(counters, 3);
      const values = await Promise.all(results.map((d) => d.asPromise()));
      assert.deepEqual(values, [0, 1, 2, 3, 4, 5]);
      assert.equal(Atomics.load(counters, 1), 2, 'at most two at once');
      assert.equal(Atomics.load(counters, 2), 6);
      assert.equal(pool.workerCount, 2);
      assert.equal(pool.busyCount, 0);
    });
  });

  test('work submitted before start() waits for it', async () => {
    const pool = new ThreadPool({ maxThreads: 1 });
    try {
      const d = run<number>(pool, 'add', 1, 2);
      await turns(3);
      assert.equal(d.called, false);
      assert.equal(pool.queuedCount, 1);
      assert.equal(pool.workerCount, 0);
      pool.start();
      assert.equal(await d, 3);
    } finally {
      await pool.stop();
    }
  });

  test('minThreads workers start with the pool; sizes are checked', async () => {
    await withPool({ minThreads: 2, maxThreads: 3 }, async (pool) => {
      assert.equal(pool.workerCount, 2);
      assert.throws(() => pool.adjustPoolsize(4, 3), InvalidArgumentError);
      assert.throws(() => pool.adjustPoolsize(undefined, 0), InvalidArgumentError);
      assert.throws(() => new ThreadPool({ minThreads: -1 }), InvalidArgumentError);
      assert.throws(() => new ThreadPool({ maxThreads: 1.5 }), InvalidArgumentError);
      pool.adjustPoolsize(0, 1);
      assert.equal(pool.workerCount, 1);
      assert.equal(pool.maxThreads, 1);
    });
  });

  test('stop(): queued and running work completes, then no worker is left', async () => {
    const pool = new ThreadPool({ maxThreads: 1 });
    pool.start();
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const running = run<string>(pool, 'waitFor', gate, 'first');
    const queued = run<number>(pool, 'add', 1, 1);
    while (pool.busyCount === 0) await turns(1);
    const stopped = pool.stop();
    const again = pool.stop();
    assert.equal(pool.started, false);
    isA(await failureOf(run(pool, 'add', 1, 1)), ThreadPoolStoppedError);
    assert.throws(() => pool.callInThread(TASKS, 'add', 1, 1), ThreadPoolStoppedError);
    assert.equal(stopped.called, false);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    assert.equal(await running, 'first');
    assert.equal(await queued, 2);
    await stopped;
    assert.equal(again.called, true);
    assert.equal(pool.workerCount, 0);
    assert.equal(pool.stop().called, true);
    assert.throws(() => pool.start(), ThreadPoolStoppedError);
  });

  test('stop() before start(): queued work fails with ThreadPoolStoppedError', async () => {
    const pool = new ThreadPool();
    const d = run(pool, 'add', 1, 1);
    await pool.stop();
    isA(await failureOf(d), ThreadPoolStoppedError);
    assert.equal(pool.workerCount, 0);
  });

  test('terminate(): running and queued work fail, workers are gone', async () => {
    const pool = new ThreadPool({ maxThreads: 1 });
    pool.start();
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const running = run(pool, 'waitFor', gate, 'never');
    const queued = run(pool, 'add', 1, 1);
    while (pool.busyCount === 0) await turns(1);
    await pool.terminate();
    isA(await failureOf(running), ThreadPoolStoppedError);
    isA(await failureOf(queued), ThreadPoolStoppedError);
    assert.equal(pool.workerCount, 0);
  });

  test('cancelling a queued task removes it: it never runs', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const gate = new Int32Array(new SharedArrayBuffer(4));
      const running = run<string>(pool, 'waitFor', gate, 'kept');
      const counters = new Int32Array(new SharedArrayBuffer(16));
      Atomics.store(counters, 3, 1); // gate open: the task would count itself at once
      const cancelled = run(pool, 'gated', counters, 0);
      cancelled.cancel();
      isA(await failureOf(cancelled), CancelledError);
      assert.equal(pool.queuedCount, 0);
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      assert.equal(await running, 'kept');
      assert.equal(await run<number>(pool, 'add', 0, 0), 0); // ran after where the cancelled one was
      assert.equal(Atomics.load(counters, 2), 0);
    });
  });

  test('cancelling a running task fails its Deferred; the late result is dropped', async () => {
    await withPool({ maxThreads: 1 }, async (pool) => {
      const gate = new Int32Array(new SharedArrayBuffer(4));
      const d = run<string>(pool, 'waitFor', gate, 'late');
      while (pool.busyCount === 0) await turns(1);
      d.cancel();
      isA(await failureOf(d), CancelledError);
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      assert.equal(await run<number>(pool, 'add', 1, 1), 2);
    });
  });
});

describe('the reactor thread pool', () => {
  test('deferToThread, suggestThreadPoolSize, and the pool stops at reactor shutdown', async () => {
    const pool = reactor.getThreadPool();
    assert.equal(reactor.getThreadPool(), pool);
    assert.equal(pool.started, true);
    reactor.suggestThreadPoolSize(3);
    assert.equal(pool.maxThreads, 3);
    assert.throws(() => reactor.suggestThreadPoolSize(0), InvalidArgumentError);
    assert.equal(await deferToThread<number>(TASKS, 'add', 40, 2), 42);
    assert.equal(pool.workerCount, 1);

    const stopped = reactor.run({ installSignalHandlers: false });
    reactor.stop();
    await stopped;
    assert.equal(pool.started, false);
    assert.equal(pool.workerCount, 0);
    isA(
      await failureOf(deferToThreadPool(reactor, pool, TASKS, 'add', 1, 1)),
      ThreadPoolStoppedError,
    );

    // The next use makes a new pool (stopped at the next shutdown).
    const next = reactor.getThreadPool();
    assert.notEqual(next, pool);
    assert.equal(await deferToThread<number>(TASKS, 'add', 1, 1), 2);
    await next.stop();
  });
});
