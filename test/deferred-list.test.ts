import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Deferred, succeed } from '../src/reactor/deferred.js';
import { DeferredList, gatherResults } from '../src/reactor/deferred-list.js';
import { DeferredLock, DeferredQueue, DeferredSemaphore } from '../src/reactor/deferred-sync.js';
import {
  CancelledError,
  FirstError,
  InvalidArgumentError,
  QueueOverflow,
  QueueUnderflow,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';

class BoomError extends Error {}

describe('DeferredList', () => {
  test('fires with [success, result] entries in order once all have fired', () => {
    const a = new Deferred<number>();
    const b = new Deferred<number>();
    const list = new DeferredList([a, b], { consumeErrors: true });
    let result = undefined as unknown;
    list.addCallback((r) => {
      result = r;
    });
    b.errback(new BoomError('b'));
    assert.equal(result === undefined, true);
    a.callback(1);
    const entries = result as [boolean, unknown][];
    assert.equal(entries.length, 2);
    assert.deepEqual(entries[0], [true, 1]);
    assert.equal(entries[1][0], false);
    assert.equal((entries[1][1] as Failure).getErrorMessage(), 'b');
    assert.equal(b.result, undefined, 'consumeErrors stops the failure in b');
  });

  test('without consumeErrors the failure stays in the sub-Deferred', () => {
    const b = new Deferred<number>();
    new DeferredList([b]);
    b.errback(new BoomError('kept'));
    let kept = '';
    b.addErrback((f) => {
      kept = f.getErrorMessage();
    });
    assert.equal(kept, 'kept');
  });

  test('an empty list fires at once with []', () => {
    let result = undefined as unknown;
    new DeferredList([]).addCallback((r) => {
      result = r;
    });
    assert.deepEqual(result, []);
  });

  test('fireOnOneCallback fires with [value, index] on the first success', () => {
    const a = new Deferred<string>();
    const b = new Deferred<string>();
    let result = undefined as unknown;
    new DeferredList([a, b], { fireOnOneCallback: true }).addCallback((r) => {
      result = r;
    });
    b.callback('second');
    assert.deepEqual(result, ['second', 1]);
    a.callback('late'); // no AlreadyCalledError
  });

  test('fireOnOneErrback fails with FirstError on the first failure', () => {
    const a = new Deferred<string>();
    const b = new Deferred<string>();
    let failure = undefined as Failure | undefined;
    new DeferredList([a, b], { fireOnOneErrback: true, consumeErrors: true }).addErrback((f) => {
      failure = f;
    });
    b.errback(new BoomError('first'));
    assert.ok(failure?.value instanceof FirstError);
    assert.equal((failure!.value as FirstError).index, 1);
    a.errback(new BoomError('second')); // ignored, no throw
  });

  test('cancelling the list cancels the pending Deferreds', () => {
    const cancelled: number[] = [];
    const a = new Deferred<number>(() => cancelled.push(0));
    const b = succeed(2);
    const list = new DeferredList([a, b], { consumeErrors: true });
    let result = undefined as unknown;
    list.addCallback((r) => {
      result = r;
    });
    list.cancel();
    assert.deepEqual(cancelled, [0]);
    const entries = result as [boolean, unknown][];
    assert.equal(entries[0][0], false);
    assert.ok((entries[0][1] as Failure).value instanceof CancelledError);
  });
});

describe('gatherResults', () => {
  test('fires with the values in order', async () => {
    const a = new Deferred<number>();
    const g = gatherResults([a, succeed(2), succeed(3)]);
    setImmediate(() => a.callback(1));
    assert.deepEqual(await g, [1, 2, 3]);
  });

  test('fails with FirstError carrying the sub-failure and index', () => {
    const g = gatherResults([succeed(1), new Deferred<number>()], true);
    const bad = new Deferred<number>();
    const g2 = gatherResults([succeed(1), bad], true);
    let error = undefined as FirstError | undefined;
    g2.addErrback((f) => {
      error = f.value as FirstError;
    });
    bad.errback(new BoomError('why'));
    assert.ok(error instanceof FirstError);
    assert.equal(error.index, 1);
    assert.equal((error.subFailure as Failure).getErrorMessage(), 'why');
    g.cancel();
    g.addErrback(() => {});
  });
});

describe('DeferredLock and DeferredSemaphore', () => {
  test('the lock serves waiters in order', () => {
    const lock = new DeferredLock();
    const order: number[] = [];
    lock.acquire().addCallback(() => order.push(1));
    assert.ok(lock.locked);
    lock.acquire().addCallback(() => order.push(2));
    lock.acquire().addCallback(() => order.push(3));
    assert.deepEqual(order, [1]);
    lock.release();
    assert.deepEqual(order, [1, 2]);
    lock.release();
    lock.release();
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(lock.locked, false);
    assert.throws(() => lock.release(), InvalidArgumentError);
  });

  test('a cancelled acquire leaves the line', () => {
    const lock = new DeferredLock();
    lock.acquire();
    const waiter = lock.acquire();
    waiter.addErrback((f) => {
      f.trap(CancelledError);
    });
    waiter.cancel();
    lock.release();
    assert.equal(lock.locked, false);
  });

  test('run() releases after an async function settles, even when it fails', async () => {
    const lock = new DeferredLock();
    const result = await lock.run(async (x: number) => x * 2, 21);
    assert.equal(result, 42);
    assert.equal(lock.locked, false);
    await assert.rejects(
      lock
        .run(() => {
          throw new BoomError('inside');
        })
        .asPromise(),
      BoomError,
    );
    assert.equal(lock.locked, false);
  });

  test('the semaphore admits `tokens` holders', () => {
    assert.throws(() => new DeferredSemaphore(0), InvalidArgumentError);
    const sem = new DeferredSemaphore(2);
    let acquired = 0;
    for (let i = 0; i < 3; i++) sem.acquire().addCallback(() => acquired++);
    assert.equal(acquired, 2);
    assert.equal(sem.tokens, 0);
    sem.release();
    assert.equal(acquired, 3);
    sem.release();
    sem.release();
    assert.equal(sem.tokens, 2);
    assert.throws(() => sem.release(), InvalidArgumentError);
  });
});

describe('DeferredQueue', () => {
  test('get before put and put before get', () => {
    const q = new DeferredQueue<string>();
    const got: string[] = [];
    q.get().addCallback((v) => got.push(v));
    q.put('a');
    q.put('b');
    q.get().addCallback((v) => got.push(v));
    assert.deepEqual(got, ['a', 'b']);
  });

  test('size and backlog limits raise QueueOverflow / QueueUnderflow', () => {
    const q = new DeferredQueue<number>(1, 1);
    q.put(1);
    assert.throws(() => q.put(2), QueueOverflow);
    q.get();
    q.get();
    assert.throws(() => q.get(), QueueUnderflow);
  });

  test('a cancelled get leaves the line', () => {
    const q = new DeferredQueue<number>();
    const first = q.get();
    first.addErrback(() => {});
    first.cancel();
    let v = 0;
    q.get().addCallback((x) => {
      v = x;
    });
    q.put(9);
    assert.equal(v, 9);
  });
});
