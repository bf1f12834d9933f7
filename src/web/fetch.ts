/**
 * {@link FetchResource}: hosts a web-standard fetch handler — `(Request) =>
 * Response`, or an object with such a `fetch` method, as Hono, itty-router
 * and other "fetch apps" export — as a leaf of the resource tree, on the same
 * flow-controlled machinery as every torsion resource.
 *
 * For each request the handler gets a web `Request` (Node's global one):
 * - its absolute URL: `http:` or `https:` (TLS), the `Host` header (the
 *   server's address without one), the target as sent (see
 *   {@link FetchResourceOptions.stripPrefix});
 * - the method and every header field, in order;
 * - a `signal` that aborts (with a `ConnectionLost` reason) when the client
 *   goes away before the response is sent;
 * - for methods other than GET and HEAD, a body `ReadableStream` fed from
 *   the request's flow-controlled input, pull-driven: the socket is read
 *   only as fast as the handler consumes the body, at most the channel's
 *   small buffer (64 KiB) ahead; `duplex: 'half'`, so the handler may answer
 *   before reading it all (the rest is then dropped).
 *
 * Its `Response` is sent with its status, reason phrase and headers (each
 * `Set-Cookie` on its own line); the body is pulled from the body stream
 * only while the client's socket is writable (a push producer on the
 * request), with the response's `Content-Length` when it has one, else one
 * found for a body that is a single chunk, else chunked. HEAD responses send
 * no body (the handler's is cancelled). When the client goes away the body
 * stream is cancelled and the signal aborted.
 *
 * Failures go through the site's rules (see `./site.ts`): a handler that
 * throws or rejects, or answers something that is not a `Response`, gets a
 * 500 (the stack in it only with the site's `displayTracebacks`), logged; an
 * `HTTPException` it throws answers its own status; a body stream that fails
 * after the head went out aborts the connection, logged.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * const app = new Hono().get('/', (c) => c.text('hi'));
 * listenTCP(reactor, 8080, new Site(new FetchResource(app)));
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from '../reactor/errors.js';
import type { Failure } from '../reactor/failure.js';
import type { IReactorTime } from '../reactor/interfaces.js';
import { reactor as defaultReactor } from '../reactor/reactor.js';
import { toWebRequest } from './fetch/request.js';
import {
  applyResponseHead,
  discardBody,
  FetchResponseError,
  isResponse,
  ResponseWriter,
} from './fetch/response.js';
import { Request as HTTPRequest } from './http/request.js';
import { type IRequest, NOT_DONE_YET, type RenderResult } from './iweb.js';
import { Resource } from './resource.js';

export { requestURL } from './fetch/request.js';
export { FetchBodyError, FetchResponseError } from './fetch/response.js';

/** A web-standard request handler: a web `Request` in, a `Response` (or a promise of one) out. */
export type FetchHandler = (request: Request) => Response | PromiseLike<Response>;

/** An object with a fetch handler as its `fetch` method (a Hono app, an itty-router…). */
export interface FetchApplication {
  fetch(request: Request): Response | PromiseLike<Response>;
}

/** Options of {@link FetchResource}. */
export interface FetchResourceOptions {
  /**
   * Give the handler the URL path below the resource's place in the tree
   * (the segments traversed to reach it removed: mounted at `api`, a
   * request for `/api/users?x=1` gives `/users?x=1`) instead of the path as
   * sent. Default `false` (as every fetch host: route with the full path, e.g.
   * Hono's `basePath`).
   */
  stripPrefix?: boolean;
  /**
   * The reactor for the one delayed call each streamed response may make
   * (to send its head when the first chunk is slow). Default: the request's
   * channel's reactor, else the global reactor.
   */
  reactor?: IReactorTime;
}

type Call = (request: Request) => unknown;

/**
 * Hosts a fetch handler (see the module documentation). A leaf: it answers
 * every path below where it is mounted (the root of a `Site`, or a child).
 */
export class FetchResource extends Resource {
  override isLeaf = true;

  /** Whether the handler sees the path below the mount point (see {@link FetchResourceOptions.stripPrefix}). */
  readonly stripPrefix: boolean;
  readonly #call: Call;
  readonly #reactor: IReactorTime | null;

  /**
   * @param handler - a function `(request) => Response | Promise<Response>`,
   *   or an object whose `fetch` method is one (called as a method, so
   *   `this` is the object).
   * @throws InvalidArgumentError if `handler` is neither, or for a bad option.
   */
  constructor(handler: FetchHandler | FetchApplication, options: FetchResourceOptions = {}) {
    super();
    if (typeof handler === 'function') {
      this.#call = handler as Call;
    } else if (
      typeof handler === 'object' &&
      handler !== null &&
      typeof (handler as FetchApplication).fetch === 'function'
    ) {
      const app = handler as FetchApplication;
      this.#call = (request) => app.fetch(request);
    } else {
      throw new InvalidArgumentError(
        'FetchResource: the handler must be a function (request) => Response, or an object with a fetch(request) method',
      );
    }
    const { stripPrefix = false, reactor } = options;
    if (typeof stripPrefix !== 'boolean') {
      throw new InvalidArgumentError('FetchResource: stripPrefix must be a boolean');
    }
    if (reactor !== undefined && (reactor === null || typeof reactor.callLater !== 'function')) {
      throw new InvalidArgumentError('FetchResource: reactor must provide callLater');
    }
    this.stripPrefix = stripPrefix;
    this.#reactor = reactor ?? null;
  }

  /**
   * Calls the handler with the web `Request` for `request` and sends its
   * `Response`. Returns a promise that resolves with `NOT_DONE_YET` once the
   * response is finished (or the client has gone), and rejects (for the
   * site to answer 500 or abort the connection, and log) when the handler
   * fails or the response cannot be sent.
   */
  override render(request: IRequest): RenderResult {
    const reactor =
      this.#reactor ??
      (request instanceof HTTPRequest ? request.channel.reactor : null) ??
      defaultReactor;
    return new FetchExchange(request, reactor).run(this.#call, this.stripPrefix);
  }
}

/** One request through the handler: its abort signal, the handler's answer, the response. */
class FetchExchange {
  readonly #request: IRequest;
  readonly #reactor: IReactorTime;
  readonly #abort = new AbortController();
  #lost = false;

  constructor(request: IRequest, reactor: IReactorTime) {
    this.#request = request;
    this.#reactor = reactor;
  }

  run(call: Call, stripPrefix: boolean): Promise<typeof NOT_DONE_YET> {
    const request = this.#request;
    let result: unknown;
    try {
      const web = toWebRequest(request, this.#abort.signal, stripPrefix);
      request.notifyFinish().addErrback(this.#onLost);
      result = call(web);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve(result).then(this.#respond, this.#handlerFailed);
  }

  /** The connection went before the response finished: abort the handler's signal. */
  readonly #onLost = (failure: Failure): null => {
    this.#lost = true;
    this.#abort.abort(failure.value);
    return null;
  };

  readonly #respond = (response: unknown): Promise<typeof NOT_DONE_YET> | typeof NOT_DONE_YET => {
    const request = this.#request;
    if (!isResponse(response)) {
      throw new FetchResponseError(
        `the fetch handler returned ${response === null ? 'null' : typeof response}, not a Response`,
      );
    }
    if (this.#lost) {
      discardBody(response);
      return NOT_DONE_YET;
    }
    const body = response.body;
    if (body !== null && (response.bodyUsed || body.locked)) {
      throw new FetchResponseError('the response body was already used or is locked');
    }
    let declared: number;
    try {
      declared = applyResponseHead(request, response);
    } catch (e) {
      discardBody(response);
      throw e;
    }
    if (body === null || request.method === 'HEAD') {
      discardBody(response);
      request.finish();
      return NOT_DONE_YET;
    }
    return new ResponseWriter(request, body.getReader(), this.#reactor, declared).start();
  };

  /** The handler threw or rejected: the site answers (or, once the client is gone, an abort is quiet). */
  readonly #handlerFailed = (reason: unknown): typeof NOT_DONE_YET => {
    if (this.#lost && (reason === this.#abort.signal.reason || isAbortError(reason))) {
      return NOT_DONE_YET;
    }
    throw reason;
  };
}

function isAbortError(reason: unknown): boolean {
  return reason instanceof Error && reason.name === 'AbortError';
}
