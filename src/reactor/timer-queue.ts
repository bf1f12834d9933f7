/**
 * The one implementation of delayed calls, shared by `NodeReactor` and `Clock`.
 *
 * A {@link TimerQueue} keeps its {@link DelayedCall}s in a binary min-heap
 * ordered by `(time, sequence number)`: calls due at the same time run in the
 * order they were scheduled (or last moved). The queue does not know where
 * time comes from or when to run: its owner gives it a `seconds()` function
 * and calls {@link TimerQueue.runUntil} when it wants due calls run.
 *
 * Layout and cost model (see `bench/timers.ts`):
 * - The heap is three parallel arrays (times and sequence numbers in
 *   `Float64Array`s, calls in an array), so sifting compares unboxed numbers
 *   and never touches the call objects; entries keep no back-index.
 * - Scheduling is O(log n), usually O(1): a new call rarely climbs.
 * - `cancel()` is O(1): the entry is left in the heap as dead and skipped when
 *   it reaches the top; the heap is compacted in O(n) once dead entries
 *   outnumber live ones (and emptied at once when no live call is left), so
 *   memory stays within about twice the live set.
 * - `reset()`/`delay()` to a later time only record the new time: the entry is
 *   re-sifted when it reaches the top (as Twisted does), so a timeout pushed
 *   back on every packet costs O(1) per push. To an earlier time, a new entry
 *   is pushed (O(log n)) and the old one is left dead.
 *
 * @module
 */

import { AlreadyCalled, AlreadyCancelled, InvalidArgumentError } from './errors.js';
import type { IDelayedCall } from './interfaces.js';
import { err } from './log.js';

const PENDING = 0;
const CALLED = 1;
const CANCELLED = 2;

/** Marks a call with no entry in the heap (run, cancelled, or held during a pass). */
const NO_ENTRY = -1;

/** Compaction happens only past this many dead entries (small heaps are left alone). */
const COMPACT_MIN_DEAD = 64;

const INITIAL_CAPACITY = 64;

/** Capacity kept by an emptied queue (2 × 8 bytes per entry). */
const KEEP_CAPACITY = 1 << 18;

const NO_ARGS: unknown[] = [];

/** A delayed call's function, erased: typing lives in `callLater`'s signature. */
type AnyFn = (...args: unknown[]) => unknown;

/** State shared by a queue and its calls. */
interface QueueState {
  /** Heap keys: `times[i]`, then `seqs[i]`; entries `0 .. calls.length - 1`. */
  times: Float64Array;
  seqs: Float64Array;
  /** Heap entries' calls. An entry is live iff its call is pending and its seq is the call's `#entrySeq`. */
  calls: DelayedCall[];
  /** Dead entries in the heap. */
  dead: number;
  /** Active calls: in the heap, or held out of it during a pass. */
  live: number;
  /** The next sequence number; also the boundary of a pass (see `runUntil`). */
  nextSeq: number;
  /** Calls taken out of the heap during a pass because they were scheduled during it. */
  held: DelayedCall[];
  /** Nesting depth of `runUntil`. */
  depth: number;
  readonly seconds: () => number;
  readonly onScheduled: ((time: number) => void) | null;
  readonly onEmpty: (() => void) | null;
}

/** Hooks through which a queue tells its owner that it should (re)arm or disarm a timer. */
export interface TimerQueueHooks {
  /**
   * Called after a call is scheduled, or moved earlier by `reset`/`delay`,
   * with its new time. Not called when a call is moved later.
   */
  onScheduled?: (time: number) => void;
  /** Called when the last active call is cancelled or has run: the queue is empty. */
  onEmpty?: () => void;
}

/**
 * Rejects a delay that is negative, NaN or infinite.
 * @throws InvalidArgumentError
 */
export function checkDelay(delay: number, what = 'delay'): void {
  if (!(delay >= 0) || delay === Number.POSITIVE_INFINITY) {
    throw new InvalidArgumentError(`${what} must be a finite number >= 0, not ${String(delay)}`);
  }
}

// ---------------------------------------------------------------- the heap

function siftUp(q: QueueState, index: number, time: number, seq: number, call: DelayedCall): void {
  const { times, seqs, calls } = q;
  while (index > 0) {
    const parent = (index - 1) >> 1;
    const parentTime = times[parent];
    if (parentTime < time || (parentTime === time && seqs[parent] < seq)) break;
    times[index] = parentTime;
    seqs[index] = seqs[parent];
    calls[index] = calls[parent];
    index = parent;
  }
  times[index] = time;
  seqs[index] = seq;
  calls[index] = call;
}

function siftDown(
  q: QueueState,
  index: number,
  time: number,
  seq: number,
  call: DelayedCall,
): void {
  const { times, seqs, calls } = q;
  const length = calls.length;
  const half = length >> 1;
  while (index < half) {
    let child = 2 * index + 1;
    let childTime = times[child];
    let childSeq = seqs[child];
    const right = child + 1;
    if (right < length) {
      const rightTime = times[right];
      if (rightTime < childTime || (rightTime === childTime && seqs[right] < childSeq)) {
        child = right;
        childTime = rightTime;
        childSeq = seqs[right];
      }
    }
    if (time < childTime || (time === childTime && seq < childSeq)) break;
    times[index] = childTime;
    seqs[index] = childSeq;
    calls[index] = calls[child];
    index = child;
  }
  times[index] = time;
  seqs[index] = seq;
  calls[index] = call;
}

function push(q: QueueState, time: number, seq: number, call: DelayedCall): void {
  const size = q.calls.length;
  if (size === q.times.length) {
    const times = new Float64Array(size * 2);
    const seqs = new Float64Array(size * 2);
    times.set(q.times);
    seqs.set(q.seqs);
    q.times = times;
    q.seqs = seqs;
  }
  q.calls.push(call);
  siftUp(q, size, time, seq, call);
}

/** Removes the top entry. */
function popTop(q: QueueState): void {
  const calls = q.calls;
  const last = calls.length - 1;
  const lastCall = calls.pop()!;
  if (last > 0) siftDown(q, 0, q.times[last], q.seqs[last], lastCall);
}

/** Rebuilds the heap from its live entries (Floyd's heapify, O(n)). */
function compact(q: QueueState, isLive: (call: DelayedCall, seq: number) => boolean): void {
  const { times, seqs, calls } = q;
  let n = 0;
  for (let i = 0; i < calls.length; i++) {
    if (!isLive(calls[i], seqs[i])) continue;
    times[n] = times[i];
    seqs[n] = seqs[i];
    calls[n] = calls[i];
    n++;
  }
  calls.length = n;
  q.dead = 0;
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(q, i, times[i], seqs[i], calls[i]);
  if (n < q.times.length >> 2 && q.times.length > KEEP_CAPACITY) {
    const capacity = Math.max(INITIAL_CAPACITY, n * 2);
    q.times = q.times.slice(0, capacity);
    q.seqs = q.seqs.slice(0, capacity);
  }
}

/**
 * Drops every entry: only valid when none is live. The key arrays are kept
 * (reallocating them on every burst costs more than the memory) unless large.
 */
function clear(q: QueueState): void {
  q.calls.length = 0;
  q.dead = 0;
  if (q.times.length > KEEP_CAPACITY) {
    q.times = new Float64Array(INITIAL_CAPACITY);
    q.seqs = new Float64Array(INITIAL_CAPACITY);
  }
}

// DelayedCall's internals, handed to this module through its static block.
let schedule: (q: QueueState, delay: number, fn: AnyFn, args: unknown[]) => DelayedCall;
let runUntil: (q: QueueState, now: number) => number;
let nextTime: (q: QueueState) => number;
let activeCalls: (q: QueueState, inRunOrder: boolean) => DelayedCall[];

/**
 * A call scheduled with `callLater` (Twisted's `DelayedCall`). Only queues make
 * them; see {@link IDelayedCall} for the contract.
 *
 * A call is *active* from `callLater` until it starts running or is cancelled.
 * Cancelling, delaying or resetting an inactive call throws: `AlreadyCancelled`
 * if it was cancelled, `AlreadyCalled` if it ran (including from inside its
 * own function). Once inactive, the call drops its function and arguments.
 */
export class DelayedCall implements IDelayedCall {
  readonly #q: QueueState;
  /** When it runs. Its heap entry may have an earlier key (a lazy move later). */
  #time: number;
  /** Order among calls with the same time: scheduling or moving takes a new, larger one. */
  #seq: number;
  /** The seq of its heap entry, or NO_ENTRY. */
  #entrySeq: number;
  #state = PENDING;
  #fn: AnyFn | null;
  #args: unknown[] | null;

  private constructor(q: QueueState, time: number, fn: AnyFn, args: unknown[]) {
    const seq = q.nextSeq++;
    this.#q = q;
    this.#time = time;
    this.#seq = seq;
    this.#entrySeq = seq;
    this.#fn = fn;
    this.#args = args;
  }

  /** The time (in the owner's `seconds()`) at which it runs, or ran, or would have run. */
  getTime(): number {
    return this.#time;
  }

  /** `true` until it starts running or is cancelled. */
  active(): boolean {
    return this.#state === PENDING;
  }

  /** `true` once it has started running. */
  get called(): boolean {
    return this.#state === CALLED;
  }

  /** `true` once it has been cancelled. */
  get cancelled(): boolean {
    return this.#state === CANCELLED;
  }

  /**
   * Prevents the call from running; O(1).
   * @throws AlreadyCancelled if it was cancelled already.
   * @throws AlreadyCalled if it has run (or is running).
   */
  cancel(): void {
    this.#checkActive();
    const q = this.#q;
    this.#state = CANCELLED;
    this.#fn = null;
    this.#args = null;
    q.live--;
    if (this.#entrySeq !== NO_ENTRY) {
      const last = q.calls.length - 1;
      if (q.calls[last] === this && q.seqs[last] === this.#entrySeq) {
        q.calls.pop(); // the last entry goes without leaving a dead one
      } else {
        q.dead++;
      }
      this.#entrySeq = NO_ENTRY;
    }
    if (q.live === 0) {
      clear(q);
      q.onEmpty?.();
    } else if (q.dead > COMPACT_MIN_DEAD && q.dead > q.live) {
      compact(q, DelayedCall.#isLive);
    }
  }

  /**
   * Moves the call `secondsLater` seconds later (earlier when negative); it
   * then runs after calls already scheduled for its new time.
   * @throws InvalidArgumentError if `secondsLater` is not finite.
   * @throws AlreadyCancelled / AlreadyCalled when it is no longer active.
   */
  delay(secondsLater: number): void {
    if (!Number.isFinite(secondsLater)) {
      throw new InvalidArgumentError(`delay() takes a finite number, not ${String(secondsLater)}`);
    }
    this.#checkActive();
    this.#moveTo(this.#time + secondsLater);
  }

  /**
   * Reschedules the call `secondsFromNow` seconds from now; it then runs after
   * calls already scheduled for its new time.
   * @throws InvalidArgumentError if `secondsFromNow` is negative or not finite.
   * @throws AlreadyCancelled / AlreadyCalled when it is no longer active.
   */
  reset(secondsFromNow: number): void {
    checkDelay(secondsFromNow, 'reset() delay');
    this.#checkActive();
    this.#moveTo(this.#q.seconds() + secondsFromNow);
  }

  /** For debugging: state, time and (while active) the function's name. */
  toString(): string {
    const state = ['pending', 'called', 'cancelled'][this.#state];
    const fn = this.#fn === null ? '' : ` ${this.#fn.name || 'anonymous'}()`;
    return `<DelayedCall ${state} time=${this.#time}${fn}>`;
  }

  #checkActive(): void {
    if (this.#state === CANCELLED) throw new AlreadyCancelled();
    if (this.#state === CALLED) throw new AlreadyCalled();
  }

  #moveTo(time: number): void {
    const q = this.#q;
    const earlier = time < this.#time;
    this.#time = time;
    this.#seq = q.nextSeq++;
    // Held during a pass (no entry): re-inserted with its new time at the end.
    // Later: the entry stays, with a key earlier than the call; fixed at the top.
    if (this.#entrySeq === NO_ENTRY || !earlier) return;
    q.dead++;
    this.#entrySeq = this.#seq;
    push(q, time, this.#seq, this);
    q.onScheduled?.(time);
    if (q.dead > COMPACT_MIN_DEAD && q.dead > q.live) compact(q, DelayedCall.#isLive);
  }

  static #isLive(call: DelayedCall, seq: number): boolean {
    return call.#state === PENDING && call.#entrySeq === seq;
  }

  /**
   * Makes the top entry a live call keyed at its true time: pops dead entries
   * and re-sifts a call that was moved later. Returns it, or `undefined`.
   */
  static #settleTop(q: QueueState): DelayedCall | undefined {
    const calls = q.calls;
    while (calls.length > 0) {
      const top = calls[0];
      const seq = q.seqs[0];
      if (top.#state !== PENDING || top.#entrySeq !== seq) {
        popTop(q);
        q.dead--;
      } else if (top.#seq !== seq) {
        top.#entrySeq = top.#seq;
        siftDown(q, 0, top.#time, top.#seq, top);
      } else {
        return top;
      }
    }
    return undefined;
  }

  static {
    schedule = (q, delay, fn, args) => {
      checkDelay(delay);
      const time = q.seconds() + delay;
      // An empty rest array dies young instead of living as long as the call.
      const call = new DelayedCall(q, time, fn, args.length === 0 ? NO_ARGS : args);
      q.live++;
      push(q, time, call.#seq, call);
      q.onScheduled?.(time);
      return call;
    };

    runUntil = (q, now) => {
      // Calls with a sequence number from `limit` on were scheduled (or moved)
      // during this pass: they wait for the next one, even when due.
      const limit = q.nextSeq;
      const held = q.held;
      let ran = 0;
      q.depth++;
      try {
        for (;;) {
          const top = DelayedCall.#settleTop(q);
          if (top === undefined || top.#time > now) break;
          popTop(q);
          top.#entrySeq = NO_ENTRY;
          if (top.#seq >= limit) {
            held.push(top);
            continue;
          }
          const fn = top.#fn!;
          const args = top.#args!;
          top.#state = CALLED;
          top.#fn = null;
          top.#args = null;
          q.live--;
          ran++;
          try {
            if (args.length === 0) fn();
            else fn(...args);
          } catch (error) {
            err(error, `Unhandled error in delayed call ${fn.name || 'anonymous'}()`);
          }
        }
      } finally {
        q.depth--;
        if (q.depth === 0 && held.length > 0) {
          for (const call of held) {
            if (call.#state !== PENDING) continue;
            call.#entrySeq = call.#seq;
            push(q, call.#time, call.#seq, call);
          }
          held.length = 0;
        }
        if (q.live === 0 && q.calls.length > 0) clear(q);
      }
      if (ran > 0 && q.live === 0) q.onEmpty?.();
      return ran;
    };

    nextTime = (q) => {
      const top = DelayedCall.#settleTop(q);
      return top === undefined ? Number.POSITIVE_INFINITY : top.#time;
    };

    activeCalls = (q, inRunOrder) => {
      const calls: DelayedCall[] = [];
      q.calls.forEach((call, i) => {
        if (DelayedCall.#isLive(call, q.seqs[i])) calls.push(call);
      });
      for (const call of q.held) if (call.#state === PENDING) calls.push(call);
      if (inRunOrder) calls.sort((a, b) => a.#time - b.#time || a.#seq - b.#seq);
      return calls;
    };
  }
}

/**
 * A queue of delayed calls over a clock given by its owner.
 *
 * Reentrancy: a call may schedule, cancel, reset or delay any call (itself
 * included: cancelling itself throws `AlreadyCalled`), and may even run the
 * queue again (`Clock.advance` from inside a call).
 */
export class TimerQueue {
  readonly #q: QueueState;

  /**
   * @param seconds - the current time, in seconds; `callLater` and `reset`
   * add their delay to it.
   * @param hooks - see {@link TimerQueueHooks}.
   */
  constructor(seconds: () => number, hooks: TimerQueueHooks = {}) {
    this.#q = {
      times: new Float64Array(INITIAL_CAPACITY),
      seqs: new Float64Array(INITIAL_CAPACITY),
      calls: [],
      dead: 0,
      live: 0,
      nextSeq: 0,
      held: [],
      depth: 0,
      seconds,
      onScheduled: hooks.onScheduled ?? null,
      onEmpty: hooks.onEmpty ?? null,
    };
  }

  /** How many calls are active (scheduled, neither run nor cancelled). */
  get size(): number {
    return this.#q.live;
  }

  /**
   * Schedules `fn(...args)` to run `delay` seconds after `seconds()`.
   * @throws InvalidArgumentError if `delay` is negative, NaN or infinite.
   */
  callLater<A extends unknown[]>(
    delay: number,
    fn: (...args: A) => unknown,
    ...args: A
  ): DelayedCall {
    return schedule(this.#q, delay, fn as AnyFn, args);
  }

  /** {@link TimerQueue.callLater} with the arguments as an array, kept as given (not copied). */
  schedule<A extends unknown[]>(delay: number, fn: (...args: A) => unknown, args: A): DelayedCall {
    return schedule(this.#q, delay, fn as AnyFn, args);
  }

  /**
   * Runs, in `(time, sequence)` order, every call due at `now` (time ≤ `now`)
   * that was scheduled before this pass started; calls scheduled or moved
   * during the pass wait for the next one. An exception from a call is logged
   * with `err()` and the pass goes on. Returns how many calls ran.
   */
  runUntil(now: number): number {
    return runUntil(this.#q, now);
  }

  /** The time of the earliest active call, or `Infinity` when there is none. */
  nextTime(): number {
    return nextTime(this.#q);
  }

  /**
   * The active calls: in no particular order, or with `inRunOrder` sorted as
   * they would run (by time, then sequence), at O(n log n).
   */
  getDelayedCalls(inRunOrder = false): DelayedCall[] {
    return activeCalls(this.#q, inRunOrder);
  }
}
