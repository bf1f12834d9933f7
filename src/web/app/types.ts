/**
 * The app contract: {@link App}, {@link StartResponse}, {@link AppBody}.
 *
 * @module
 */

import type { AsyncBody, BodyChunk } from './async-body.js';
import type { Environ } from './environ.js';

/**
 * The `write(data)` that `startResponse` returns, for legacy apps: sends
 * `data` now (the head first if it has not gone out), with no flow control
 * (bytes the client has not read wait in the connection's buffer). Empty
 * data is ignored; data is dropped once the client has gone away.
 * @throws AppProtocolError after the response ended.
 * @throws ContentLengthMismatch past a declared `Content-Length`.
 */
export type WriteFunction = (data: BodyChunk) => void;

/**
 * Starts the response (PEP 3333's `start_response`): `status` is
 * `"CODE REASON"`, `headers` the header fields in order. Nothing is sent
 * yet: the head goes out with the first non-empty body chunk (or at the end
 * of an empty body), so an app may call it again with `error` to replace
 * status and headers until then.
 * @param error - an error being handled (PEP 3333's `exc_info`): allowed
 *   after an earlier call; if the head has already gone out, `error` is
 *   thrown back (the app lets it propagate and the connection is aborted).
 * @throws AppProtocolError if called twice without `error`, or for a
 *   malformed status or headers list; InvalidHeaderError for an invalid
 *   header name or value.
 */
export type StartResponse = (
  status: string,
  headers: ReadonlyArray<readonly [string, string]>,
  error?: unknown,
) => WriteFunction;

/**
 * What an app returns: an iterable or async iterable of chunks (strings are
 * sent as UTF-8; empty chunks mean "nothing yet" and make the server back
 * off), or the request's {@link AsyncBody} (from `environ['torsion.async']`).
 * If the object has a `close()` method it is called exactly once when the
 * response is over, however it ends; an iterator left before its end gets
 * `return()`.
 */
export type AppBody = Iterable<BodyChunk> | AsyncIterable<BodyChunk> | AsyncBody;

/**
 * An app (PEP 3333's application, on the reactor): called once per request,
 * synchronously, on the reactor's thread. A synchronous throw, or a body
 * whose iteration throws or rejects, gives a 500 when the head has not gone
 * out, otherwise aborts the connection.
 */
export type App = (environ: Environ, startResponse: StartResponse) => AppBody;

/** An app that returns its body through a Promise (an `async function`), also accepted. */
export type AsyncApp = (environ: Environ, startResponse: StartResponse) => PromiseLike<AppBody>;
