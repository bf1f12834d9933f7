/**
 * The typed errors of the async app gateway: what an app sees when its input
 * breaks ({@link BrokenPipeError}), when it uses the input the wrong way
 * ({@link InputReplacedError}, {@link InputBusyError},
 * {@link LineTooLongError}), and when it breaks the gateway's contract
 * ({@link AppProtocolError}).
 *
 * @module
 */

import { TorsionError } from '../../reactor/errors.js';

/**
 * The request body broke off before its end: the client went away, sent a
 * malformed body, or sent nothing for the resource's `inputTimeout` while
 * the app waited (the seed's "pipe error": never an early empty read that
 * would look like a short body). `cause` holds the underlying error
 * (`ConnectionLost`, the 4xx `HTTPError` of a malformed body…), absent for
 * a timeout.
 */
export class BrokenPipeError extends TorsionError {
  /** `true` when the input broke because no data came for `inputTimeout` seconds. */
  readonly timedOut: boolean;

  constructor(message: string, options: { cause?: unknown; timedOut?: boolean } = {}) {
    super(
      message,
      'TORSION_ERR_APP_BROKEN_PIPE',
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.timedOut = options.timedOut ?? false;
  }
}

/**
 * `onGet` was called on the request's `AsyncBody` after a middleware replaced
 * `environ['wsgi.input']` with its own stream: the bytes `onGet` would hand
 * out are no longer the ones the app downstream of that middleware reads.
 * The check is on the environ the server made (a middleware replaces the
 * input in place, as WSGI middleware does); a middleware that hands a copy
 * of the environ downstream should leave out `torsion.async` too.
 */
export class InputReplacedError extends TorsionError {
  constructor(
    message = "onGet(): environ['wsgi.input'] was replaced (by a middleware): read that stream instead",
  ) {
    super(message, 'TORSION_ERR_APP_INPUT_REPLACED');
  }
}

/**
 * A second read of the request body was started while one is pending: a
 * second `onGet` before the first one's callback, or `read()`, `readline()`
 * or `onGet` while another of them waits. The input has one reader at a time.
 */
export class InputBusyError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_APP_INPUT_BUSY');
  }
}

/**
 * `readline()` without a size found no line end within the resource's
 * `maxLineLength`. The bytes of that line stay unread (a `read()` gets them).
 */
export class LineTooLongError extends TorsionError {
  constructor(limit: number) {
    super(`readline(): no line end within ${limit} bytes`, 'TORSION_ERR_APP_LINE_TOO_LONG');
  }
}

/**
 * The app broke the gateway's contract: `startResponse` called twice without
 * an error, or with a malformed status or headers; body bytes before
 * `startResponse`; a body that is not an iterable, an async iterable or the
 * request's `AsyncBody`; a chunk that is not a string or bytes; `put()`
 * after `finish()`. The response gets a 500 if its head was not sent yet,
 * else the connection is aborted.
 */
export class AppProtocolError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_APP_PROTOCOL');
  }
}
