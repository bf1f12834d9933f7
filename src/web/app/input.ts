/**
 * {@link AppInput}: `environ['wsgi.input']`, the request body as an app reads
 * it: `read()`, `readline()`, async iteration, and (through the request's
 * `AsyncBody`) the seed's one-shot `onGet`. All of them are reads of the
 * request's flow-controlled body (`request.bodyStream()`), one at a time:
 * while none is pending nothing is taken from the body, so the channel stops
 * reading the client's socket once a small buffer (64 KiB) is full, and the
 * client's upload is paused by TCP.
 *
 * A read that waits for the client longer than the resource's `inputTimeout`
 * breaks the input: that read and every later one fail with
 * {@link BrokenPipeError}, as they do when the client goes away or sends a
 * malformed body. The end of the body is an empty Buffer, and only the end.
 *
 * @module
 */

import { ConnectionLost, InvalidArgumentError } from '../../reactor/errors.js';
import type { IDelayedCall, IReactorTime } from '../../reactor/interfaces.js';
import type { IRequestBody } from '../iweb.js';
import { BrokenPipeError, InputBusyError, InputReplacedError, LineTooLongError } from './errors.js';

/**
 * The `wsgi.input` contract: what an app may call on `environ['wsgi.input']`
 * (and what a middleware's replacement must offer). One read at a time.
 */
export interface InputStream extends AsyncIterable<Buffer> {
  /**
   * The next bytes of the request body, at most `size` (default: what is
   * buffered or arrives next), as soon as some are available: a short read
   * is not the end. Resolves to an empty Buffer at the end of the body (for
   * a chunked body too) and for every later call. Rejects with
   * {@link BrokenPipeError} when the body broke off (client gone, malformed
   * body, no data for `inputTimeout`), never with an early empty read.
   */
  read(size?: number): Promise<Buffer>;
  /**
   * The next line, with its `\n`; the last line of the body may have none;
   * an empty Buffer at the end. With `size`, at most `size` bytes (a longer
   * line comes in pieces, as Python's `readline(size)`).
   */
  readline(size?: number): Promise<Buffer>;
}

/** What the input tells the request's driver. */
export interface InputOwner {
  /** Whether `environ['wsgi.input']` is no longer this input (checked by `onGet`). */
  inputReplaced(): boolean;
  /** A read waited `inputTimeout` for the client: the connection must not be reused. */
  inputTimedOut(error: BrokenPipeError): void;
  /** The input broke under an `onGet` that gave no `onError`: the response must be aborted. */
  inputFailedUnheard(error: Error): void;
  /** An `onGet` callback (or its `onError`) threw. */
  appCallbackFailed(error: unknown): void;
}

/** What a pending read is. */
const NONE = 0;
const READ = 1;
const LINE = 2;
const GET = 3;

const EMPTY = Buffer.alloc(0);
const LF = 0x0a;

function toResult(data: Buffer): IteratorResult<Buffer> {
  return data.length === 0 ? { done: true, value: undefined } : { done: false, value: data };
}

/** A read's `size`: undefined, or a positive integer (larger than any body: no limit). */
function checkSize(size: number | undefined, what: string): number | undefined {
  if (size === undefined) return undefined;
  if (typeof size !== 'number' || !(size >= 1)) {
    throw new InvalidArgumentError(`${what}: size must be a positive integer, got ${String(size)}`);
  }
  return size >= Number.MAX_SAFE_INTEGER ? undefined : Math.floor(size);
}

/** What a pending read of the body failed with, as the app sees it. */
function brokenPipe(reason: unknown): BrokenPipeError {
  if (reason instanceof BrokenPipeError) return reason;
  if (reason instanceof ConnectionLost) {
    return new BrokenPipeError('the client went away before the end of the request body', {
      cause: reason,
    });
  }
  const why = reason instanceof Error ? reason.message : String(reason);
  return new BrokenPipeError(`the request body broke off: ${why}`, { cause: reason });
}

let startGet: (
  input: AppInput,
  length: number,
  callback: (data: Buffer) => void,
  onError: ((error: Error) => void) | undefined,
) => void;
let stopInput: (input: AppInput) => void;

/**
 * The seed's `onGet` on `input` (see `AsyncBody.onGet`): one-shot,
 * `callback(data)` with at most `length` bytes once some are available
 * (never inside this call), `callback(empty)` at the end, `onError` (or the
 * driver's `inputFailedUnheard`) when the input breaks.
 * @throws InvalidArgumentError for a bad `length` or callback.
 * @throws InputReplacedError if `environ['wsgi.input']` was replaced.
 * @throws InputBusyError if a read of the input is pending.
 */
export function inputOnGet(
  input: AppInput,
  length: number,
  callback: (data: Buffer) => void,
  onError: ((error: Error) => void) | undefined,
): void {
  startGet(input, length, callback, onError);
}

/** The response ended: the input's timer stops (pending reads settle as the body does). */
export function closeInput(input: AppInput): void {
  stopInput(input);
}

/**
 * `environ['wsgi.input']` (see the module documentation). Made by the
 * gateway for each request.
 */
export class AppInput implements InputStream {
  readonly #body: IRequestBody;
  readonly #owner: InputOwner;
  readonly #clock: IReactorTime;
  /** Seconds a read may wait for the client; 0: forever. */
  readonly #timeout: number;
  readonly #maxLine: number;

  /** Bytes taken from the body and not yet handed out (what `readline` read past a line end). */
  #rest: Buffer | null = null;
  #ended = false;
  #failure: Error | null = null;
  #pending = NONE;
  /** A read of the body is in flight (what the timeout watches). */
  #waiting = false;
  #closed = false;
  #timer: IDelayedCall | null = null;

  #resolve: ((data: Buffer) => void) | null = null;
  #reject: ((reason: unknown) => void) | null = null;
  #getCallback: ((data: Buffer) => void) | null = null;
  #getError: ((error: Error) => void) | undefined = undefined;
  #lineParts: Buffer[] = [];
  #lineBytes = 0;
  #lineLimit = 0;
  #lineStrict = false;

  // Bound once: every read of the body settles through these.
  readonly #onData: (data: Buffer) => void;
  readonly #onFail: (reason: unknown) => void;

  static {
    startGet = (input, length, callback, onError) => input.#get(length, callback, onError);
    stopInput = (input) => input.#close();
  }

  /**
   * Made by the gateway.
   * @param timeout - seconds a read may wait for the client (0: no limit).
   * @param maxLine - the longest line `readline()` without a size returns.
   */
  constructor(
    body: IRequestBody,
    owner: InputOwner,
    clock: IReactorTime,
    timeout: number,
    maxLine: number,
  ) {
    this.#body = body;
    this.#owner = owner;
    this.#clock = clock;
    this.#timeout = timeout;
    this.#maxLine = maxLine;
    this.#onData = (data) => this.#settled(data);
    this.#onFail = (reason) => this.#failed(reason);
  }

  /** `true` once the end of the body was handed out. */
  get ended(): boolean {
    return this.#ended && this.#rest === null;
  }

  /** The error the input broke with, or `null`. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** See {@link InputStream.read}. Rejects with InputBusyError if a read is pending. */
  read(size?: number): Promise<Buffer> {
    let max: number | undefined;
    try {
      max = checkSize(size, 'read()');
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#pending !== NONE) {
      return Promise.reject(new InputBusyError('read(): another read of the input is pending'));
    }
    if (this.#rest !== null) return Promise.resolve(this.#takeRest(max));
    return new Promise<Buffer>((resolve, reject) => {
      this.#pending = READ;
      this.#resolve = resolve;
      this.#reject = reject;
      this.#fetch(max);
    });
  }

  /**
   * See {@link InputStream.readline}. Without `size`, a line longer than
   * the resource's `maxLineLength` rejects with {@link LineTooLongError}
   * (its bytes stay unread). Rejects with InputBusyError if a read is pending.
   */
  readline(size?: number): Promise<Buffer> {
    let limit: number | undefined;
    try {
      limit = checkSize(size, 'readline()');
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#pending !== NONE) {
      return Promise.reject(new InputBusyError('readline(): another read of the input is pending'));
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.#pending = LINE;
      this.#resolve = resolve;
      this.#reject = reject;
      this.#lineParts = [];
      this.#lineBytes = 0;
      this.#lineStrict = size === undefined;
      this.#lineLimit = size === undefined ? this.#maxLine : (limit ?? Number.MAX_SAFE_INTEGER);
      this.#lineStep();
    });
  }

  /** Async iteration over the pieces of the body (sugar over {@link read}); stops at its end. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => this.read().then(toResult),
      return: (): Promise<IteratorResult<Buffer>> =>
        Promise.resolve({ done: true, value: undefined }),
    };
  }

  // ------------------------------------------------------------------ internals

  #get(
    length: number,
    callback: (data: Buffer) => void,
    onError: ((error: Error) => void) | undefined,
  ): void {
    const max = checkSize(length, 'onGet()');
    if (typeof callback !== 'function') {
      throw new InvalidArgumentError('onGet(): callback must be a function');
    }
    if (onError !== undefined && typeof onError !== 'function') {
      throw new InvalidArgumentError('onGet(): onError must be a function or undefined');
    }
    if (this.#owner.inputReplaced()) throw new InputReplacedError();
    if (this.#pending === GET) {
      throw new InputBusyError('onGet(): one-shot: a previous onGet has not been called back yet');
    }
    if (this.#pending !== NONE) {
      throw new InputBusyError('onGet(): a read of wsgi.input is pending');
    }
    this.#pending = GET;
    this.#getCallback = callback;
    this.#getError = onError;
    // Never called back inside onGet (the seed: it returns at once).
    if (this.#rest !== null) Promise.resolve(this.#takeRest(max)).then(this.#onData);
    else this.#fetch(max);
  }

  #close(): void {
    this.#closed = true;
    const timer = this.#timer;
    this.#timer = null;
    if (timer?.active()) timer.cancel();
  }

  /** One read of the body, settled through #settled / #failed. */
  #fetch(max: number | undefined): void {
    this.#waiting = true;
    if (this.#timeout > 0 && !this.#closed && !this.#ended && this.#failure === null) {
      const timer = this.#timer;
      if (timer?.active()) timer.reset(this.#timeout);
      else this.#timer = this.#clock.callLater(this.#timeout, AppInput.#timedOut, this);
    }
    this.#body.read(max).then(this.#onData, this.#onFail);
  }

  #takeRest(max: number | undefined): Buffer {
    const rest = this.#rest!;
    if (max === undefined || rest.length <= max) {
      this.#rest = null;
      return rest;
    }
    this.#rest = rest.subarray(max);
    return rest.subarray(0, max);
  }

  /** Data (or, empty, the end) for the pending read. */
  #settled(data: Buffer): void {
    this.#waiting = false;
    if (data.length === 0) this.#ended = true;
    switch (this.#pending) {
      case READ: {
        const resolve = this.#resolve!;
        this.#pending = NONE;
        this.#resolve = null;
        this.#reject = null;
        resolve(data);
        return;
      }
      case LINE:
        if (data.length === 0) this.#lineDone();
        else {
          this.#rest = data;
          this.#lineStep();
        }
        return;
      case GET: {
        const callback = this.#getCallback!;
        this.#pending = NONE;
        this.#getCallback = null;
        this.#getError = undefined;
        try {
          callback(data);
        } catch (e) {
          this.#owner.appCallbackFailed(e);
        }
        return;
      }
    }
  }

  /** The pending read of the body failed: the input is broken (unless it was misused). */
  #failed(reason: unknown): void {
    this.#waiting = false;
    let error: Error;
    if (this.#failure !== null) error = this.#failure;
    else if (reason instanceof InvalidArgumentError) {
      // Someone else reads request.bodyStream(): a misuse, not a broken input.
      error = reason;
    } else {
      error = brokenPipe(reason);
      this.#failure = error;
    }
    const kind = this.#pending;
    this.#pending = NONE;
    if (kind === READ || kind === LINE) {
      const reject = this.#reject!;
      this.#resolve = null;
      this.#reject = null;
      this.#lineParts = [];
      reject(error);
    } else if (kind === GET) {
      const onError = this.#getError;
      this.#getCallback = null;
      this.#getError = undefined;
      if (onError === undefined) {
        this.#owner.inputFailedUnheard(error);
        return;
      }
      try {
        onError(error);
      } catch (e) {
        this.#owner.appCallbackFailed(e);
      }
    }
  }

  /** Gathers the pending line from #rest, reading more as needed. */
  #lineStep(): void {
    for (;;) {
      const rest = this.#rest;
      if (rest === null) {
        if (this.#ended) this.#lineDone();
        else this.#fetch(undefined);
        return;
      }
      const room = this.#lineLimit - this.#lineBytes;
      const end = rest.indexOf(LF);
      if (end !== -1 && end < room) {
        this.#lineParts.push(end === rest.length - 1 ? rest : rest.subarray(0, end + 1));
        this.#rest = end === rest.length - 1 ? null : rest.subarray(end + 1);
        this.#lineDone();
        return;
      }
      if (rest.length < room) {
        this.#lineParts.push(rest);
        this.#lineBytes += rest.length;
        this.#rest = null;
        continue;
      }
      if (!this.#lineStrict) {
        this.#lineParts.push(rest.subarray(0, room));
        this.#rest = rest.length === room ? null : rest.subarray(room);
        this.#lineDone();
        return;
      }
      // No line end within the limit: the bytes go back, unread.
      this.#lineParts.push(rest);
      this.#rest = Buffer.concat(this.#lineParts);
      const reject = this.#reject!;
      this.#pending = NONE;
      this.#resolve = null;
      this.#reject = null;
      this.#lineParts = [];
      reject(new LineTooLongError(this.#lineLimit));
      return;
    }
  }

  #lineDone(): void {
    const parts = this.#lineParts;
    const resolve = this.#resolve!;
    this.#pending = NONE;
    this.#resolve = null;
    this.#reject = null;
    this.#lineParts = [];
    resolve(parts.length === 0 ? EMPTY : parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  static #timedOut(input: AppInput): void {
    input.#timer = null;
    if (!input.#waiting || input.#closed || input.#failure !== null) return;
    const ms = Math.round(input.#timeout * 1000);
    const error = new BrokenPipeError(`no request body data for ${ms} ms`, { timedOut: true });
    input.#failure = error;
    input.#owner.inputTimedOut(error);
    // The pending read of the body rejects (and is reported as `error`);
    // what the client sends from now on is dropped.
    input.#body.stopProducing();
  }
}
