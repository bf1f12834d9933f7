import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  Deferred,
  ensureDeferred,
  fail,
  isThenable,
  maybeDeferred,
  succeed,
} from '../src/reactor/deferred.js';
import {
  AlreadyCalledError,
  CancelledError,
  InvalidArgumentError,
  TimeoutError,
} from '../src/reactor/errors.js';
import { Failure, NonErrorThrown } from '../src/reactor/failure.js';
import type { IDelayedCall, IReactorTime } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';

class BoomError extends Error {}
class OtherError extends Error {}

/** A tiny IReactorTime for addTimeout; the real Clock is tested on its own. */
class ManualClock implements IReactorTime {
  now = 0;
  calls: { time: number; fn: () => void; live: boolean }[] = [];
  seconds(): number {
    return this.now;
  }
  callLater<A extends unknown[]>(
    delay: number,
    fn: (...args: A) => unknown,
    ...args: A
  ): IDelayedCall {
    const entry = { time: this.now + delay, fn: () => void fn(...args), live: true };
    this.calls.push(entry);
    return {
      getTime: () => entry.time,
      cancel: () => {
        entry.live = false;
      },
      delay: () => {},
      reset: () => {},
      active: () => entry.live,
    };
  }
  getDelayedCalls(): IDelayedCall[] {
    return [];
  }
  advance(seconds: number): void {
    this.now += seconds;
    for (const call of this.calls) {
      if (call.live && call.time <= this.now) {
        call.live = false;
        call.fn();
      }
    }
  }
}

describe('Deferred: firing and the chain', () => {
  test('callbacks run synchronously when the result is already there', () => {
    const seen: number[] = [];
    const d = succeed(1);
    d.addCallback((v) => {
      seen.push(v);
      return v + 1;
    });
    assert.deepEqual(seen, [1]);
    assert.equal(d.result, 2);
  });

  test('callbacks added before firing run in order on callback()', () => {
    const order: string[] = [];
    const d = new Deferred<number>();
    d.addCallback((v) => {
      order.push(`a${v}`);
      return v * 10;
    }).addCallback((v) => {
      order.push(`b${v}`);
    });
    assert.deepEqual(order, []);
    d.callback(2);
    assert.deepEqual(order, ['a2', 'b20']);
  });

  test('extra arguments are passed through to callbacks and errbacks', () => {
    const got: unknown[] = [];
    succeed(1).addCallback((v, a: string, b: number) => got.push([v, a, b]), 'x', 7);
    fail(new BoomError('no')).addErrback((f, tag: string) => {
      got.push([f.getErrorMessage(), tag]);
    }, 'tag');
    const d = new Deferred<number>();
    d.addCallbacks((v, x: number) => got.push(['cb', v, x]), null, [5]);
    d.callback(4);
    assert.deepEqual(got, [
      [1, 'x', 7],
      ['no', 'tag'],
      ['cb', 4, 5],
    ]);
  });

  test('a throwing callback switches to the errback path; an errback that returns recovers', () => {
    const d = new Deferred<number>();
    const seen: string[] = [];
    d.addCallback(() => {
      throw new BoomError('bad');
    })
      .addCallback(() => seen.push('skipped'))
      .addErrback((f) => {
        assert.ok(f instanceof Failure);
        assert.equal(f.type, BoomError);
        seen.push('eb');
        return 'recovered';
      })
      .addCallback((v) => seen.push(`cb:${v}`));
    d.callback(1);
    assert.deepEqual(seen, ['eb', 'cb:recovered']);
  });

  test('addCallbacks runs exactly one of the pair', () => {
    const seen: string[] = [];
    succeed(1).addCallbacks(
      () => seen.push('cb'),
      () => seen.push('eb'),
    );
    fail(new Error('x')).addCallbacks(
      () => seen.push('cb2'),
      () => seen.push('eb2'),
    );
    assert.deepEqual(seen, ['cb', 'eb2']);
  });

  test('addBoth sees successes and failures', () => {
    const seen: unknown[] = [];
    succeed(3).addBoth((r) => seen.push(r));
    fail(new BoomError('z')).addBoth((r) => {
      seen.push(r instanceof Failure ? r.value.message : r);
    });
    assert.deepEqual(seen, [3, 'z']);
  });

  test('errback wraps Errors and non-Errors in a Failure', () => {
    const d = new Deferred();
    let failure = undefined as Failure | undefined;
    d.addErrback((f) => {
      failure = f;
    });
    d.errback('just a string');
    assert.ok(failure?.value instanceof NonErrorThrown);
    assert.equal((failure!.value as NonErrorThrown).thrown, 'just a string');
    const d2 = new Deferred();
    const given = new Failure(new BoomError('same'));
    d2.addErrback((f) => {
      assert.equal(f, given);
    });
    d2.errback(given);
  });

  test('firing twice throws AlreadyCalledError', () => {
    const d = new Deferred<number>();
    d.callback(1);
    assert.throws(() => d.callback(2), AlreadyCalledError);
    assert.throws(() => d.errback(new Error('x')), AlreadyCalledError);
    const e = new Deferred();
    e.addErrback(() => {});
    e.errback(new Error('x'));
    assert.throws(() => e.callback(1), AlreadyCalledError);
  });

  test('callback with a Deferred is an error', () => {
    const d = new Deferred<unknown>();
    assert.throws(() => d.callback(new Deferred()), InvalidArgumentError);
    assert.equal(d.called, false);
  });

  test('a callback returning its own Deferred becomes a failure', () => {
    const d = new Deferred<unknown>();
    let caught = undefined as Failure | undefined;
    d.addCallback(() => d).addErrback((f) => {
      caught = f;
    });
    d.callback(1);
    assert.ok(caught?.value instanceof InvalidArgumentError);
  });

  test('Failure.trap re-throws the same failure when nothing matches', () => {
    const seen: string[] = [];
    fail(new BoomError('b'))
      .addErrback((f) => {
        f.trap(OtherError);
        seen.push('not reached');
      })
      .addErrback((f) => {
        assert.equal(f.trap(OtherError, BoomError), BoomError);
        seen.push('trapped');
      });
    assert.deepEqual(seen, ['trapped']);
    const f = new Failure(new BoomError('m'));
    assert.equal(f.check(OtherError), null);
    assert.equal(f.check(Error), Error);
    assert.equal(f.getErrorMessage(), 'm');
    assert.match(f.getTraceback(), /BoomError|Error/);
    assert.throws(() => f.raiseException(), BoomError);
  });
});

describe('Deferred: chaining on inner Deferreds and thenables', () => {
  test('a callback returning an unfired Deferred pauses the chain until it fires', () => {
    const outer = new Deferred<number>();
    const inner = new Deferred<number>();
    const seen: unknown[] = [];
    outer.addCallback(() => inner).addCallback((v) => seen.push(v));
    outer.callback(1);
    assert.deepEqual(seen, []);
    assert.equal(outer.paused, 1);
    assert.equal(outer.result, inner);
    inner.callback(42);
    assert.deepEqual(seen, [42]);
    assert.equal(outer.paused, 0);
    assert.equal(inner.result, undefined, 'the inner result passes to the outer chain');
  });

  test('a failing inner Deferred fails the outer chain', () => {
    const outer = new Deferred<number>();
    const inner = new Deferred<number>();
    let message = '';
    outer
      .addCallback(() => inner)
      .addErrback((f) => {
        message = f.getErrorMessage();
      });
    outer.callback(1);
    inner.errback(new BoomError('inner failed'));
    assert.equal(message, 'inner failed');
  });

  test('an already-fired inner Deferred is taken inline', () => {
    const seen: unknown[] = [];
    succeed(1)
      .addCallback(() => succeed('inline'))
      .addCallback((v) => seen.push(v));
    assert.deepEqual(seen, ['inline']);
  });

  test('a paused inner Deferred is waited for', () => {
    const inner = succeed(5);
    inner.pause();
    const seen: unknown[] = [];
    succeed(0)
      .addCallback(() => inner)
      .addCallback((v) => seen.push(v));
    assert.deepEqual(seen, []);
    inner.unpause();
    assert.deepEqual(seen, [5]);
  });

  test('a callback returning a Promise pauses the chain until it settles', async () => {
    const seen: unknown[] = [];
    const d = succeed(1)
      .addCallback(async (v) => v + 1)
      .addCallback((v) => {
        seen.push(v);
        return Promise.reject(new BoomError('p'));
      })
      .addErrback((f) => {
        seen.push(f.type.name);
      });
    assert.deepEqual(seen, []);
    await d;
    assert.deepEqual(seen, [2, 'BoomError']);
  });

  test('pause()/unpause() hold back the chain', () => {
    const d = new Deferred<number>();
    const seen: number[] = [];
    d.pause();
    d.addCallback((v) => seen.push(v));
    d.callback(1);
    assert.deepEqual(seen, []);
    d.pause();
    d.unpause();
    assert.deepEqual(seen, []);
    d.unpause();
    assert.deepEqual(seen, [1]);
    d.unpause(); // extra unpause is harmless
  });

  test('callbacks added from inside a callback run in the same pass', () => {
    const d = new Deferred<number>();
    const seen: string[] = [];
    d.addCallback((v) => {
      d.addCallback((w) => {
        seen.push(`inner:${w}`);
      });
      seen.push('outer');
      return v + 1;
    });
    d.callback(1);
    assert.deepEqual(seen, ['outer', 'inner:2']);
  });

  test('100,000 nested Deferreds complete without stack overflow', () => {
    const n = 100_000;
    const inners: Deferred<number>[] = [];
    const top = new Deferred<number>();
    let d = top;
    // Each link waits on a fresh unfired Deferred: a chain of n nested levels.
    for (let i = 0; i < n; i++) {
      const inner = new Deferred<number>();
      inners.push(inner);
      const next = new Deferred<number>();
      d.addCallback(() => inner).addCallback((v) => next.callback(v + 1));
      d = next;
    }
    let final = -1;
    d.addCallback((v) => {
      final = v;
    });
    top.callback(0);
    for (let i = 0; i < n; i++) inners[i].callback(i);
    assert.equal(final, n);
  });

  test('a 100,000-deep chain of Deferreds returning Deferreds resolves in one pass', () => {
    const n = 100_000;
    const deferreds = Array.from({ length: n }, () => new Deferred<number>());
    for (let i = 0; i < n - 1; i++) {
      const next = deferreds[i + 1];
      deferreds[i].addCallback(() => next);
    }
    let result = 0;
    deferreds[0].addCallback((v) => {
      result = v;
    });
    for (let i = 0; i < n - 1; i++) deferreds[i].callback(0);
    deferreds[n - 1].callback(7);
    assert.equal(result, 7);
  });
});

describe('Deferred: cancellation and timeouts', () => {
  test('cancel without a canceller errbacks with CancelledError and ignores one later callback', () => {
    const d = new Deferred<number>();
    let failure = undefined as Failure | undefined;
    d.addErrback((f) => {
      failure = f;
    });
    d.cancel();
    assert.ok(failure?.value instanceof CancelledError);
    d.callback(1); // ignored once
    assert.throws(() => d.callback(2), AlreadyCalledError);
  });

  test('cancel calls the canceller, which may fire the Deferred itself', () => {
    let cancelled = 0;
    const d = new Deferred<string>((self) => {
      cancelled++;
      self.callback('cancelled-value');
    });
    const seen: unknown[] = [];
    d.addCallback((v) => seen.push(v));
    d.cancel();
    assert.equal(cancelled, 1);
    assert.deepEqual(seen, ['cancelled-value']);
    d.cancel(); // fired already: nothing happens
    assert.equal(cancelled, 1);
  });

  test('a canceller that does not fire leads to CancelledError; a later callback throws', () => {
    const d = new Deferred<number>(() => {});
    let failed = false;
    d.addErrback((f) => {
      f.trap(CancelledError);
      failed = true;
    });
    d.cancel();
    assert.ok(failed);
    assert.throws(() => d.callback(1), AlreadyCalledError);
  });

  test('cancelling a Deferred that waits on another cancels that one', () => {
    let innerCancelled = false;
    const inner = new Deferred<number>(() => {
      innerCancelled = true;
    });
    const outer = succeed(1).addCallback(() => inner);
    let failure = undefined as Failure | undefined;
    outer.addErrback((f) => {
      failure = f;
    });
    outer.cancel();
    assert.ok(innerCancelled);
    assert.ok(failure?.value instanceof CancelledError);
  });

  test('addTimeout fails with TimeoutError after the delay and cancels the work', () => {
    const clock = new ManualClock();
    let cancelled = false;
    const d = new Deferred<number>(() => {
      cancelled = true;
    });
    let failure = undefined as Failure | undefined;
    d.addTimeout(5, clock).addErrback((f) => {
      failure = f;
    });
    clock.advance(4);
    assert.equal(failure === undefined, true);
    clock.advance(1);
    assert.ok(cancelled);
    assert.ok(failure?.value instanceof TimeoutError);
  });

  test('addTimeout is cancelled when the Deferred fires in time', () => {
    const clock = new ManualClock();
    const d = new Deferred<number>();
    d.addTimeout(5, clock);
    d.callback(3);
    assert.equal(clock.calls[0].live, false);
    let v = 0;
    d.addCallback((x) => {
      v = x;
    });
    assert.equal(v, 3);
  });

  test('addTimeout with onTimeoutCancel converts the result', () => {
    const clock = new ManualClock();
    const d = new Deferred<string>();
    const seen: unknown[] = [];
    d.addTimeout(1, clock, (_result, seconds) => `timed out after ${seconds}`).addCallback((v) =>
      seen.push(v),
    );
    clock.advance(1);
    assert.deepEqual(seen, ['timed out after 1']);
  });
});

describe('Deferred: Promise interop', () => {
  test('await works and then() is asynchronous', async () => {
    const d = new Deferred<number>();
    let ran = false;
    const p = d.then((v) => {
      ran = true;
      return v * 2;
    });
    d.callback(21);
    assert.equal(ran, false, 'then handlers never run synchronously');
    assert.equal(await p, 42);
    assert.equal(await succeed('x'), 'x');
  });

  test('every then() sees the same value, and the chain keeps it', async () => {
    const d = succeed(7);
    const [a, b] = await Promise.all([d, d]);
    assert.deepEqual([a, b], [7, 7]);
    assert.equal(d.result, 7);
  });

  test('await on a failed Deferred throws the original error', async () => {
    await assert.rejects(async () => await fail(new BoomError('nope')), BoomError);
  });

  test('fromPromise / asPromise / ensureDeferred', async () => {
    const d = Deferred.fromPromise(Promise.resolve(3));
    assert.equal(d.called, false);
    assert.equal(await d, 3);
    const f = Deferred.fromPromise(Promise.reject(new BoomError('r')));
    await assert.rejects(f.asPromise(), BoomError);
    const e = ensureDeferred((async () => 'coroutine')());
    assert.equal(await e, 'coroutine');
    assert.equal(ensureDeferred(d), d);
    assert.throws(() => ensureDeferred(42 as unknown as Promise<number>), InvalidArgumentError);
    assert.ok(isThenable(d) && isThenable(Promise.resolve()) && !isThenable({ then: 1 }));
  });

  test('a cancelled fromPromise Deferred ignores the later settlement', async () => {
    const p = new Promise<number>((resolve) => setImmediate(() => resolve(1)));
    const d = Deferred.fromPromise(p);
    d.addErrback((f) => {
      f.trap(CancelledError);
    });
    d.cancel();
    await p;
    await new Promise((r) => setImmediate(r));
    assert.equal(d.result, undefined);
  });

  test('maybeDeferred normalises values, throws, Deferreds and Promises', async () => {
    assert.equal(maybeDeferred(() => 1).result, 1);
    const thrown = maybeDeferred(() => {
      throw new BoomError('t');
    });
    assert.ok(thrown.result instanceof Failure);
    thrown.addErrback(() => {});
    const dd = succeed(2);
    assert.equal(
      maybeDeferred(() => dd),
      dd,
    );
    assert.equal(await maybeDeferred(async (x: number) => x + 1, 4), 5);
  });
});

describe('Deferred: unhandled errors', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  async function collect(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
  }

  test('a collected Deferred holding an unhandled Failure is logged once', async () => {
    const events: LogEvent[] = [];
    const remove = addObserver((e) => events.push(e));
    try {
      (() => {
        fail(new BoomError('lost in the chain'));
      })();
      (() => {
        fail(new BoomError('handled')).addErrback(() => {});
      })();
      (() => {
        const d = fail(new BoomError('awaited'));
        d.then(undefined, () => {});
      })();
      await collect();
    } finally {
      remove();
    }
    const unhandled = events.filter((e) => e.isError);
    assert.equal(unhandled.length, 1);
    assert.match(unhandled[0].message, /Unhandled error in Deferred/);
    assert.equal(unhandled[0].failure?.getErrorMessage(), 'lost in the chain');
  });
});
