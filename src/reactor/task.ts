/**
 * Scheduling helpers over {@link IReactorTime}, as Twisted's
 * `twisted.internet.task`: {@link LoopingCall} (call a function every N
 * seconds), {@link deferLater} (a Deferred that fires later) and
 * {@link Cooperator} / {@link cooperate} (run many iterators time-sliced, so
 * long jobs share the loop with I/O).
 *
 * @module
 */

import { Deferred, isThenable, maybeDeferred } from './deferred.js';
import { InvalidArgumentError, TorsionError } from './errors.js';
import { Failure } from './failure.js';
import type { IDelayedCall, IReactorTime } from './interfaces.js';
import { reactor } from './reactor.js';
import { checkDelay } from './timer-queue.js';

// ====================================================================== errors

/** `start()` on a {@link LoopingCall} that is running. */
export class LoopingCallRunning extends TorsionError {
  constructor(message = 'LoopingCall is already running.') {
    super(message, 'TORSION_ERR_LOOPING_CALL_RUNNING');
  }
}

/** `stop()` or `reset()` on a {@link LoopingCall} that is not running. */
export class LoopingCallNotRunning extends TorsionError {
  constructor(message = 'LoopingCall is not running.') {
    super(message, 'TORSION_ERR_LOOPING_CALL_NOT_RUNNING');
  }
}

/** Base class of the {@link Cooperator}'s errors. */
export class SchedulerError extends TorsionError {
  constructor(message: string, code = 'TORSION_ERR_SCHEDULER') {
    super(message, code);
  }
}

/**
 * The {@link Cooperator} was stopped: delivered to the `whenDone()` errbacks
 * of its tasks, and of tasks given to it afterwards.
 */
export class SchedulerStopped extends SchedulerError {
  constructor(message = 'The cooperator was stopped.') {
    super(message, 'TORSION_ERR_SCHEDULER_STOPPED');
  }
}

/** Base class of the errors that say a {@link CooperativeTask} has finished. */
export class TaskFinished extends SchedulerError {
  constructor(message = 'The task has finished.', code = 'TORSION_ERR_TASK_FINISHED') {
    super(message, code);
  }
}

/** Thrown by `pause()`/`stop()` on a task whose iterator completed. */
export class TaskDone extends TaskFinished {
  constructor(message = 'The task has completed.') {
    super(message, 'TORSION_ERR_TASK_DONE');
  }
}

/** The task was stopped: its `whenDone()` errbacks get it; `pause()`/`stop()` then throw it. */
export class TaskStopped extends TaskFinished {
  constructor(message = 'The task was stopped.') {
    super(message, 'TORSION_ERR_TASK_STOPPED');
  }
}

/** Thrown by `pause()`/`stop()` on a task whose iterator (or a Deferred it yielded) failed. */
export class TaskFailed extends TaskFinished {
  constructor(message = 'The task failed.') {
    super(message, 'TORSION_ERR_TASK_FAILED');
  }
}

/** `resume()` on a task that is not paused. */
export class NotPaused extends SchedulerError {
  constructor(message = 'The task is not paused.') {
    super(message, 'TORSION_ERR_NOT_PAUSED');
  }
}

// ====================================================================== LoopingCall

/**
 * Calls a function every `interval` seconds (Twisted's `LoopingCall`).
 *
 * Calls are kept on the grid `startTime + k * interval`: the next call is
 * scheduled for the next grid point after the previous call *finished*, so
 * slow calls or a blocked loop skip the grid points that were missed rather
 * than running late calls back to back ({@link LoopingCall.withCount} tells
 * the function how many were skipped). If the function returns a Deferred or
 * thenable, the next call is scheduled only once it has fired.
 */
export class LoopingCall<A extends unknown[] = []> {
  /**
   * The clock the calls are scheduled on: the default reactor unless set
   * (tests set a `Clock`). Change it only while stopped.
   */
  clock: IReactorTime = reactor;

  readonly #fn: (...args: A) => unknown;
  readonly #args: A;
  #running = false;
  #call: IDelayedCall | null = null;
  #deferred: Deferred<this> | null = null;
  #interval = 0;
  #startTime = 0;
  #runAtStart = false;
  #lastTime: number | null = null;

  /** A loop that calls `fn(...args)`; nothing happens until {@link LoopingCall.start}. */
  constructor(fn: (...args: A) => unknown, ...args: A) {
    this.#fn = fn;
    this.#args = args;
  }

  /**
   * A loop that calls `countFn(count)`, where `count` is how many intervals
   * have elapsed since the previous call (since start for the first call;
   * 1 for a call on time, more when calls were skipped). The counts add up to
   * the number of intervals elapsed. With an interval of 0, `count` is always 1.
   */
  static withCount(countFn: (count: number) => unknown): LoopingCall<[]> {
    const loop: LoopingCall<[]> = new LoopingCall(() => loop.#count(countFn));
    return loop;
  }

  /** `true` between `start()` and `stop()` (or a failure of the function). */
  get running(): boolean {
    return this.#running;
  }

  /** The interval given to the last `start()`, in seconds. */
  get interval(): number {
    return this.#interval;
  }

  /** The delayed call for the next run, or `null` while the function runs or is awaited. */
  get call(): IDelayedCall | null {
    return this.#call;
  }

  /**
   * Starts calling the function every `interval` seconds: the first call at
   * once (synchronously, inside `start`) if `now`, else after one interval.
   * With an interval of 0 it is called on every turn of the clock.
   * @returns a Deferred that fires with this LoopingCall once stopped, or fails
   *   with the failure of the function (which also stops the loop).
   * @throws InvalidArgumentError if `interval` is negative or not a finite number.
   * @throws LoopingCallRunning if it is running.
   */
  start(interval: number, now = true): Deferred<this> {
    checkDelay(interval, 'interval');
    if (this.#running) throw new LoopingCallRunning();
    this.#running = true;
    const deferred = new Deferred<this>();
    this.#deferred = deferred;
    this.#startTime = this.clock.seconds();
    this.#interval = interval;
    this.#runAtStart = now;
    this.#lastTime = null;
    if (now) this.#tick();
    else this.#scheduleFrom(this.#startTime);
    return deferred;
  }

  /**
   * Stops the loop: no more calls. If no call is in progress, the Deferred
   * `start()` returned fires now (synchronously); if one is (the function is
   * running, or its Deferred has not fired), it fires once that call is done.
   * @throws LoopingCallNotRunning if it is not running.
   */
  stop(): void {
    if (!this.#running) throw new LoopingCallNotRunning();
    this.#running = false;
    if (this.#call !== null) {
      this.#call.cancel();
      this.#call = null;
      this.#fire();
    }
  }

  /**
   * Restarts the interval grid from now: the next call is one interval from
   * now. Does nothing while a call is in progress.
   * @throws LoopingCallNotRunning if it is not running.
   */
  reset(): void {
    if (!this.#running) throw new LoopingCallNotRunning();
    if (this.#call !== null) {
      this.#call.cancel();
      this.#call = null;
      this.#startTime = this.clock.seconds();
      this.#scheduleFrom(this.#startTime);
    }
  }

  readonly #tick = (): void => {
    this.#call = null;
    maybeDeferred(this.#fn, ...this.#args).addCallbacks(
      () => {
        if (this.#running) this.#scheduleFrom(this.clock.seconds());
        else this.#fire();
      },
      (failure) => {
        this.#running = false;
        const deferred = this.#deferred;
        this.#deferred = null;
        deferred?.errback(failure);
      },
    );
  };

  #fire(): void {
    const deferred = this.#deferred;
    this.#deferred = null;
    deferred?.callback(this);
  }

  #scheduleFrom(when: number): void {
    this.#call = this.clock.callLater(this.#delayFrom(when), this.#tick);
  }

  /** Seconds from `when` to the next grid point strictly after it. */
  #delayFrom(when: number): number {
    const interval = this.#interval;
    if (interval === 0) return 0;
    const untilNext = interval - ((when - this.#startTime) % interval);
    // Too small to move `when` at all: that grid point is `when` itself.
    if (when === when + untilNext) return interval;
    return untilNext;
  }

  #count(countFn: (count: number) => unknown): unknown {
    const now = this.clock.seconds();
    if (this.#interval === 0) {
      this.#lastTime = now;
      return countFn(1);
    }
    let lastTime = this.#lastTime;
    if (lastTime === null) {
      lastTime = this.#startTime;
      if (this.#runAtStart) lastTime -= this.#interval;
    }
    const count = this.#intervalOf(now) - this.#intervalOf(lastTime);
    if (count > 0) {
      this.#lastTime = now;
      return countFn(count);
    }
    return undefined;
  }

  #intervalOf(time: number): number {
    return Math.trunc((time - this.#startTime) / this.#interval);
  }

  /** For debugging: the function's name, the interval and whether it runs. */
  toString(): string {
    return `<LoopingCall ${this.#fn.name || 'anonymous'} every ${this.#interval}s${this.#running ? '' : ' (stopped)'}>`;
  }
}

// ====================================================================== deferLater

/**
 * A Deferred that fires `delay` seconds from now on `clock`: with the result
 * of `fn(...args)` (awaited if it returns a Deferred or thenable; a throw
 * fails it), or with `undefined` when no `fn` is given. Cancelling it before
 * then cancels the delayed call (`fn` never runs) and fails it with
 * `CancelledError`.
 * @throws InvalidArgumentError if `delay` is negative or not a finite number.
 */
export function deferLater(clock: IReactorTime, delay: number): Deferred<void>;
export function deferLater<R, A extends unknown[]>(
  clock: IReactorTime,
  delay: number,
  fn: (...args: A) => R,
  ...args: A
): Deferred<Awaited<R>>;
export function deferLater(
  clock: IReactorTime,
  delay: number,
  fn?: (...args: unknown[]) => unknown,
  ...args: unknown[]
): Deferred<unknown> {
  checkDelay(delay);
  const d = new Deferred<unknown>(() => {
    if (call.active()) call.cancel();
  });
  const call = clock.callLater(delay, () => d.callback(undefined));
  if (fn !== undefined) d.addCallback(() => fn(...args));
  return d;
}

// ====================================================================== Cooperator

/** Arranges for `work` to run soon (on a later turn); returns something that can cancel it. */
export type Scheduler = (work: () => void) => { cancel(): void };

/**
 * Called at the start of each time slice; returns a predicate that the
 * cooperator calls after each unit of work: `true` ends the slice.
 */
export type TerminationPredicateFactory = () => () => boolean;

/** Options of {@link Cooperator}. */
export interface CooperatorOptions {
  /** When a time slice ends. Default: after 10 ms of work. */
  terminationPredicateFactory?: TerminationPredicateFactory;
  /** How the next slice is scheduled. Default: `reactor.callLater(0, work)`, after pending I/O. */
  scheduler?: Scheduler;
  /** Start at once (default `true`); if `false`, nothing runs before `start()`. */
  started?: boolean;
}

/** Time slice of the default termination predicate, in milliseconds (Twisted: 10 ms). */
const SLICE_MS = 10;

function sliceTimer(): () => boolean {
  const end = performance.now() + SLICE_MS;
  return () => performance.now() >= end;
}

const defaultScheduler: Scheduler = (work) => reactor.callLater(0, work);

// Cross-class internals, handed out by the classes' static blocks.
let addTask: (cooperator: Cooperator, task: CooperativeTask<unknown>) => void;
let removeTask: (cooperator: Cooperator, task: CooperativeTask<unknown>) => void;
let stepTask: (task: CooperativeTask<unknown>) => void;
let completeTask: (task: CooperativeTask<unknown>, state: SchedulerError, result: unknown) => void;

/**
 * One iterator being run by a {@link Cooperator} (Twisted's `CooperativeTask`).
 *
 * Each unit of work is one `next()` of the iterator. A yielded Deferred or
 * thenable suspends the task until it fires (a failure fails the task); any
 * other value is ignored. The task completes when the iterator is done, throws,
 * or the task or its cooperator is stopped.
 */
export class CooperativeTask<T = unknown> {
  readonly #iterator: Iterator<T>;
  readonly #cooperator: Cooperator;
  #waiters: Deferred<Iterator<T>>[] = [];
  #pauseCount = 0;
  /** Waiting on a Deferred the iterator yielded. */
  #waiting = false;
  /** Set once finished: what `pause()`/`stop()` throw from then on. */
  #completion: SchedulerError | null = null;
  /** The iterator (success) or the Failure (failure), once finished. */
  #result: unknown = undefined;

  /** Made by {@link Cooperator.cooperate}; starts scheduled. */
  constructor(iterator: Iterator<T>, cooperator: Cooperator) {
    this.#iterator = iterator;
    this.#cooperator = cooperator;
    addTask(cooperator, this);
  }

  /**
   * A new Deferred for the task's end: it fires with the iterator when the
   * iterator completes, fails with the iterator's error (or that of a Deferred
   * it yielded), with {@link TaskStopped} after `stop()`, or with
   * {@link SchedulerStopped} when the cooperator is stopped. Each call returns
   * a new Deferred; after the end, one that has already fired.
   */
  whenDone(): Deferred<Iterator<T>> {
    const d = new Deferred<Iterator<T>>();
    if (this.#completion === null) {
      this.#waiters.push(d);
    } else if (this.#result instanceof Failure) {
      d.errback(this.#result);
    } else {
      d.callback(this.#result as Iterator<T>);
    }
    return d;
  }

  /**
   * Suspends the task until a matching `resume()`; pauses nest. A pause does
   * not interrupt a `next()` in progress.
   * @throws TaskDone / TaskStopped / TaskFailed / SchedulerStopped once finished.
   */
  pause(): void {
    if (this.#completion !== null) throw this.#completion;
    this.#pauseCount++;
    if (this.#pauseCount === 1 && !this.#waiting) removeTask(this.#cooperator, this);
  }

  /**
   * Undoes one `pause()`; the task is scheduled again when none is left (and
   * it is not waiting on a yielded Deferred). Resuming a finished task that is
   * still paused is allowed and does nothing else.
   * @throws NotPaused if it is not paused.
   */
  resume(): void {
    if (this.#pauseCount === 0) throw new NotPaused();
    this.#pauseCount--;
    if (this.#pauseCount === 0 && !this.#waiting && this.#completion === null) {
      addTask(this.#cooperator, this);
    }
  }

  /**
   * Stops the task: the iterator is not advanced again (nor closed), and the
   * `whenDone()` Deferreds fail with {@link TaskStopped}.
   * @throws TaskDone / TaskStopped / TaskFailed / SchedulerStopped once finished.
   */
  stop(): void {
    if (this.#completion !== null) throw this.#completion;
    const stopped = new TaskStopped();
    this.#complete(stopped, new Failure(stopped));
  }

  #complete(state: SchedulerError, result: unknown): void {
    if (this.#completion !== null) return;
    this.#completion = state;
    this.#result = result;
    if (this.#pauseCount === 0 && !this.#waiting) removeTask(this.#cooperator, this);
    // Fired after leaving the cooperator, so their callbacks may use it freely.
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const d of waiters) {
      if (result instanceof Failure) d.errback(result);
      else d.callback(result as Iterator<T>);
    }
  }

  #step(): void {
    let item: IteratorResult<T>;
    try {
      item = this.#iterator.next();
    } catch (error) {
      this.#complete(new TaskFailed(), Failure.from(error));
      return;
    }
    if (item.done) {
      this.#complete(new TaskDone(), this.#iterator);
      return;
    }
    const value: unknown = item.value;
    if (!isThenable(value) || this.#completion !== null) return;
    if (this.#pauseCount === 0) removeTask(this.#cooperator, this);
    this.#waiting = true;
    const d = value instanceof Deferred ? value : Deferred.fromPromise(value);
    d.addCallbacks(
      (result) => {
        this.#waiting = false;
        if (this.#pauseCount === 0 && this.#completion === null) addTask(this.#cooperator, this);
        return result;
      },
      (failure) => {
        this.#waiting = false;
        // Finished meanwhile (stopped): leave the failure unhandled, to be reported.
        if (this.#completion !== null) return failure;
        this.#complete(new TaskFailed(), failure);
        return undefined;
      },
    );
  }

  static {
    stepTask = (task) => task.#step();
    completeTask = (task, state, result) => task.#complete(state, result);
  }
}

/**
 * Runs iterators cooperatively (Twisted's `Cooperator`): in each time slice it
 * takes one step of each scheduled task in turn, round robin, until the
 * termination predicate says the slice is over (10 ms by default), then
 * schedules the next slice with its scheduler, letting I/O run in between.
 */
export class Cooperator {
  #tasks: CooperativeTask<unknown>[] = [];
  /** Round-robin position in `#tasks`; kept across slices for fairness. */
  #cursor = 0;
  #call: { cancel(): void } | null = null;
  #started: boolean;
  #stopped = false;
  #mustScheduleOnStart = false;
  readonly #scheduler: Scheduler;
  readonly #termination: TerminationPredicateFactory;

  /** A cooperator; see {@link CooperatorOptions} for the defaults. */
  constructor(options: CooperatorOptions = {}) {
    this.#scheduler = options.scheduler ?? defaultScheduler;
    this.#termination = options.terminationPredicateFactory ?? sliceTimer;
    this.#started = options.started ?? true;
  }

  /**
   * Starts running `iterator` (an iterable is iterated) as a new task. On a
   * stopped cooperator the task finishes at once with {@link SchedulerStopped}.
   */
  cooperate<T>(iterator: Iterator<T> | Iterable<T>): CooperativeTask<T> {
    return new CooperativeTask(toIterator(iterator), this);
  }

  /** `cooperate(iterator).whenDone()`. */
  coiterate<T>(iterator: Iterator<T> | Iterable<T>): Deferred<Iterator<T>> {
    return this.cooperate(iterator).whenDone();
  }

  /** `true` when started and not stopped. */
  get running(): boolean {
    return this.#started && !this.#stopped;
  }

  /**
   * Starts a cooperator made with `started: false`, or restarts a stopped one
   * (for new tasks: the stopped ones stay finished).
   */
  start(): void {
    this.#stopped = false;
    this.#started = true;
    if (this.#mustScheduleOnStart) {
      this.#mustScheduleOnStart = false;
      this.#reschedule();
    }
  }

  /**
   * Stops the cooperator: every task it runs finishes with
   * {@link SchedulerStopped} (in the order they were scheduled), as do tasks
   * given to it until `start()`.
   */
  stop(): void {
    this.#stopped = true;
    const tasks = this.#tasks;
    this.#tasks = [];
    this.#cursor = 0;
    this.#cancelCall();
    for (const task of tasks) {
      const stopped = new SchedulerStopped();
      completeTask(task, stopped, new Failure(stopped));
    }
  }

  #cancelCall(): void {
    if (this.#call !== null) {
      this.#call.cancel();
      this.#call = null;
    }
  }

  #reschedule(): void {
    if (!this.#started) {
      this.#mustScheduleOnStart = true;
      return;
    }
    if (this.#call === null && this.#tasks.length > 0) this.#call = this.#scheduler(this.#tick);
  }

  readonly #tick = (): void => {
    this.#call = null;
    const sliceOver = this.#termination();
    const tasks = this.#tasks;
    while (this.#tasks === tasks && tasks.length > 0) {
      if (this.#cursor >= tasks.length) this.#cursor = 0;
      stepTask(tasks[this.#cursor++]);
      if (sliceOver()) break;
    }
    this.#reschedule();
  };

  static {
    addTask = (cooperator, task) => {
      if (cooperator.#stopped) {
        const stopped = new SchedulerStopped();
        completeTask(task, stopped, new Failure(stopped));
        return;
      }
      cooperator.#tasks.push(task);
      cooperator.#reschedule();
    };
    removeTask = (cooperator, task) => {
      const tasks = cooperator.#tasks;
      const index = tasks.indexOf(task);
      if (index === -1) return;
      tasks.splice(index, 1);
      if (index < cooperator.#cursor) cooperator.#cursor--;
      if (tasks.length === 0) cooperator.#cancelCall();
    };
  }
}

function toIterator<T>(source: Iterator<T> | Iterable<T>): Iterator<T> {
  if (source === null || typeof source !== 'object') {
    throw new InvalidArgumentError('cooperate() takes an iterator or an iterable');
  }
  if (typeof (source as Iterator<T>).next === 'function') return source as Iterator<T>;
  if (typeof (source as Iterable<T>)[Symbol.iterator] === 'function') {
    return (source as Iterable<T>)[Symbol.iterator]();
  }
  throw new InvalidArgumentError('cooperate() takes an iterator or an iterable');
}

const theCooperator = new Cooperator();

/** Runs `iterator` on the default {@link Cooperator}; see {@link Cooperator.cooperate}. */
export function cooperate<T>(iterator: Iterator<T> | Iterable<T>): CooperativeTask<T> {
  return theCooperator.cooperate(iterator);
}

/** Runs `iterator` on the default {@link Cooperator} and returns `whenDone()`. */
export function coiterate<T>(iterator: Iterator<T> | Iterable<T>): Deferred<Iterator<T>> {
  return theCooperator.coiterate(iterator);
}
