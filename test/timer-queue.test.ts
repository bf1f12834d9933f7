import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AlreadyCalled, AlreadyCancelled, InvalidArgumentError } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { type DelayedCall, TimerQueue } from '../src/reactor/timer-queue.js';

/** A queue over a hand-moved clock. */
function makeQueue(hooks = {}) {
  const time = { now: 0 };
  const queue = new TimerQueue(() => time.now, hooks);
  return { time, queue };
}

/** A small seeded PRNG (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('TimerQueue', () => {
  test('runs due calls in (time, scheduling order), with their arguments', () => {
    const { time, queue } = makeQueue();
    const log: string[] = [];
    const push = (s: string) => log.push(s);
    queue.callLater(2, push, 'c');
    queue.callLater(1, push, 'a');
    queue.callLater(1, push, 'b');
    queue.callLater(3, push, 'd');
    assert.equal(queue.size, 4);
    time.now = 2;
    assert.equal(queue.runUntil(2), 3);
    assert.deepEqual(log, ['a', 'b', 'c']);
    assert.equal(queue.size, 1);
    assert.equal(queue.nextTime(), 3);
  });

  test('nextTime is Infinity when empty and skips cancelled calls', () => {
    const { queue } = makeQueue();
    assert.equal(queue.nextTime(), Number.POSITIVE_INFINITY);
    const a = queue.callLater(1, () => {});
    queue.callLater(5, () => {});
    a.cancel();
    assert.equal(queue.nextTime(), 5);
  });

  test('rejects negative, NaN and infinite delays', () => {
    const { queue } = makeQueue();
    for (const bad of [-1, -0.001, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => queue.callLater(bad, () => {}), InvalidArgumentError);
    }
    assert.equal(queue.size, 0);
    const call = queue.callLater(1, () => {});
    assert.throws(() => call.reset(-1), InvalidArgumentError);
    assert.throws(() => call.reset(Number.NaN), InvalidArgumentError);
    assert.throws(() => call.delay(Number.NaN), InvalidArgumentError);
    assert.throws(() => call.delay(Number.NEGATIVE_INFINITY), InvalidArgumentError);
    assert.equal(call.getTime(), 1);
  });

  test('cancel twice throws AlreadyCancelled; after running, AlreadyCalled', () => {
    const { queue } = makeQueue();
    const a = queue.callLater(1, () => {});
    a.cancel();
    assert.equal(a.active(), false);
    assert.equal(a.cancelled, true);
    assert.throws(() => a.cancel(), AlreadyCancelled);
    assert.throws(() => a.reset(1), AlreadyCancelled);
    assert.throws(() => a.delay(1), AlreadyCancelled);
    const b = queue.callLater(1, () => {});
    queue.runUntil(1);
    assert.equal(b.called, true);
    assert.throws(() => b.cancel(), AlreadyCalled);
    assert.throws(() => b.reset(1), AlreadyCalled);
    assert.throws(() => b.delay(1), AlreadyCalled);
  });

  test('a call is inactive while it runs: cancelling itself throws AlreadyCalled', () => {
    const { queue } = makeQueue();
    let caught: unknown;
    const call: DelayedCall = queue.callLater(0, () => {
      assert.equal(call.active(), false);
      try {
        call.cancel();
      } catch (error) {
        caught = error;
      }
    });
    queue.runUntil(0);
    assert.ok(caught instanceof AlreadyCalled);
  });

  test('calls scheduled or reset during a pass wait for the next pass', () => {
    const { queue } = makeQueue();
    const log: string[] = [];
    let late: DelayedCall | undefined;
    const far = queue.callLater(10, () => log.push('far'));
    queue.callLater(0, () => {
      log.push('a');
      queue.callLater(0, () => log.push('inner'));
      far.reset(0);
      late = queue.callLater(0, () => log.push('late'));
    });
    queue.callLater(0, () => log.push('b'));
    assert.equal(queue.runUntil(0), 2);
    assert.deepEqual(log, ['a', 'b']);
    assert.equal(queue.size, 3);
    late!.cancel();
    assert.equal(queue.runUntil(0), 2);
    assert.deepEqual(log, ['a', 'b', 'inner', 'far']);
  });

  test('a reset or delayed call goes after calls already due at its new time', () => {
    const { time, queue } = makeQueue();
    const log: string[] = [];
    const a = queue.callLater(1, () => log.push('a'));
    queue.callLater(2, () => log.push('b'));
    const c = queue.callLater(3, () => log.push('c'));
    a.reset(2); // later: lazy move
    c.delay(-1); // earlier: sifted up
    assert.equal(a.getTime(), 2);
    assert.equal(c.getTime(), 2);
    time.now = 2;
    queue.runUntil(2);
    assert.deepEqual(log, ['b', 'a', 'c']);
  });

  test('lazily moved calls are re-sorted when they reach the top', () => {
    const { queue } = makeQueue();
    const log: number[] = [];
    const calls = [0, 1, 2, 3, 4].map((i) => queue.callLater(i, () => log.push(i)));
    calls[0].delay(10);
    calls[1].delay(5.5);
    assert.equal(queue.nextTime(), 2);
    queue.runUntil(100);
    assert.deepEqual(log, [2, 3, 4, 1, 0]);
  });

  test('exceptions from calls are logged and the pass goes on', () => {
    const { queue } = makeQueue();
    const events: LogEvent[] = [];
    const remove = addObserver((event) => events.push(event));
    const log: string[] = [];
    try {
      queue.callLater(0, () => {
        throw new RangeError('boom');
      });
      queue.callLater(0, () => log.push('after'));
      assert.doesNotThrow(() => queue.runUntil(0));
    } finally {
      remove();
    }
    assert.deepEqual(log, ['after']);
    assert.equal(events.length, 1);
    assert.equal(events[0].isError, true);
    assert.ok(events[0].failure?.value instanceof RangeError);
  });

  test('hooks: onScheduled for new and earlier calls, onEmpty when the last goes', () => {
    const scheduled: number[] = [];
    let empties = 0;
    const { queue } = makeQueue({
      onScheduled: (t: number) => scheduled.push(t),
      onEmpty: () => empties++,
    });
    const a = queue.callLater(5, () => {});
    const b = queue.callLater(3, () => {});
    a.delay(1); // later: no hook
    b.delay(-1); // earlier
    assert.deepEqual(scheduled, [5, 3, 2]);
    a.cancel();
    assert.equal(empties, 0);
    b.cancel();
    assert.equal(empties, 1);
    queue.callLater(1, () => {});
    queue.runUntil(1);
    assert.equal(empties, 2);
  });

  test('getDelayedCalls lists active calls; inRunOrder sorts them', () => {
    const { queue } = makeQueue();
    const a = queue.callLater(3, () => {});
    const b = queue.callLater(1, () => {});
    const c = queue.callLater(1, () => {});
    const d = queue.callLater(2, () => {});
    d.cancel();
    assert.deepEqual(new Set(queue.getDelayedCalls()), new Set([a, b, c]));
    assert.deepEqual(queue.getDelayedCalls(true), [b, c, a]);
  });

  test('a nested run (from inside a call) keeps the order', () => {
    const { time, queue } = makeQueue();
    const log: string[] = [];
    queue.callLater(1, () => {
      log.push('a');
      time.now = 3;
      queue.runUntil(3);
    });
    queue.callLater(2, () => log.push('b'));
    queue.callLater(3, () => log.push('c'));
    queue.callLater(4, () => log.push('d'));
    time.now = 1;
    queue.runUntil(1);
    assert.deepEqual(log, ['a', 'b', 'c']);
  });

  test('mass cancellation compacts and keeps order (10,000 calls)', () => {
    const { time, queue } = makeQueue();
    const random = rng(1);
    const ran: number[] = [];
    const calls: DelayedCall[] = [];
    for (let i = 0; i < 10_000; i++) {
      calls.push(queue.callLater(Math.floor(random() * 100) / 10, (n: number) => ran.push(n), i));
    }
    const kept: number[] = [];
    for (let i = 0; i < calls.length; i++) {
      if (i % 10 === 0) kept.push(i);
      else calls[i].cancel();
    }
    assert.equal(queue.size, kept.length);
    time.now = 100;
    queue.runUntil(100);
    kept.sort((x, y) => calls[x].getTime() - calls[y].getTime() || x - y);
    assert.deepEqual(ran, kept);
    assert.equal(queue.size, 0);
  });

  test('random operations match a reference model', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = rng(seed);
      const { time, queue } = makeQueue();
      // The model: each live call's [time, seq]; seq grows on schedule, reset and delay.
      const model = new Map<number, { time: number; seq: number; call: DelayedCall }>();
      let seq = 0;
      let nextId = 0;
      const ran: number[] = [];
      const expected: number[] = [];
      for (let step = 0; step < 2000; step++) {
        const r = random();
        const ids = [...model.keys()];
        const pick = () => ids[Math.floor(random() * ids.length)];
        if (r < 0.45 || ids.length === 0) {
          const id = nextId++;
          const delay = Math.floor(random() * 20) / 4;
          const call = queue.callLater(delay, () => ran.push(id));
          model.set(id, { time: time.now + delay, seq: seq++, call });
        } else if (r < 0.65) {
          const id = pick();
          model.get(id)!.call.cancel();
          model.delete(id);
        } else if (r < 0.75) {
          const entry = model.get(pick())!;
          const delay = Math.floor(random() * 20) / 4;
          entry.call.reset(delay);
          entry.time = time.now + delay;
          entry.seq = seq++;
        } else if (r < 0.85) {
          const entry = model.get(pick())!;
          const by = Math.floor(random() * 16) / 4 - 2;
          entry.call.delay(by);
          entry.time += by;
          entry.seq = seq++;
        } else {
          time.now += Math.floor(random() * 8) / 4;
          const due = [...model.entries()]
            .filter(([, e]) => e.time <= time.now)
            .sort(([, x], [, y]) => x.time - y.time || x.seq - y.seq);
          for (const [id] of due) {
            expected.push(id);
            model.delete(id);
          }
          queue.runUntil(time.now);
          assert.deepEqual(ran, expected, `seed ${seed}, step ${step}`);
        }
        assert.equal(queue.size, model.size);
      }
    }
  });
});
