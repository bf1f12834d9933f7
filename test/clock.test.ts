import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';

describe('Clock', () => {
  test('starts at 0 and moves only when advanced', () => {
    const clock = new Clock();
    assert.equal(clock.seconds(), 0);
    clock.advance(1.5);
    assert.equal(clock.seconds(), 1.5);
    clock.advance(0);
    assert.equal(clock.seconds(), 1.5);
  });

  test('advance runs exactly the calls due at the new time', () => {
    const clock = new Clock();
    const ran: number[] = [];
    clock.callLater(1, () => ran.push(1));
    clock.callLater(2, () => ran.push(2));
    clock.callLater(3, () => ran.push(3));
    clock.advance(0.999);
    assert.deepEqual(ran, []);
    clock.advance(0.001);
    assert.deepEqual(ran, [1]);
    clock.advance(5);
    assert.deepEqual(ran, [1, 2, 3]);
  });

  test('advance rejects negative, NaN and infinite amounts', () => {
    const clock = new Clock();
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => clock.advance(bad), InvalidArgumentError);
    }
    assert.equal(clock.seconds(), 0);
  });

  test('callLater rejects negative and NaN delays', () => {
    const clock = new Clock();
    assert.throws(() => clock.callLater(-1, () => {}), InvalidArgumentError);
    assert.throws(() => clock.callLater(Number.NaN, () => {}), InvalidArgumentError);
    assert.deepEqual(clock.getDelayedCalls(), []);
  });

  test('pump advances by each amount in turn', () => {
    const clock = new Clock();
    const seen: number[] = [];
    const tick = () => {
      seen.push(clock.seconds());
      clock.callLater(1, tick);
    };
    clock.callLater(1, tick);
    clock.pump([1, 1, 0.5, 0.5, 3]);
    assert.deepEqual(seen, [1, 2, 3, 6]);
    assert.equal(clock.seconds(), 6);
  });

  test('pump stops at the first bad amount', () => {
    const clock = new Clock();
    assert.throws(() => clock.pump([1, -1, 1]), InvalidArgumentError);
    assert.equal(clock.seconds(), 1);
  });

  test('getDelayedCalls is in run order', () => {
    const clock = new Clock();
    const c = clock.callLater(3, () => {});
    const a = clock.callLater(1, () => {});
    const b1 = clock.callLater(2, () => {});
    const b2 = clock.callLater(2, () => {});
    const d = clock.callLater(0.5, () => {});
    d.delay(4);
    assert.deepEqual(clock.getDelayedCalls(), [a, b1, b2, c, d]);
    assert.deepEqual(
      clock.getDelayedCalls().map((call) => call.getTime()),
      [1, 2, 2, 3, 4.5],
    );
  });

  test('a zero-delay call made during advance waits for the next advance', () => {
    const clock = new Clock();
    const ran: string[] = [];
    clock.callLater(1, () => {
      ran.push('outer');
      clock.callLater(0, () => ran.push('inner'));
    });
    clock.advance(1);
    assert.deepEqual(ran, ['outer']);
    assert.equal(clock.getDelayedCalls().length, 1);
    clock.advance(0);
    assert.deepEqual(ran, ['outer', 'inner']);
  });

  test('a call sees the advanced time', () => {
    const clock = new Clock();
    let seen = -1;
    clock.callLater(2, () => {
      seen = clock.seconds();
    });
    clock.advance(10);
    assert.equal(seen, 10);
  });

  test('reset is relative to the current time', () => {
    const clock = new Clock();
    const call = clock.callLater(5, () => {});
    clock.advance(2);
    call.reset(1);
    assert.equal(call.getTime(), 3);
    clock.advance(1);
    assert.equal(call.called, true);
  });

  test('an exception from a call is logged and advance goes on', () => {
    const clock = new Clock();
    const events: LogEvent[] = [];
    const remove = addObserver((event) => events.push(event));
    const ran: string[] = [];
    try {
      clock.callLater(1, () => {
        throw new Error('boom');
      });
      clock.callLater(1, () => ran.push('second'));
      clock.advance(1);
    } finally {
      remove();
    }
    assert.deepEqual(ran, ['second']);
    assert.equal(events.length, 1);
    assert.equal(events[0].failure?.getErrorMessage(), 'boom');
  });

  test('advance from inside a call runs the calls due by then, in order', () => {
    const clock = new Clock();
    const ran: string[] = [];
    clock.callLater(1, () => {
      ran.push('a');
      clock.advance(1);
      ran.push('a done');
    });
    clock.callLater(1.5, () => ran.push('b'));
    clock.callLater(3, () => ran.push('c'));
    clock.advance(1);
    assert.deepEqual(ran, ['a', 'b', 'a done']);
    assert.equal(clock.seconds(), 2);
  });
});
