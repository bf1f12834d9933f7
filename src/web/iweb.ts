/**
 * The contracts of the web layer (Twisted's `twisted.web.iweb`): what a
 * resource sees of a request, how a request body is read with flow control,
 * and what renders a response. Contracts only.
 *
 * @module
 */

import type { Deferred } from '../reactor/deferred.js';
import type { Failure } from '../reactor/failure.js';
import type { IAddress, IPullProducer, IPushProducer } from '../reactor/interfaces.js';
import type { Headers } from './http/headers.js';

/**
 * Receives a request body pushed by {@link IRequestBody.deliverTo}. Calls come
 * in order: `dataReceived` zero or more times, then exactly one of
 * `bodyEnded` or `bodyFailed`.
 */
export interface IBodySink {
  /** A piece of the body (never empty). The Buffer belongs to the sink. */
  dataReceived(data: Buffer): void;
  /** The whole body was delivered. */
  bodyEnded(): void;
  /**
   * The body broke off: the client went away (`ConnectionLost`), the body
   * was malformed, or it timed out. Never a silent early end.
   */
  bodyFailed(reason: Failure): void;
}

/**
 * A request body: a flow-controlled input. The channel reads the socket only
 * while the body's reader wants data (a pending `read`, or a sink that is not
 * paused) and at most a small buffer (64 KiB) ahead of it; a reader that
 * stops reading stops the client's upload (TCP backpressure).
 *
 * Read it in exactly one way: `read()` calls (one pending at a time), async
 * iteration, `deliverTo(sink)` (push, with `pauseProducing`/`resumeProducing`
 * on this object), or `request.body()` for the whole of it. An `Expect:
 * 100-continue` request gets its `100 Continue` the first time any of these
 * asks for data.
 */
export interface IRequestBody extends IPushProducer, AsyncIterable<Buffer> {
  /**
   * The next piece of the body: at most `maxBytes` (default: whatever is
   * buffered or arrives next), or an empty Buffer at the end (every later
   * call resolves empty too). Rejects with the body's failure (e.g.
   * `ConnectionLost`) if it broke off.
   * @throws (rejects with) InvalidArgumentError if a read is already pending,
   *   or if the body is being delivered to a sink.
   */
  read(maxBytes?: number): Promise<Buffer>;

  /**
   * Pushes the rest of the body into `sink`, starting now, honouring
   * `pauseProducing()`/`resumeProducing()` of this object.
   * @throws InvalidArgumentError if the body is already being read.
   */
  deliverTo(sink: IBodySink): void;

  /** `Content-Length` when the client sent one, else `null` (chunked or empty). */
  readonly length: number | null;
  /** Bytes of body received from the client so far. */
  readonly received: number;
  /** `true` once the whole body has been received from the client. */
  readonly complete: boolean;
}

/** One `Set-Cookie` to send (RFC 6265 attributes). */
export interface CookieOptions {
  expires?: Date;
  maxAge?: number;
  domain?: string;
  path?: string;
  secure?: boolean;
  httpOnly?: boolean;
  sameSite?: 'Strict' | 'Lax' | 'None';
}

/**
 * One HTTP request and its response, as a resource sees it (Twisted's
 * `IRequest`). The response is built with `setResponseCode`/`setHeader`, then
 * `write` (the head goes out with the first write) and exactly one `finish`.
 */
export interface IRequest {
  /** The method, e.g. `'GET'`. */
  readonly method: string;
  /** The request-target as sent, e.g. `'/a/b?x=1'`. */
  readonly uri: string;
  /** The path part of `uri` (before `?`), still percent-encoded. */
  readonly path: string;
  /** The query arguments: each name to its values in order (parsed on first use). */
  readonly args: ReadonlyMap<string, string[]>;
  /** `'HTTP/1.0'` or `'HTTP/1.1'`. */
  readonly clientproto: string;
  /** The request's header fields. */
  readonly requestHeaders: Headers;
  /** The response's header fields, until the head is sent. */
  readonly responseHeaders: Headers;
  /** Path segments already traversed to reach the rendering resource (decoded). */
  prepath: string[];
  /** Path segments still to traverse (decoded). */
  postpath: string[];
  /** The response status code (default 200). */
  readonly code: number;
  /** `true` once `finish()` was called. */
  readonly finished: boolean;
  /** `true` once the response head was sent. */
  readonly startedWriting: boolean;

  /** The first value of a request header, or `null`. */
  getHeader(name: string): string | null;
  /**
   * Sets a response header (replacing earlier values).
   * @throws InvalidArgumentError on CR, LF or NUL (response splitting).
   */
  setHeader(name: string, value: string): void;
  /** Sets the status code and optionally the reason phrase. */
  setResponseCode(code: number, message?: string): void;
  /** Adds a `Set-Cookie` response header. */
  addCookie(name: string, value: string, options?: CookieOptions): void;
  /** The value of a request cookie, or `null`. */
  getCookie(name: string): string | null;
  /** Sets 302 (or `code`) and `Location: url`. The caller still calls `finish()`. */
  redirect(url: string, code?: number): void;

  /**
   * Writes part of the response body (strings as UTF-8); the head goes out
   * first. Ignored for HEAD requests and bodiless statuses (but counted).
   * @throws TransportClosedError after `finish()`.
   */
  write(data: Uint8Array | string): void;
  /**
   * Ends the response. Calling it twice throws; after the connection was
   * lost it does nothing.
   */
  finish(): void;
  /**
   * The response's producer: paused while the client reads slowly, as for
   * any consumer (streaming), or asked for more on each drain (pull).
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void;
  unregisterProducer(): void;
  /**
   * Fires when the response has been finished and handed to the connection;
   * fails with `ConnectionLost` if the connection is lost first.
   */
  notifyFinish(): Deferred<void>;

  /** The request body, flow-controlled. */
  bodyStream(): IRequestBody;
  /**
   * The whole body, collected. Fails with a 413 `HTTPError` past
   * `maxBytes` (default: the site's limit, 10 MiB).
   */
  body(maxBytes?: number): Promise<Buffer>;

  /** The client's address. */
  getClientAddress(): IAddress;
  /** The server side's address. */
  getHost(): IAddress;
  /** Whether the connection is TLS. */
  isSecure(): boolean;
  /**
   * The host name the request was made to, without port: an absolute-form
   * target's authority, else the Host header (IPv6 without brackets).
   */
  getRequestHostname(): string;
}

/** A resource's answer to `render`: bytes now, later, or "I'll finish the request myself". */
export type RenderResult =
  | Uint8Array
  | string
  | typeof NOT_DONE_YET
  | PromiseLike<Uint8Array | string | typeof NOT_DONE_YET>;

/**
 * Returned by `render` when the resource will `write`/`finish` the request
 * itself (the one value in this module: the contract needs its type).
 */
export const NOT_DONE_YET: unique symbol = Symbol('NOT_DONE_YET');

/**
 * A node of the resource tree (Twisted's `IResource`). The site finds the
 * resource for a request by walking `getChildWithDefault` along the request's
 * `postpath` (moving each segment to `prepath`) until a leaf, or until the path
 * is used up, then calls `render`.
 */
export interface IResource {
  /** A leaf renders every path below it itself: traversal stops here. */
  readonly isLeaf: boolean;
  /**
   * The child for the path segment `name` (decoded; `''` for a trailing
   * slash): a registered child if there is one, else what `getChild` makes
   * (by default a 404 resource).
   */
  getChildWithDefault(name: string, request: IRequest): IResource;
  /** Registers `child` under the segment `name`. */
  putChild(name: string, child: IResource): void;
  /**
   * Renders the response: the body as bytes (the site sets `Content-Length`
   * and finishes), a Promise/Deferred of them, or {@link NOT_DONE_YET} when
   * the resource writes and finishes the request itself. A throw or a
   * rejected promise gives a 500.
   */
  render(request: IRequest): RenderResult;
}
