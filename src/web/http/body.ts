/**
 * {@link RequestBody}: a request body as a flow-controlled input (the
 * {@link IRequestBody} contract), fed by the channel that parses it.
 *
 * The channel pushes the pieces the parser extracts ({@link RequestBody.push}),
 * then ends or fails the body. What happens to a piece depends on who reads:
 * - nobody yet, a `read()` not pending, or a paused sink: it is kept (as a
 *   view of the socket's Buffer, not a copy) and counted; the channel stops
 *   reading the socket once its connection holds more than a small amount
 *   (64 KiB) that nobody took;
 * - a pending `read()` or an unpaused sink (`deliverTo`): it goes straight
 *   there (no buffering, no allocation on the push path);
 * - `collect()` (`request.body()`): it is gathered, up to a cap;
 * - after {@link RequestBody.discard} or `stopProducing()`: it is dropped.
 *
 * The channel learns of demand and consumption through a {@link BodyOwner}:
 * `bodyWanted` the first time a reader asks (when `100 Continue` goes out),
 * `bodyConsumed` whenever kept bytes leave (read, delivered or dropped).
 *
 * @module
 */

import { InvalidArgumentError, TorsionError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import { err } from '../../reactor/log.js';
import type { IBodySink, IRequestBody } from '../iweb.js';
import { HTTPError } from './errors.js';
import type { Headers } from './headers.js';

/** The request body was dropped unread: its response finished first, or its reader stopped it. */
export class BodyDiscardedError extends TorsionError {
  constructor(
    message = 'the request body was discarded: the response finished before it was read',
  ) {
    super(message, 'TORSION_ERR_HTTP_BODY_DISCARDED');
  }
}

/** The 413 of {@link RequestBody.collect} (and `request.body()`). */
export function bodyTooLarge(maxBytes: number): HTTPError {
  return new HTTPError(
    413,
    `request body larger than the limit (${maxBytes} bytes)`,
    'TORSION_ERR_HTTP_BODY_TOO_LARGE',
  );
}

/**
 * The side that feeds a {@link RequestBody} (the channel), told about demand.
 * Both calls may come from inside a reader's call (`read`, `deliverTo`,
 * `resumeProducing`…) and may push more data into the body synchronously.
 */
export interface BodyOwner {
  /** A reader asked for data for the first time (once per body). */
  bodyWanted(body: RequestBody): void;
  /** `bytes` of kept (pushed and counted) data left the body: read, delivered or dropped. */
  bodyConsumed(body: RequestBody, bytes: number): void;
}

/** {@link RequestBody.push}: the piece is kept in the body and counts against the connection's buffer. */
export const PUSH_KEPT = 0;
/** {@link RequestBody.push}: the piece went to the reader (or was gathered by `collect`). */
export const PUSH_TAKEN = 1;
/** {@link RequestBody.push}: the piece was dropped (the body is being discarded). */
export const PUSH_DROPPED = 2;

const M_IDLE = 0; // nobody asked yet
const M_READ = 1; // read() / async iteration
const M_SINK = 2; // deliverTo
const M_COLLECT = 3; // collect() / request.body()
const M_SPENT = 4; // collect() failed: kept, never handed out again
const M_DISCARD = 5; // discard() or stopProducing(): dropped

const EMPTY = Buffer.alloc(0);

/** A safe `maxBytes` argument: undefined, or a positive safe integer. */
function checkMax(maxBytes: number | undefined, what: string): number {
  if (maxBytes === undefined) return Number.POSITIVE_INFINITY;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new InvalidArgumentError(`${what} must be a positive integer, got ${String(maxBytes)}`);
  }
  return maxBytes;
}

/**
 * One request's body (see the module documentation). Readers use the
 * {@link IRequestBody} API; the channel uses {@link push}, {@link end},
 * {@link fail} and {@link discard}.
 *
 * Ordering guarantees: data is handed out in arrival order, data already
 * received is handed out before the end or the failure, and a failure
 * (`ConnectionLost`, a malformed chunk, a timeout) is always reported: a
 * reader never sees an early end.
 */
export class RequestBody implements IRequestBody {
  /** `Content-Length` when the client sent one, else `null` (chunked or empty). */
  readonly length: number | null;

  readonly #owner: BodyOwner | null;
  #mode = M_IDLE;
  #wanted = false;

  // Kept pieces: #chunks[#first…] in order, #kept bytes in all.
  #chunks: Buffer[] = [];
  #first = 0;
  #kept = 0;

  #received = 0;
  #complete: boolean;
  #failure: Failure | null = null;
  #trailers: Headers | null = null;
  /** Why the body was dropped (what late readers are told). */
  #discardReason: Error | null = null;

  // read(): one pending at a time.
  #readResolve: ((data: Buffer) => void) | null = null;
  #readReject: ((reason: unknown) => void) | null = null;
  #readMax = 0;

  // deliverTo()
  #sink: IBodySink | null = null;
  #paused = false;
  #delivering = false;
  #told = false; // the sink got bodyEnded/bodyFailed

  // collect()
  #collectPromise: Promise<Buffer> | null = null;
  #collectResolve: ((data: Buffer) => void) | null = null;
  #collectReject: ((reason: unknown) => void) | null = null;
  #collected: Buffer[] | null = null;
  #collectedBytes = 0;
  #collectMax = 0;

  /**
   * @param owner - told about demand and consumption (`null`: nobody).
   * @param length - the request's `Content-Length`, or `null`.
   * @param complete - `true` for a request without a body: it is empty and
   *   complete from the start.
   */
  constructor(owner: BodyOwner | null, length: number | null, complete: boolean) {
    this.#owner = owner;
    this.length = length;
    this.#complete = complete;
  }

  /** Bytes of body received from the client so far. */
  get received(): number {
    return this.#received;
  }

  /** `true` once the whole body has been received from the client. */
  get complete(): boolean {
    return this.#complete;
  }

  /** The body's failure once it broke off (`ConnectionLost`, a parse error…), else `null`. */
  get failure(): Failure | null {
    return this.#failure;
  }

  /** The trailer fields of a chunked body, once complete; `null` if there were none. */
  get trailers(): Headers | null {
    return this.#trailers;
  }

  /** Bytes received and kept, not yet handed to a reader. */
  get buffered(): number {
    return this.#kept;
  }

  /** Whether some reader asked for data (`read`, `deliverTo`, `collect`, iteration). */
  get wanted(): boolean {
    return this.#wanted;
  }

  /** Whether the body is being dropped ({@link discard} or `stopProducing()`). */
  get discarding(): boolean {
    return this.#mode === M_DISCARD;
  }

  // ------------------------------------------------------------------ IRequestBody

  /**
   * The next piece of the body, at most `maxBytes` (default: all that is
   * kept, or the next piece to arrive); an empty Buffer at the end (and for
   * every later call). Kept data is returned before a failure is reported.
   * Rejects with the body's failure (`ConnectionLost` when the client went
   * away) once no data is left; with {@link BodyDiscardedError} once the
   * body was discarded; with InvalidArgumentError if a read is pending, the
   * body is delivered to a sink or collected, or `maxBytes` is not a positive
   * integer.
   */
  read(maxBytes?: number): Promise<Buffer> {
    let max: number;
    try {
      max = checkMax(maxBytes, 'read() maxBytes');
    } catch (e) {
      return Promise.reject(e);
    }
    const mode = this.#mode;
    if (mode === M_SINK || mode === M_COLLECT || mode === M_SPENT) {
      return Promise.reject(
        new InvalidArgumentError('read(): the body is already delivered to a sink or collected'),
      );
    }
    if (this.#readResolve !== null) {
      return Promise.reject(new InvalidArgumentError('read(): a read is already pending'));
    }
    if (mode === M_DISCARD) return Promise.reject(this.#discardedError());
    this.#mode = M_READ;
    this.#want();
    if (this.#kept > 0) {
      const data = this.#take(max);
      this.#owner?.bodyConsumed(this, data.length);
      return Promise.resolve(data);
    }
    if (this.#failure !== null) return Promise.reject(this.#failure.value);
    if (this.#complete) return Promise.resolve(EMPTY);
    const promise = new Promise<Buffer>((resolve, reject) => {
      this.#readResolve = resolve;
      this.#readReject = reject;
    });
    this.#readMax = max;
    return promise;
  }

  /**
   * Pushes the rest of the body into `sink`: what is kept now, at once
   * (unless this body is paused), then each piece as it arrives, then
   * `bodyEnded()` or `bodyFailed(reason)`. `pauseProducing()` stops the
   * deliveries (pieces are then kept, and the client is paused past the
   * connection's buffer), `resumeProducing()` restarts them. After
   * `stopProducing()` the sink is told nothing more. If the body was
   * discarded, the sink gets `bodyFailed` with {@link BodyDiscardedError}.
   * An exception thrown by the sink is logged and the body is then dropped.
   * @throws InvalidArgumentError if the body is already being read,
   *   delivered or collected.
   */
  deliverTo(sink: IBodySink): void {
    const mode = this.#mode;
    if (mode === M_READ || mode === M_SINK || mode === M_COLLECT || mode === M_SPENT) {
      throw new InvalidArgumentError('deliverTo(): the body is already being read');
    }
    this.#sink = sink;
    if (mode === M_DISCARD) {
      this.#tellSink();
      return;
    }
    this.#mode = M_SINK;
    this.#want();
    this.#deliver();
  }

  /** Stops deliveries to the sink until {@link resumeProducing}. Idempotent. */
  pauseProducing(): void {
    this.#paused = true;
  }

  /** Undoes {@link pauseProducing}: kept pieces are delivered at once, then new ones as they come. */
  resumeProducing(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#mode === M_SINK && !this.#delivering) this.#deliver();
  }

  /**
   * The reader will take nothing more: kept and later pieces are dropped
   * (the channel closes the connection if too much would have to be
   * dropped), the sink is told nothing more, a pending `read()` rejects with
   * {@link BodyDiscardedError}.
   */
  stopProducing(): void {
    this.#sink = null;
    this.#told = true;
    this.discard(new BodyDiscardedError('the request body was stopped by its reader'));
  }

  /** Async iteration over the pieces (sugar over {@link read}). */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () =>
        this.read().then(
          (data): IteratorResult<Buffer> =>
            data.length === 0 ? { done: true, value: undefined } : { done: false, value: data },
        ),
      return: (): Promise<IteratorResult<Buffer>> =>
        Promise.resolve({ done: true, value: undefined }),
    };
  }

  /**
   * The whole body, gathered: resolves once it is complete; fails with a 413
   * {@link HTTPError} (`TORSION_ERR_HTTP_BODY_TOO_LARGE`) when it exceeds
   * `maxBytes`, at once if `Content-Length` says so (before asking the
   * client for it); with the body's failure if it breaks off. Calling it again
   * returns the same Promise. The gathered pieces are the only place where a
   * body grows in memory, up to `maxBytes`.
   * @throws (rejects with) InvalidArgumentError if the body is being read or
   *   delivered, or for a bad `maxBytes`.
   */
  collect(maxBytes: number): Promise<Buffer> {
    if (this.#collectPromise !== null) return this.#collectPromise;
    let max: number;
    try {
      max = checkMax(maxBytes, 'maxBytes');
    } catch (e) {
      return Promise.reject(e);
    }
    const mode = this.#mode;
    if (mode === M_READ || mode === M_SINK) {
      return Promise.reject(new InvalidArgumentError('body(): the body is already being read'));
    }
    if (mode === M_DISCARD) {
      this.#collectPromise = Promise.reject(this.#discardedError());
      return this.#collectPromise;
    }
    if (this.length !== null && this.length > max) {
      this.#mode = M_SPENT;
      this.#collectPromise = Promise.reject(bodyTooLarge(max));
      return this.#collectPromise;
    }
    this.#mode = M_COLLECT;
    this.#collectMax = max;
    const kept = this.#kept;
    const parts = this.#chunks.slice(this.#first);
    this.#chunks = [];
    this.#first = 0;
    this.#kept = 0;
    this.#collected = parts;
    this.#collectedBytes = kept;
    const promise = new Promise<Buffer>((resolve, reject) => {
      this.#collectResolve = resolve;
      this.#collectReject = reject;
    });
    this.#collectPromise = promise;
    if (kept > max) this.#collectFailed(bodyTooLarge(max));
    else if (this.#failure !== null) this.#collectFailed(this.#failure.value);
    else if (this.#complete) this.#collectDone();
    else this.#want();
    if (kept > 0) this.#owner?.bodyConsumed(this, kept);
    return promise;
  }

  // ------------------------------------------------------------------ the channel's side

  /**
   * A piece of the body arrived (never empty; a view the body may keep).
   * Returns {@link PUSH_KEPT}, {@link PUSH_TAKEN} or {@link PUSH_DROPPED}:
   * only kept bytes count against the connection's buffer, and their
   * leaving is reported through `bodyConsumed`.
   */
  push(chunk: Buffer): number {
    const n = chunk.length;
    this.#received += n;
    switch (this.#mode) {
      case M_READ: {
        const resolve = this.#readResolve;
        if (resolve === null || this.#kept > 0) break;
        this.#readResolve = null;
        this.#readReject = null;
        const max = this.#readMax;
        if (n <= max) {
          resolve(chunk);
          return PUSH_TAKEN;
        }
        resolve(chunk.subarray(0, max));
        this.#keep(chunk.subarray(max));
        return PUSH_KEPT;
      }
      case M_SINK:
        if (this.#paused || this.#delivering || this.#kept > 0) break;
        this.#toSink(chunk);
        return PUSH_TAKEN;
      case M_COLLECT: {
        const total = this.#collectedBytes + n;
        if (total > this.#collectMax) {
          this.#collectFailed(bodyTooLarge(this.#collectMax));
          break;
        }
        this.#collected!.push(chunk);
        this.#collectedBytes = total;
        return PUSH_TAKEN;
      }
      case M_DISCARD:
        return PUSH_DROPPED;
    }
    this.#keep(chunk);
    return PUSH_KEPT;
  }

  /** The body is complete (`trailers`: the chunked trailer fields, or `null`). Idempotent. */
  end(trailers: Headers | null = null): void {
    if (this.#complete || this.#failure !== null) return;
    this.#complete = true;
    this.#trailers = trailers;
    this.#settle();
  }

  /**
   * The body broke off with `reason`; readers learn it once the data kept
   * before it is handed out. Ignored once the body is complete or failed.
   */
  fail(reason: Failure): void {
    if (this.#complete || this.#failure !== null) return;
    this.#failure = reason;
    this.#settle();
  }

  /**
   * Drops the body: kept data now (reported as consumed), and every later
   * piece ({@link push} returns {@link PUSH_DROPPED}). A pending read, a
   * pending collect and a sink fail with `reason` (default
   * {@link BodyDiscardedError}). Idempotent.
   */
  discard(reason: Error = new BodyDiscardedError()): void {
    if (this.#mode === M_DISCARD) return;
    this.#mode = M_DISCARD;
    const kept = this.#kept;
    this.#chunks = [];
    this.#first = 0;
    this.#kept = 0;
    this.#collected = null;
    const readReject = this.#readReject;
    this.#readResolve = null;
    this.#readReject = null;
    const collectReject = this.#collectReject;
    this.#collectResolve = null;
    this.#collectReject = null;
    this.#discardReason = reason;
    if (readReject !== null) readReject(reason);
    if (collectReject !== null) collectReject(reason);
    if (this.#sink !== null && !this.#told) this.#tellSink();
    if (kept > 0) this.#owner?.bodyConsumed(this, kept);
  }

  // ------------------------------------------------------------------ internals

  #discardedError(): Error {
    return this.#discardReason ?? new BodyDiscardedError();
  }

  #want(): void {
    if (this.#wanted) return;
    this.#wanted = true;
    this.#owner?.bodyWanted(this);
  }

  #keep(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#kept += chunk.length;
  }

  /** Takes up to `max` kept bytes (views when a piece suffices; one copy when pieces are joined). */
  #take(max: number): Buffer {
    const chunks = this.#chunks;
    const head = chunks[this.#first]!;
    let out: Buffer;
    if (head.length > max) {
      out = head.subarray(0, max);
      chunks[this.#first] = head.subarray(max);
    } else if (head.length === max || this.#first === chunks.length - 1) {
      out = head;
      this.#first++;
    } else {
      // Several pieces: join as many as fit (whatever is kept is at most a
      // little over the connection's buffer limit).
      const want = Math.min(max, this.#kept);
      out = Buffer.allocUnsafe(want);
      let at = 0;
      while (at < want) {
        const c = chunks[this.#first]!;
        const n = Math.min(c.length, want - at);
        c.copy(out, at, 0, n);
        at += n;
        if (n === c.length) this.#first++;
        else chunks[this.#first] = c.subarray(n);
      }
    }
    this.#kept -= out.length;
    if (this.#first === chunks.length) {
      chunks.length = 0;
      this.#first = 0;
    } else if (this.#first > 64 && this.#first * 2 > chunks.length) {
      this.#chunks = chunks.slice(this.#first);
      this.#first = 0;
    }
    return out;
  }

  /** The body ended or failed: tell whoever waits, once kept data is handed out. */
  #settle(): void {
    switch (this.#mode) {
      case M_READ: {
        const resolve = this.#readResolve;
        const reject = this.#readReject;
        if (resolve === null || this.#kept > 0) return;
        this.#readResolve = null;
        this.#readReject = null;
        if (this.#failure !== null) reject!(this.#failure.value);
        else resolve(EMPTY);
        return;
      }
      case M_SINK:
        if (!this.#delivering && !this.#paused && this.#kept === 0) this.#tellSink();
        return;
      case M_COLLECT:
        if (this.#failure !== null) this.#collectFailed(this.#failure.value);
        else this.#collectDone();
        return;
    }
  }

  /** Delivers kept pieces to the sink while it is not paused, then the end if due. */
  #deliver(): void {
    this.#delivering = true;
    let consumed = 0;
    try {
      const chunks = this.#chunks;
      while (!this.#paused && this.#mode === M_SINK && this.#first < chunks.length) {
        const chunk = chunks[this.#first]!;
        chunks[this.#first++] = EMPTY;
        this.#kept -= chunk.length;
        consumed += chunk.length;
        this.#toSink(chunk);
      }
      if (this.#first === chunks.length) {
        chunks.length = 0;
        this.#first = 0;
      }
    } finally {
      this.#delivering = false;
    }
    if (
      this.#mode === M_SINK &&
      !this.#paused &&
      this.#kept === 0 &&
      (this.#complete || this.#failure !== null)
    ) {
      this.#tellSink();
    }
    if (consumed > 0) this.#owner?.bodyConsumed(this, consumed);
  }

  #toSink(chunk: Buffer): void {
    try {
      this.#sink!.dataReceived(chunk);
    } catch (e) {
      err(e, 'Unhandled error in a request body sink (dataReceived)');
      this.#sink = null;
      this.#told = true;
      this.discard(new BodyDiscardedError('the request body sink raised an error'));
    }
  }

  /** Tells the sink how the body ended: once. */
  #tellSink(): void {
    const sink = this.#sink;
    if (sink === null || this.#told) return;
    this.#told = true;
    try {
      if (this.#mode === M_DISCARD) sink.bodyFailed(new Failure(this.#discardedError()));
      else if (this.#failure !== null) sink.bodyFailed(this.#failure);
      else sink.bodyEnded();
    } catch (e) {
      err(e, 'Unhandled error in a request body sink');
    }
  }

  #collectDone(): void {
    const resolve = this.#collectResolve;
    if (resolve === null) return;
    const parts = this.#collected!;
    const total = this.#collectedBytes;
    this.#collectResolve = null;
    this.#collectReject = null;
    this.#collected = null;
    resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
  }

  /** `collect()` failed: the gathered bytes go, the rest is kept (and never handed out). */
  #collectFailed(reason: unknown): void {
    const reject = this.#collectReject;
    this.#collectResolve = null;
    this.#collectReject = null;
    this.#collected = null;
    this.#collectedBytes = 0;
    if (this.#mode === M_COLLECT) this.#mode = M_SPENT;
    reject?.(reason);
  }
}
