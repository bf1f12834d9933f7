import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import { Deferred, fail, succeed } from '../src/reactor/deferred.js';
import { CancelledError, InvalidArgumentError } from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import { reactor } from '../src/reactor/reactor.js';
import {
  Cooperator,
  coiterate,
  cooperate,
  deferLater,
  LoopingCall,
  LoopingCallNotRunning,
  LoopingCallRunning,
  NotPaused,
  SchedulerStopped,
  TaskDone,
  TaskFailed,
  TaskStopped,
} from '../src/reactor/task.js';

/** The outcome of a Deferred that has fired: `['ok', value]` or `['fail', failure]`. */
function outcome<T>(d: Deferred<T>): ['ok', T] | ['fail', Failure] | ['pending'] {
  let result: ['ok', T] | ['fail', Failure] | ['pending'] = ['pending'];
  d.addCallbacks(
    (value) => {
      result = ['ok', value];
      return value;
    },
    (failure) => {
      result = ['fail', failure];
      return undefined;
    },
  );
  return result;
}

function loopOn<A extends unknown[]>(clock: Clock, fn: (...args: A) => unknown, ...args: A) {
  const loop = new LoopingCall(fn, ...args);
  loop.clock = clock;
  return loop;
}

describe('LoopingCall', () => {
  test('defaults to the reactor clock', () => {
    assert.equal(new LoopingCall(() => {}).clock, reactor);
  });

  test('calls at once, then every interval; stop fires the Deferred with the loop', () => {
    const clock = new Clock();
    const times: string[] = [];
    const loop = loopOn(clock, (tag: string) => times.push(`${tag}@${clock.seconds()}`), 'x');
    const d = loop.start(1);
    assert.equal(loop.running, true);
    assert.deepEqual(times, ['x@0']);
    clock.pump([1, 1, 0.5, 0.5]);
    assert.deepEqual(times, ['x@0', 'x@1', 'x@2', 'x@3']);
    const result = outcome(d);
    assert.deepEqual(result, ['pending']);
    loop.stop();
    assert.equal(loop.running, false);
    assert.equal(outcome(d)[0], 'ok');
    assert.equal(outcome(d)[1], loop);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('now = false waits one interval for the first call', () => {
    const clock = new Clock();
    let calls = 0;
    const loop = loopOn(clock, () => calls++);
    loop.start(2, false);
    assert.equal(calls, 0);
    clock.advance(1.9);
    assert.equal(calls, 0);
    clock.advance(0.1);
    assert.equal(calls, 1);
    loop.stop();
  });

  test('missed intervals are skipped; calls stay on the interval grid', () => {
    const clock = new Clock();
    const times: number[] = [];
    const loop = loopOn(clock, () => times.push(clock.seconds()));
    loop.start(1);
    clock.advance(3.5);
    assert.deepEqual(times, [0, 3.5]);
    assert.equal(loop.call?.getTime(), 4);
    clock.advance(0.5);
    assert.deepEqual(times, [0, 3.5, 4]);
    loop.stop();
  });

  test('withCount passes how many intervals elapsed since the last call', () => {
    const clock = new Clock();
    const counts: number[] = [];
    const loop = LoopingCall.withCount((count) => counts.push(count));
    loop.clock = clock;
    loop.start(1);
    clock.advance(1);
    clock.advance(3);
    clock.advance(1);
    clock.advance(2.5);
    assert.deepEqual(counts, [1, 1, 3, 1, 2]);
    loop.stop();
  });

  test('withCount with now = false counts from the start', () => {
    const clock = new Clock();
    const counts: number[] = [];
    const loop = LoopingCall.withCount((count) => counts.push(count));
    loop.clock = clock;
    loop.start(1, false);
    clock.advance(2.5);
    clock.advance(0.5);
    assert.deepEqual(counts, [2, 1]);
    loop.stop();
  });

  test('withCount counts add up to the intervals elapsed, even with float intervals', () => {
    const clock = new Clock();
    let total = 0;
    const loop = LoopingCall.withCount((count) => {
      total += count;
    });
    loop.clock = clock;
    loop.start(0.1);
    for (let i = 0; i < 1000; i++) clock.advance(0.1);
    loop.stop();
    // One for the call at start, then one per whole interval elapsed.
    assert.equal(total, 1 + Math.trunc(clock.seconds() / 0.1));
  });

  test('withCount with interval 0 always passes 1', () => {
    const clock = new Clock();
    const counts: number[] = [];
    const loop = LoopingCall.withCount((count) => counts.push(count));
    loop.clock = clock;
    loop.start(0);
    clock.advance(5);
    clock.advance(0);
    assert.deepEqual(counts, [1, 1, 1]);
    loop.stop();
  });

  test('interval 0 runs once per clock turn', () => {
    const clock = new Clock();
    let calls = 0;
    const loop = loopOn(clock, () => calls++);
    loop.start(0);
    clock.advance(0);
    clock.advance(0);
    assert.equal(calls, 3);
    loop.stop();
  });

  test('a Deferred returned by the function holds the next call until it fires', () => {
    const clock = new Clock();
    const pending: Deferred<void>[] = [];
    const times: number[] = [];
    const loop = loopOn(clock, () => {
      times.push(clock.seconds());
      const d = new Deferred<void>();
      pending.push(d);
      return d;
    });
    loop.start(1);
    clock.advance(5);
    assert.deepEqual(times, [0]);
    assert.deepEqual(clock.getDelayedCalls(), []);
    pending[0].callback(undefined);
    assert.equal(loop.call?.getTime(), 6);
    clock.advance(1);
    assert.deepEqual(times, [0, 6]);
    loop.stop();
    assert.deepEqual(outcome(loop.start(1))[0], 'pending');
    loop.stop();
  });

  test('stop while the returned Deferred is pending fires when it does', () => {
    const clock = new Clock();
    const gate = new Deferred<void>();
    const loop = loopOn(clock, () => gate);
    const d = loop.start(1);
    loop.stop();
    assert.deepEqual(outcome(d), ['pending']);
    gate.callback(undefined);
    assert.equal(outcome(d)[0], 'ok');
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('stop from inside the function fires once it returns', () => {
    const clock = new Clock();
    let calls = 0;
    const loop = loopOn(clock, () => {
      calls++;
      if (calls === 2) loop.stop();
    });
    const d = loop.start(1);
    clock.advance(1);
    assert.equal(outcome(d)[0], 'ok');
    clock.advance(10);
    assert.equal(calls, 2);
  });

  test('a throw fails the Deferred and stops the loop', () => {
    const clock = new Clock();
    let calls = 0;
    const loop = loopOn(clock, () => {
      calls++;
      if (calls === 3) throw new RangeError('third');
    });
    const d = loop.start(1);
    clock.pump([1, 1, 1, 1]);
    assert.equal(calls, 3);
    assert.equal(loop.running, false);
    const result = outcome(d);
    assert.equal(result[0], 'fail');
    assert.ok((result[1] as Failure).value instanceof RangeError);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('a failing returned Deferred fails it too, even on the first call', () => {
    const clock = new Clock();
    const loop = loopOn(clock, () => fail(new Error('nope')));
    const result = outcome(loop.start(1));
    assert.equal(result[0], 'fail');
    assert.equal((result[1] as Failure).getErrorMessage(), 'nope');
    assert.equal(loop.running, false);
  });

  test('start while running, stop or reset while stopped, bad intervals: typed errors', () => {
    const clock = new Clock();
    const loop = loopOn(clock, () => {});
    assert.throws(() => loop.stop(), LoopingCallNotRunning);
    assert.throws(() => loop.reset(), LoopingCallNotRunning);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => loop.start(bad), InvalidArgumentError);
    }
    assert.equal(loop.running, false);
    loop.start(1);
    assert.throws(() => loop.start(1), LoopingCallRunning);
    loop.stop();
    assert.throws(() => loop.stop(), LoopingCallNotRunning);
  });

  test('reset restarts the grid from now', () => {
    const clock = new Clock();
    const times: number[] = [];
    const loop = loopOn(clock, () => times.push(clock.seconds()));
    loop.start(2);
    clock.advance(1.5);
    loop.reset();
    clock.advance(1);
    assert.deepEqual(times, [0]);
    clock.advance(1);
    assert.deepEqual(times, [0, 3.5]);
    loop.stop();
  });
});

describe('deferLater', () => {
  test('fires after the delay with the result of fn(...args)', () => {
    const clock = new Clock();
    const d = deferLater(clock, 2, (a: number, b: number) => a * b, 6, 7);
    clock.advance(1.9);
    assert.deepEqual(outcome(d), ['pending']);
    clock.advance(0.1);
    assert.deepEqual(outcome(d), ['ok', 42]);
  });

  test('without fn fires with undefined', () => {
    const clock = new Clock();
    const d = deferLater(clock, 1);
    clock.advance(1);
    assert.deepEqual(outcome(d), ['ok', undefined]);
  });

  test('a throwing fn fails it; a Deferred-returning fn is waited for', () => {
    const clock = new Clock();
    const bad = deferLater(clock, 1, () => {
      throw new Error('inside');
    });
    const chained = deferLater(clock, 1, () => succeed('inner'));
    clock.advance(1);
    const result = outcome(bad);
    assert.equal(result[0], 'fail');
    assert.equal((result[1] as Failure).getErrorMessage(), 'inside');
    assert.deepEqual(outcome(chained), ['ok', 'inner']);
  });

  test('cancel cancels the delayed call and fails with CancelledError', () => {
    const clock = new Clock();
    let ran = false;
    const d = deferLater(clock, 1, () => {
      ran = true;
    });
    assert.equal(clock.getDelayedCalls().length, 1);
    d.cancel();
    assert.deepEqual(clock.getDelayedCalls(), []);
    clock.advance(2);
    assert.equal(ran, false);
    const result = outcome(d);
    assert.equal(result[0], 'fail');
    assert.ok((result[1] as Failure).value instanceof CancelledError);
  });

  test('bad delays throw InvalidArgumentError', () => {
    const clock = new Clock();
    assert.throws(() => deferLater(clock, -1), InvalidArgumentError);
    assert.throws(() => deferLater(clock, Number.NaN), InvalidArgumentError);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('works on the real reactor', async () => {
    assert.equal(await deferLater(reactor, 0.001, () => 'real'), 'real');
  });
});

/** A Cooperator on a Clock whose slices are `unitsPerSlice` steps long. */
function clockCooperator(unitsPerSlice: number, started = true) {
  const clock = new Clock();
  const cooperator = new Cooperator({
    scheduler: (work) => clock.callLater(0, work),
    terminationPredicateFactory: () => {
      let units = 0;
      return () => ++units >= unitsPerSlice;
    },
    started,
  });
  return { clock, cooperator };
}

function* counter(log: string[], name: string, n: number): Generator<unknown> {
  for (let i = 0; i < n; i++) {
    log.push(`${name}${i}`);
    yield undefined;
  }
}

describe('Cooperator', () => {
  test('runs tasks round robin, a slice at a time, on later turns', () => {
    const { clock, cooperator } = clockCooperator(3);
    const log: string[] = [];
    cooperator.cooperate(counter(log, 'a', 3));
    cooperator.cooperate(counter(log, 'b', 3));
    assert.deepEqual(log, []);
    clock.advance(0);
    assert.deepEqual(log, ['a0', 'b0', 'a1']);
    clock.advance(0);
    assert.deepEqual(log, ['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
    clock.advance(0);
    clock.advance(0);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('whenDone fires with the iterator once it is exhausted', () => {
    const { clock, cooperator } = clockCooperator(100);
    const log: string[] = [];
    const iterator = counter(log, 'x', 2);
    const task = cooperator.cooperate(iterator);
    const d = task.whenDone();
    clock.advance(0);
    assert.deepEqual(outcome(d), ['ok', iterator]);
    assert.deepEqual(outcome(task.whenDone()), ['ok', iterator]);
    assert.throws(() => task.pause(), TaskDone);
    assert.throws(() => task.stop(), TaskDone);
  });

  test('iterables are accepted; coiterate returns whenDone()', () => {
    const { clock, cooperator } = clockCooperator(100);
    const d = cooperator.coiterate([1, 2, 3]);
    clock.advance(0);
    assert.equal(outcome(d)[0], 'ok');
    assert.throws(() => cooperator.cooperate(42 as unknown as number[]), InvalidArgumentError);
  });

  test('pause and resume; resume without pause throws NotPaused', () => {
    const { clock, cooperator } = clockCooperator(2);
    const log: string[] = [];
    const a = cooperator.cooperate(counter(log, 'a', 3));
    cooperator.cooperate(counter(log, 'b', 3));
    a.pause();
    a.pause();
    clock.advance(0);
    assert.deepEqual(log, ['b0', 'b1']);
    a.resume();
    clock.advance(0);
    assert.deepEqual(log, ['b0', 'b1', 'b2']);
    a.resume();
    assert.throws(() => a.resume(), NotPaused);
    clock.advance(0);
    clock.advance(0);
    assert.deepEqual(log, ['b0', 'b1', 'b2', 'a0', 'a1', 'a2']);
  });

  test('stop fails whenDone with TaskStopped; stopping again throws it', () => {
    const { clock, cooperator } = clockCooperator(1);
    const log: string[] = [];
    const task = cooperator.cooperate(counter(log, 'a', 10));
    const d = task.whenDone();
    clock.advance(0);
    task.stop();
    const result = outcome(d);
    assert.equal(result[0], 'fail');
    assert.ok((result[1] as Failure).value instanceof TaskStopped);
    assert.throws(() => task.stop(), TaskStopped);
    assert.throws(() => task.pause(), TaskStopped);
    clock.advance(0);
    assert.deepEqual(log, ['a0']);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('an iterator that throws fails whenDone with its error', () => {
    const { clock, cooperator } = clockCooperator(10);
    const task = cooperator.cooperate(
      (function* () {
        yield 1;
        throw new SyntaxError('broken iterator');
      })(),
    );
    const d = task.whenDone();
    clock.advance(0);
    const result = outcome(d);
    assert.equal(result[0], 'fail');
    assert.ok((result[1] as Failure).value instanceof SyntaxError);
    assert.throws(() => task.pause(), TaskFailed);
  });

  test('a yielded Deferred suspends only that task until it fires', () => {
    const { clock, cooperator } = clockCooperator(100);
    const log: string[] = [];
    const gate = new Deferred<string>();
    const waiter = cooperator.cooperate(
      (function* () {
        log.push('w0');
        yield gate;
        log.push('w1');
      })(),
    );
    cooperator.cooperate(counter(log, 'b', 3));
    clock.advance(0);
    clock.advance(0);
    assert.deepEqual(log, ['w0', 'b0', 'b1', 'b2']);
    // Pause/resume by the user while waiting do not wake it early.
    waiter.pause();
    waiter.resume();
    clock.advance(0);
    assert.deepEqual(log, ['w0', 'b0', 'b1', 'b2']);
    gate.callback('go');
    assert.deepEqual(outcome(gate), ['ok', 'go'], 'the yielded result is passed on');
    clock.advance(0);
    assert.deepEqual(log, ['w0', 'b0', 'b1', 'b2', 'w1']);
    assert.equal(outcome(waiter.whenDone())[0], 'ok');
  });

  test('a failing yielded Deferred fails the task', () => {
    const { clock, cooperator } = clockCooperator(100);
    const gate = new Deferred<void>();
    const task = cooperator.cooperate([gate][Symbol.iterator]());
    const d = task.whenDone();
    clock.advance(0);
    gate.errback(new Error('yielded failure'));
    const result = outcome(d);
    assert.equal(result[0], 'fail');
    assert.equal((result[1] as Failure).getErrorMessage(), 'yielded failure');
  });

  test('stop() ends every task with SchedulerStopped, and later ones too', () => {
    const { clock, cooperator } = clockCooperator(1);
    const log: string[] = [];
    const a = cooperator.cooperate(counter(log, 'a', 5)).whenDone();
    const b = cooperator.cooperate(counter(log, 'b', 5)).whenDone();
    clock.advance(0);
    assert.equal(cooperator.running, true);
    cooperator.stop();
    assert.equal(cooperator.running, false);
    for (const d of [a, b]) {
      const result = outcome(d);
      assert.equal(result[0], 'fail');
      assert.ok((result[1] as Failure).value instanceof SchedulerStopped);
    }
    const late = outcome(cooperator.coiterate([1]));
    assert.equal(late[0], 'fail');
    assert.ok((late[1] as Failure).value instanceof SchedulerStopped);
    assert.deepEqual(clock.getDelayedCalls(), []);
    assert.deepEqual(log, ['a0']);
    cooperator.start();
    const again = cooperator.coiterate([1]);
    clock.pump([0, 0]); // one step per slice: the value, then the end
    assert.equal(outcome(again)[0], 'ok');
  });

  test('started: false runs nothing until start()', () => {
    const { clock, cooperator } = clockCooperator(10, false);
    const log: string[] = [];
    cooperator.cooperate(counter(log, 'a', 2));
    assert.equal(cooperator.running, false);
    assert.deepEqual(clock.getDelayedCalls(), []);
    cooperator.start();
    clock.advance(0);
    assert.deepEqual(log, ['a0', 'a1']);
  });

  test('a whenDone callback may stop the cooperator', () => {
    const { clock, cooperator } = clockCooperator(10);
    const log: string[] = [];
    cooperator.coiterate([1]).addCallback(() => cooperator.stop());
    const other = cooperator.coiterate(counter(log, 'o', 100));
    clock.advance(0);
    assert.equal(outcome(other)[0], 'fail');
  });

  test('the default cooperator runs on the reactor, yielding to promises', async () => {
    const log: string[] = [];
    const iterator = (function* () {
      log.push('start');
      yield Promise.resolve();
      log.push('after promise');
      yield* counter(log, 'n', 3);
    })();
    const result = await coiterate(iterator);
    assert.equal(result, iterator);
    assert.deepEqual(log, ['start', 'after promise', 'n0', 'n1', 'n2']);
    const task = cooperate(counter(log, 'z', 1));
    await task.whenDone();
    assert.equal(log.at(-1), 'z0');
  });
});
