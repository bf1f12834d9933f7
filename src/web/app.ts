/**
 * The async app gateway: apps in the style of PEP 3333 (WSGI), with the
 * asynchronous extension proposed on Web-SIG in 2004, hosted on the reactor.
 *
 * An {@link App} is `(environ, startResponse) => body`. The environ is a
 * plain object with CGI keys, `wsgi.input` (the request body, read with
 * `read`/`readline`/async iteration) and `torsion.async`, the request's
 * {@link AsyncBody}: the seed's special iterator, through which an app
 * - produces output: `put(data)`, `finish()`, `fail(error)`; when its queue
 *   is empty the server waits for the next put (no polling);
 * - reads input: `onGet(length, callback, onError)`, one-shot: while no
 *   read is pending the server stops reading the client once 64 KiB are
 *   buffered, so a slow app pauses the upload, upstream, by TCP;
 * - follows the client's pace: `writable`, `onDrain`, `registerProducer`
 *   (a push producer is paused while the client reads slowly);
 * - learns the end: `onClose`.
 *
 * The body may also be any iterable or async iterable (a middleware's
 * wrapper): an empty chunk then means "nothing yet" and the server backs off
 * (1 ms doubling to 100 ms). A broken or timed-out input is a
 * {@link BrokenPipeError}; `onGet` after a middleware replaced `wsgi.input`
 * throws {@link InputReplacedError}.
 *
 * @example
 * ```ts
 * import { AppResource, type App } from 'torsion/web';
 *
 * // Counts the bytes of an upload, reading it at its own pace.
 * const count: App = (environ, startResponse) => {
 *   const body = environ['torsion.async'];
 *   let total = 0;
 *   const more = (data: Buffer): void => {
 *     if (data.length === 0) {
 *       startResponse('200 OK', [['Content-Type', 'text/plain']]);
 *       body.put(`${total} bytes\n`);
 *       body.finish();
 *       return;
 *     }
 *     total += data.length;
 *     body.onGet(65536, more);
 *   };
 *   body.onGet(65536, more);
 *   return body;
 * };
 * root.putChild('count', new AppResource(count));
 * ```
 *
 * @module
 */

export { AsyncBody, type BodyChunk, QUEUE_HIGH_WATER } from './app/async-body.js';
export type { Environ, ErrorOutput } from './app/environ.js';
export { ErrorStream } from './app/environ.js';
export {
  AppProtocolError,
  BrokenPipeError,
  InputBusyError,
  InputReplacedError,
  LineTooLongError,
} from './app/errors.js';
export { AppInput, type InputStream } from './app/input.js';
export { AppResource, type AppResourceOptions } from './app/resource.js';
export type { App, AppBody, AsyncApp, StartResponse, WriteFunction } from './app/types.js';
