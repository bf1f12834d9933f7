/**
 * Coordination on Deferreds: `DeferredLock`, `DeferredSemaphore`,
 * `DeferredQueue`, as in Twisted. Waiters are served first come, first
 * served; cancelling a pending `acquire()`/`get()` takes it out of the line.
 *
 * @module
 */

import { Deferred, maybeDeferred, succeed } from './deferred.js';
import { InvalidArgumentError, QueueOverflow, QueueUnderflow } from './errors.js';

/** Shared by lock and semaphore: a line of waiters and a run() helper. */
abstract class Lockish<Self> {
  protected readonly waiting: Deferred<Self>[] = [];

  /** Fires (with this object) when the caller holds it. */
  abstract acquire(): Deferred<Self>;

  /** Gives it back; the next waiter, if any, gets it. */
  abstract release(): void;

  protected enqueue(): Deferred<Self> {
    const d: Deferred<Self> = new Deferred<Self>((cancelled) => {
      const index = this.waiting.indexOf(cancelled);
      if (index !== -1) this.waiting.splice(index, 1);
    });
    this.waiting.push(d);
    return d;
  }

  /**
   * Acquires, calls `fn(...args)`, and releases once its result (a value, a
   * Deferred or a Promise) is settled. Fires with that result.
   */
  run<R, A extends unknown[]>(fn: (...args: A) => R, ...args: A): Deferred<Awaited<R>> {
    return this.acquire().addCallback(() =>
      maybeDeferred(fn, ...args).addBoth((result) => {
        this.release();
        return result;
      }),
    ) as Deferred<Awaited<R>>;
  }
}

/** A mutual-exclusion lock whose `acquire()` returns a Deferred. */
export class DeferredLock extends Lockish<DeferredLock> {
  #locked = false;

  /** `true` while someone holds the lock. */
  get locked(): boolean {
    return this.#locked;
  }

  acquire(): Deferred<DeferredLock> {
    if (!this.#locked) {
      this.#locked = true;
      return succeed<DeferredLock>(this);
    }
    return this.enqueue();
  }

  /** @throws InvalidArgumentError if the lock is not held. */
  release(): void {
    if (!this.#locked) throw new InvalidArgumentError('release() of an unlocked DeferredLock');
    const next = this.waiting.shift();
    if (next) next.callback(this);
    else this.#locked = false;
  }
}

/** A semaphore of `tokens` slots whose `acquire()` returns a Deferred. */
export class DeferredSemaphore extends Lockish<DeferredSemaphore> {
  /** The number of slots. */
  readonly limit: number;
  #tokens: number;

  /** @throws InvalidArgumentError unless `tokens` is a positive integer. */
  constructor(tokens: number) {
    super();
    if (!Number.isInteger(tokens) || tokens < 1) {
      throw new InvalidArgumentError(`DeferredSemaphore needs a positive integer, got ${tokens}`);
    }
    this.limit = tokens;
    this.#tokens = tokens;
  }

  /** Free slots now. */
  get tokens(): number {
    return this.#tokens;
  }

  acquire(): Deferred<DeferredSemaphore> {
    if (this.#tokens > 0) {
      this.#tokens--;
      return succeed<DeferredSemaphore>(this);
    }
    return this.enqueue();
  }

  /** @throws InvalidArgumentError if every slot is already free. */
  release(): void {
    if (this.#tokens === this.limit && this.waiting.length === 0) {
      throw new InvalidArgumentError('release() of a DeferredSemaphore with no slot taken');
    }
    const next = this.waiting.shift();
    if (next) next.callback(this);
    else this.#tokens++;
  }
}

/**
 * A queue whose `get()` returns a Deferred of the next item. `size` bounds the
 * items waiting to be taken; `backlog` bounds the `get()`s waiting for items.
 */
export class DeferredQueue<T> {
  /** Items put but not yet taken. */
  readonly pending: T[] = [];
  /** `get()` Deferreds waiting for an item. */
  readonly waiting: Deferred<T>[] = [];

  constructor(
    readonly size = Number.POSITIVE_INFINITY,
    readonly backlog = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Hands `item` to the oldest waiting `get()`, or keeps it.
   * @throws QueueOverflow if `size` items are already kept.
   */
  put(item: T): void {
    const waiter = this.waiting.shift();
    if (waiter) {
      waiter.callback(item);
    } else if (this.pending.length < this.size) {
      this.pending.push(item);
    } else {
      throw new QueueOverflow();
    }
  }

  /**
   * The next item, now or when one is put.
   * @throws QueueUnderflow if `backlog` gets are already waiting.
   */
  get(): Deferred<T> {
    if (this.pending.length > 0) return succeed(this.pending.shift() as T);
    if (this.waiting.length >= this.backlog) throw new QueueUnderflow();
    const d: Deferred<T> = new Deferred<T>((cancelled) => {
      const index = this.waiting.indexOf(cancelled);
      if (index !== -1) this.waiting.splice(index, 1);
    });
    this.waiting.push(d);
    return d;
  }
}
