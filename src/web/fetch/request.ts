/**
 * The web-standard `Request` a fetch handler receives, built from a torsion
 * {@link IRequest}: its absolute URL, method, headers, abort signal, and a
 * body that is a pull-driven `ReadableStream` over the request's
 * flow-controlled input ({@link RequestBodySource}).
 *
 * @module
 */

import type { ReadableStreamDefaultController } from 'node:stream/web';
import { IPv6Address, UNIXAddress } from '../../reactor/address.js';
import type { IAddress } from '../../reactor/interfaces.js';
import { targetAuthority } from '../app/environ.js';
import { HTTPException } from '../errors.js';
import type { IRequest, IRequestBody } from '../iweb.js';

/**
 * Methods the fetch API cannot carry (undici's `Request` refuses them,
 * whatever their case): such requests are answered 501 without calling the
 * handler.
 */
const UNCARRIED_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'TRACE', 'TRACK']);

/** `host[:port]` of a server address, for a URL (IPv6 in brackets; UNIX sockets: `localhost`). */
function authorityOf(address: IAddress): string {
  if (address instanceof UNIXAddress) return 'localhost';
  const a = address as IAddress & { host?: string; port?: number };
  if (a.host === undefined) return 'localhost';
  const host = address instanceof IPv6Address ? `[${a.host}]` : a.host;
  return a.port === undefined ? host : `${host}:${a.port}`;
}

/**
 * The path and query to give the handler: the request-target as sent (an
 * origin-form `/a/b?x=1`; for an absolute-form target, its path and query;
 * `*` becomes `/`), or with `stripPrefix` the part below the resource's
 * mount point (the segments in `request.prepath` removed, still
 * percent-encoded as sent), always starting with `/`.
 */
function pathAndQuery(request: IRequest, stripPrefix: boolean): string {
  const uri = request.uri;
  if (!stripPrefix && uri.charCodeAt(0) === 0x2f) return uri;
  let path = request.path;
  if (path.charCodeAt(0) !== 0x2f) {
    path = '/';
  } else if (stripPrefix) {
    // `path` is `/seg/seg/…`: drop the first `depth` segments.
    const depth = request.prepath.length;
    let at = 0;
    for (let i = 0; i < depth && at !== -1; i++) at = path.indexOf('/', at + 1);
    path = at === -1 ? '/' : path.slice(at);
  }
  const q = uri.indexOf('?');
  return q === -1 ? path : path + uri.slice(q);
}

/**
 * The absolute URL of `request`: `https:` when the connection is TLS, else
 * `http:`; the authority of an absolute-form target (`GET http://host/p`:
 * RFC 9112 §3.2.2 has the server ignore `Host` then), else the `Host`
 * header, else the server's address (HTTP/1.0 without `Host`); then the
 * path and query (see {@link pathAndQuery}).
 */
export function requestURL(request: IRequest, stripPrefix = false): string {
  const scheme = request.isSecure() ? 'https' : 'http';
  const host = targetAuthority(request.uri) ?? request.requestHeaders.get('host');
  const authority = host !== null && host !== '' ? host : authorityOf(request.getHost());
  return `${scheme}://${authority}${pathAndQuery(request, stripPrefix)}`;
}

/** The request's header fields as web `Headers` (repeated fields appended in order). */
export function webHeaders(request: IRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of request.requestHeaders) headers.append(name, value);
  return headers;
}

/**
 * The underlying source of a request body `ReadableStream`: each `pull`
 * (made by the stream only while its reader waits for data: the stream's
 * high-water mark is 0) reads once from the flow-controlled body, so the
 * channel reads the client's socket only as fast as the handler consumes
 * the body, at most its small buffer (64 KiB) ahead. The pieces are views of
 * the received bytes, not copies. A broken body (the client went away, a
 * malformed chunk, a timeout) errors the stream with the body's failure;
 * cancelling the stream stops the body (the rest of it is dropped).
 */
export class RequestBodySource {
  readonly #body: IRequestBody;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  #closed = false;

  constructor(body: IRequestBody) {
    this.#body = body;
  }

  /** Called by the stream once, when it is made. */
  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
  }

  /** Called by the stream when its reader wants data and its queue is empty: one read. */
  pull(): Promise<void> {
    return this.#body.read().then(this.#onData, this.#onError);
  }

  /** Called by the stream when its consumer cancels it: the rest of the body is dropped. */
  cancel(): void {
    this.#closed = true;
    this.#body.stopProducing();
  }

  // Bound once per body (not per piece).
  readonly #onData = (data: Buffer): void => {
    if (this.#closed) return;
    if (data.length === 0) {
      this.#closed = true;
      this.#controller!.close();
    } else {
      this.#controller!.enqueue(data);
    }
  };

  readonly #onError = (reason: unknown): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#controller!.error(reason);
  };
}

/** Whether a body is known to be empty now (no `Content-Length`, or 0, and nothing received when complete). */
function knownEmpty(body: IRequestBody): boolean {
  return body.length === 0 || (body.complete && body.received === 0);
}

/**
 * The web `Request` for `request` (see the module documentation). `GET` and
 * `HEAD` requests, and requests whose body is known to be empty, get no
 * body (`request.body === null`); others a `ReadableStream` over
 * `request.bodyStream()` (`duplex: 'half'`).
 *
 * @throws HTTPException 501 for a method the fetch API cannot carry
 *   (`CONNECT`, `TRACE`, `TRACK`); 400 when the `Host` header and the
 *   target do not make a valid URL, or the fields are refused by `Headers`.
 */
export function toWebRequest(
  request: IRequest,
  signal: AbortSignal,
  stripPrefix: boolean,
): Request {
  const method = request.method;
  if (UNCARRIED_METHODS.has(method.toUpperCase())) {
    throw new HTTPException(501, `The method ${method} is not supported by this resource.`);
  }
  let url: string;
  let headers: Headers;
  try {
    url = requestURL(request, stripPrefix);
    headers = webHeaders(request);
  } catch (e) {
    throw new HTTPException(400, `Bad request: ${(e as Error).message}`, { cause: e });
  }
  let body: ReadableStream<Uint8Array> | null = null;
  if (method !== 'GET' && method !== 'HEAD') {
    const input = request.bodyStream();
    if (!knownEmpty(input)) {
      body = new ReadableStream<Uint8Array>(new RequestBodySource(input), { highWaterMark: 0 });
    }
  }
  try {
    return new Request(url, {
      method,
      headers,
      body,
      signal,
      // A streamed body: the handler may answer before reading all of it.
      duplex: 'half',
    } as RequestInit);
  } catch (e) {
    throw new HTTPException(400, `Bad request: ${(e as Error).message}`, { cause: e });
  }
}
