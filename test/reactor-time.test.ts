/**
 * One IReactorTime suite, run on every implementation: the deterministic
 * `Clock` and the real `NodeReactor`. For the real reactor, delays are small
 * and only ordering is asserted, never durations.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import { AlreadyCalled, AlreadyCancelled, InvalidArgumentError } from '../src/reactor/errors.js';
import type { IDelayedCall, IReactorTime } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { NodeReactor } from '../src/reactor/reactor.js';

interface Harness {
  readonly name: string;
  make(): IReactorTime;
  /** Lets time pass until `done()` holds (the calls that make it true have run). */
  runUntil(time: IReactorTime, done: () => boolean): Promise<void>;
}

/** Waits for the next macrotask (timers and immediates get their turn). */
const nextTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

const harnesses: Harness[] = [
  {
    name: 'Clock',
    make: () => new Clock(),
    async runUntil(time, done) {
      const clock = time as Clock;
      while (!done()) {
        const [next] = clock.getDelayedCalls();
        assert.ok(next, 'nothing scheduled, but the condition does not hold');
        clock.advance(Math.max(0, next.getTime() - clock.seconds()));
        await null; // let microtasks queued by the calls run, as between real turns
      }
    },
  },
  {
    name: 'NodeReactor',
    make: () => new NodeReactor(),
    async runUntil(_time, done) {
      while (!done()) await nextTurn();
    },
  },
];

for (const h of harnesses) {
  describe(`IReactorTime: ${h.name}`, () => {
    test('seconds() never goes backwards', () => {
      const time = h.make();
      let last = time.seconds();
      for (let i = 0; i < 1000; i++) {
        const now = time.seconds();
        assert.ok(now >= last);
        last = now;
      }
    });

    test('callLater runs fn with its arguments; getTime is seconds() + delay', async () => {
      const time = h.make();
      const got: unknown[][] = [];
      const before = time.seconds();
      const call = time.callLater(0.002, (a: number, b: string) => got.push([a, b]), 1, 'x');
      const after = time.seconds();
      assert.ok(call.getTime() >= before + 0.002 && call.getTime() <= after + 0.002);
      assert.equal(call.active(), true);
      assert.deepEqual(time.getDelayedCalls(), [call]);
      await h.runUntil(time, () => got.length > 0);
      assert.deepEqual(got, [[1, 'x']]);
      assert.equal(call.active(), false);
      assert.ok(time.seconds() >= call.getTime());
      assert.deepEqual(time.getDelayedCalls(), []);
    });

    test('calls run in time order, equal times in scheduling order', async () => {
      const time = h.make();
      const ran: number[] = [];
      const calls: IDelayedCall[] = [];
      const delays = [0.004, 0, 0.002, 0.004, 0, 0.001, 0.002, 0.003, 0];
      delays.forEach((delay, i) => {
        calls.push(time.callLater(delay, () => ran.push(i)));
      });
      const expected = delays
        .map((_, i) => i)
        .sort((x, y) => calls[x].getTime() - calls[y].getTime() || x - y);
      await h.runUntil(time, () => ran.length === delays.length);
      assert.deepEqual(ran, expected);
    });

    test('a cancelled call does not run; cancelling again throws AlreadyCancelled', async () => {
      const time = h.make();
      const ran: string[] = [];
      const a = time.callLater(0.001, () => ran.push('a'));
      time.callLater(0.002, () => ran.push('b'));
      a.cancel();
      assert.equal(a.active(), false);
      assert.throws(() => a.cancel(), AlreadyCancelled);
      assert.throws(() => a.reset(1), AlreadyCancelled);
      assert.throws(() => a.delay(1), AlreadyCancelled);
      assert.equal(time.getDelayedCalls().length, 1);
      await h.runUntil(time, () => ran.length === 1);
      assert.deepEqual(ran, ['b']);
    });

    test('cancel, reset and delay after the call ran throw AlreadyCalled', async () => {
      const time = h.make();
      let ran = false;
      const call = time.callLater(0, () => {
        ran = true;
      });
      await h.runUntil(time, () => ran);
      assert.throws(() => call.cancel(), AlreadyCalled);
      assert.throws(() => call.reset(1), AlreadyCalled);
      assert.throws(() => call.delay(1), AlreadyCalled);
    });

    test('bad delays throw InvalidArgumentError', () => {
      const time = h.make();
      for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.throws(() => time.callLater(bad, () => {}), InvalidArgumentError);
      }
      const call = time.callLater(1, () => {});
      assert.throws(() => call.reset(-0.5), InvalidArgumentError);
      assert.throws(() => call.delay(Number.NaN), InvalidArgumentError);
      call.cancel();
      assert.deepEqual(time.getDelayedCalls(), []);
    });

    test('reset and delay move a call', async () => {
      const time = h.make();
      const ran: string[] = [];
      const a = time.callLater(0.001, () => ran.push('a'));
      const b = time.callLater(0.003, () => ran.push('b'));
      const c = time.callLater(0.5, () => ran.push('c'));
      const aTime = a.getTime();
      a.reset(0.005);
      assert.ok(a.getTime() > aTime);
      const cTime = c.getTime();
      c.delay(-0.499);
      assert.equal(c.getTime(), cTime - 0.499);
      await h.runUntil(time, () => ran.length === 3);
      const expected = [
        ['a', a],
        ['b', b],
        ['c', c],
      ] as const;
      assert.deepEqual(
        ran,
        [...expected].sort(([, x], [, y]) => x.getTime() - y.getTime()).map(([name]) => name),
      );
      assert.equal(ran.at(-1), 'a');
    });

    test('a call scheduled from a running call never runs in the same pass', async () => {
      const time = h.make();
      const log: string[] = [];
      time.callLater(0, () => {
        log.push('a');
        // A microtask runs between passes, never inside one.
        queueMicrotask(() => log.push('microtask'));
        time.callLater(0, () => log.push('inner'));
      });
      time.callLater(0, () => log.push('b'));
      await h.runUntil(time, () => log.includes('inner'));
      assert.deepEqual(log, ['a', 'b', 'microtask', 'inner']);
    });

    test('a call may cancel a later call that is due in the same pass', async () => {
      const time = h.make();
      const log: string[] = [];
      let second: IDelayedCall | undefined;
      time.callLater(0, () => {
        log.push('first');
        second!.cancel();
      });
      second = time.callLater(0, () => log.push('second'));
      time.callLater(0.001, () => log.push('third'));
      await h.runUntil(time, () => log.includes('third'));
      assert.deepEqual(log, ['first', 'third']);
    });

    test('an exception from a call is logged, not thrown, and later calls run', async () => {
      const time = h.make();
      const events: LogEvent[] = [];
      const remove = addObserver((event) => events.push(event));
      const log: string[] = [];
      try {
        time.callLater(0, () => {
          throw new TypeError('bad call');
        });
        time.callLater(0, () => log.push('next'));
        await h.runUntil(time, () => log.length > 0);
      } finally {
        remove();
      }
      assert.equal(events.length, 1);
      assert.equal(events[0].isError, true);
      assert.ok(events[0].failure?.value instanceof TypeError);
    });

    test('getDelayedCalls lists exactly the active calls', () => {
      const time = h.make();
      const a = time.callLater(1, () => {});
      const b = time.callLater(2, () => {});
      const c = time.callLater(3, () => {});
      b.cancel();
      assert.deepEqual(new Set(time.getDelayedCalls()), new Set([a, c]));
      a.cancel();
      c.cancel();
      assert.deepEqual(time.getDelayedCalls(), []);
    });

    test('1,000 calls, half cancelled, run in (time, scheduling) order', async () => {
      const time = h.make();
      const ran: number[] = [];
      const calls: IDelayedCall[] = [];
      for (let i = 0; i < 1000; i++) {
        calls.push(time.callLater(((i * 7919) % 5) / 1000, () => ran.push(i)));
      }
      const kept: number[] = [];
      calls.forEach((call, i) => {
        if (i % 2 === 1) call.cancel();
        else kept.push(i);
      });
      kept.sort((x, y) => calls[x].getTime() - calls[y].getTime() || x - y);
      await h.runUntil(time, () => ran.length === kept.length);
      assert.deepEqual(ran, kept);
      assert.deepEqual(time.getDelayedCalls(), []);
    });
  });
}
