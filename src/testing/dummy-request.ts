/**
 * `DummyRequest`: an in-memory {@link IRequest} that records what a resource
 * does to it, and {@link render}, which renders a resource into one and
 * resolves when the response is finished (Twisted's
 * `twisted.web.test.requesthelper.DummyRequest` and `_render`).
 *
 * @example
 * ```ts
 * const request = new DummyRequest({ uri: '/echo', method: 'POST', body: 'hi' });
 * await render(getChildForRequest(root, request), request);
 * assert.equal(request.writtenText(), 'hi');
 * ```
 *
 * @module
 */

import { IPv4Address } from '../reactor/address.js';
import { Deferred, fail, isThenable, succeed } from '../reactor/deferred.js';
import {
  AlreadyCalledError,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TorsionError,
  TransportClosedError,
} from '../reactor/errors.js';
import { Failure } from '../reactor/failure.js';
import type { IAddress, IPullProducer, IPushProducer } from '../reactor/interfaces.js';
import { HTTPException } from '../web/errors.js';
import { authorityHostname, targetAuthority } from '../web/http/authority.js';
import { RequestBody } from '../web/http/body.js';
import type { HeadersInit } from '../web/http/headers.js';
import { Headers, isToken } from '../web/http/headers.js';
import { ContentLengthMismatch, formatCookie } from '../web/http/request.js';
import { checkResponseLength } from '../web/http/response-head.js';
import { statusHasNoBody } from '../web/http/status.js';
import type { CookieOptions, IRequest, IRequestBody, IResource } from '../web/iweb.js';
import { NOT_DONE_YET } from '../web/iweb.js';

const EMPTY = Buffer.alloc(0);

/** The default cap of {@link DummyRequest.body}, as the site's: 10 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Sync `resumeProducing()` calls a pull producer gets in a row before it is taken for a runaway. */
const MAX_PULLS = 1_000_000;

function toBuffer(data: Uint8Array | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
}

/** Decodes one percent-encoded path segment; malformed escapes are kept as they are. */
function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

// ====================================================================== request

/** Options of {@link DummyRequest}. */
export interface DummyRequestOptions {
  /** The method (default `'GET'`). */
  method?: string;
  /**
   * The request-target (default: `/` plus the `postpath` segments,
   * percent-encoded). The postpath is derived from its path unless given.
   */
  uri?: string;
  /** The segments still to traverse (default: from `uri`, decoded). */
  postpath?: string[];
  /** Request headers. */
  headers?: HeadersInit;
  /**
   * The request body, all there at once. Unless a `Content-Length` or
   * `Transfer-Encoding` header is given, `Content-Length` is set to its size.
   */
  body?: Uint8Array | string;
  /**
   * Keep the body open: feed it later with `request.requestBody.push(buffer)`
   * and `.end()` or `.fail(failure)` (a `Content-Length` header is then not
   * added).
   */
  bodyOpen?: boolean;
  /** `'HTTP/1.1'` (default) or `'HTTP/1.0'`. */
  clientproto?: string;
  /** The client's address (default `127.0.0.1:12345`). */
  client?: IAddress;
  /** The server's address (default `127.0.0.1:80`). */
  host?: IAddress;
  /** What `isSecure()` returns (default false). */
  secure?: boolean;
}

/**
 * An {@link IRequest} in memory. It records the response: {@link written}
 * (each body chunk, copied), {@link code}/{@link responseCode},
 * {@link responseHeaders}, {@link finishCount}, the registered
 * {@link producer}, {@link failures}. It follows the real request's rules
 * where a test should notice a mistake: `write` or `finish` after `finish()`
 * throw, a second producer throws, `write` on a HEAD request or a bodiless
 * status records nothing.
 *
 * Producers: a push producer is only recorded (call its
 * `pauseProducing`/`resumeProducing` from the test to simulate a slow
 * client). A pull producer is driven as by a consumer whose buffer drains at
 * once: `resumeProducing()` on registration and again after each `write`,
 * never re-entrantly, until it unregisters or the request finishes.
 *
 * Connection loss: {@link connectionLost} fails `notifyFinish()`, stops the
 * producer and breaks the body off, as a real channel would.
 */
export class DummyRequest implements IRequest {
  readonly method: string;
  readonly uri: string;
  readonly path: string;
  readonly clientproto: string;
  readonly requestHeaders: Headers;
  readonly responseHeaders: Headers = new Headers();
  prepath: string[] = [];
  postpath: string[];

  /**
   * The body: the server's own {@link RequestBody} (with no channel behind
   * it), so readers see exactly the real semantics. The test feeds it with
   * `push(buffer)`, `end()` and `fail(failure)`. `bodyStream()` returns it.
   */
  readonly requestBody: RequestBody;

  /** Body chunks written, in order (copies). */
  readonly written: Buffer[] = [];
  /** Body bytes passed to `write`, including those not recorded (HEAD, bodiless statuses). */
  bytesWritten = 0;
  /** `null` until `setResponseCode` is called (Twisted's `responseCode`). */
  responseCode: number | null = null;
  /** The reason phrase given to `setResponseCode`, or `null`. */
  responseMessage: string | null = null;
  /** How many times `finish()` was called (2 or more means a bug: the second call threw). */
  finishCount = 0;
  /** The registered producer, or `null`. */
  producer: IPushProducer | IPullProducer | null = null;
  /** Whether the registered producer is a push producer (`null` when none). */
  streaming: boolean | null = null;
  /** Failures reported with {@link processingFailed}, in order. */
  readonly failures: Failure[] = [];

  #code = 200;
  #finished = false;
  #startedWriting = false;
  /** The `Content-Length` declared when writing started (`Infinity`: none). */
  #declared = Number.POSITIVE_INFINITY;
  #lost: Failure | null = null;
  #processingFailure: Failure | null = null;
  #finishWaiters: Deferred<void>[] = [];
  #args: Map<string, string[]> | null = null;
  #client: IAddress;
  #host: IAddress;
  #secure: boolean;
  #pulling = false;
  #pullAgain = false;

  /**
   * @param init - the postpath segments (Twisted's `DummyRequest([b'a'])`)
   *   or {@link DummyRequestOptions}.
   * @throws InvalidArgumentError for a method that is not a token or a URI
   *   that does not start with `/` (nor is absolute, nor `*`).
   * @throws InvalidHeaderError for an invalid header in `headers`.
   */
  constructor(init: readonly string[] | DummyRequestOptions = {}) {
    const options: DummyRequestOptions = Array.isArray(init)
      ? { postpath: [...(init as readonly string[])] }
      : (init as DummyRequestOptions);
    const method = options.method ?? 'GET';
    if (!isToken(method)) throw new InvalidArgumentError(`invalid method ${method}`);
    this.method = method;
    let uri = options.uri;
    if (uri === undefined) {
      uri = `/${(options.postpath ?? []).map(encodeURIComponent).join('/')}`;
    } else if (typeof uri !== 'string' || !/^(\/|\*$|[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/.test(uri)) {
      throw new InvalidArgumentError(`invalid request URI ${JSON.stringify(uri)}`);
    }
    this.uri = uri;
    let path = uri;
    const q = path.indexOf('?');
    if (q !== -1) path = path.slice(0, q);
    const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*/.exec(path);
    if (scheme !== null) path = path.slice(scheme[0].length) || '/';
    this.path = path;
    this.postpath =
      options.postpath !== undefined
        ? [...options.postpath]
        : path === '*'
          ? []
          : path.split('/').slice(1).map(decodeSegment);
    this.clientproto = options.clientproto ?? 'HTTP/1.1';
    this.requestHeaders = new Headers(options.headers);
    this.#client = options.client ?? new IPv4Address('TCP', '127.0.0.1', 12345);
    this.#host = options.host ?? new IPv4Address('TCP', '127.0.0.1', 80);
    this.#secure = options.secure ?? false;

    const body = options.body === undefined ? EMPTY : toBuffer(options.body);
    const framed =
      this.requestHeaders.has('content-length') || this.requestHeaders.has('transfer-encoding');
    if (!framed && !options.bodyOpen && body.length > 0) {
      this.requestHeaders.set('Content-Length', String(body.length));
    }
    const cl = this.requestHeaders.get('content-length');
    const length = cl !== null && /^\d+$/.test(cl) ? Number(cl) : null;
    this.requestBody = new RequestBody(null, length, false);
    if (body.length > 0) this.requestBody.push(body);
    if (!options.bodyOpen) this.requestBody.end();
  }

  get code(): number {
    return this.#code;
  }

  get finished(): boolean {
    return this.#finished;
  }

  get startedWriting(): boolean {
    return this.#startedWriting;
  }

  /** The connection-loss reason given to {@link connectionLost}, or `null`. */
  get lost(): Failure | null {
    return this.#lost;
  }

  get args(): ReadonlyMap<string, string[]> {
    if (this.#args === null) {
      const args = new Map<string, string[]>();
      const q = this.uri.indexOf('?');
      if (q !== -1) {
        for (const [name, value] of new URLSearchParams(this.uri.slice(q + 1))) {
          const values = args.get(name);
          if (values === undefined) args.set(name, [value]);
          else values.push(value);
        }
      }
      this.#args = args;
    }
    return this.#args;
  }

  /** The written body, concatenated. */
  writtenBytes(): Buffer {
    return Buffer.concat(this.written);
  }

  /** The written body, concatenated and decoded as UTF-8. */
  writtenText(): string {
    return this.writtenBytes().toString('utf8');
  }

  getHeader(name: string): string | null {
    return this.requestHeaders.get(name);
  }

  /** @throws InvalidHeaderError for a name that is not a token or a value with CR, LF, NUL… */
  setHeader(name: string, value: string): void {
    // As the server's Request: a malformed Content-Length is refused at once.
    if (name.length === 14 && name.toLowerCase() === 'content-length') checkResponseLength(value);
    this.responseHeaders.set(name, value);
  }

  /** @throws InvalidArgumentError for a code that is not an integer from 100 to 999. */
  setResponseCode(code: number, message?: string): void {
    if (!Number.isInteger(code) || code < 100 || code > 999) {
      throw new InvalidArgumentError(`invalid status code ${String(code)}`);
    }
    this.#code = code;
    this.responseCode = code;
    this.responseMessage = message ?? null;
  }

  /** @throws InvalidArgumentError for a name that is not a token or a value outside cookie-octets. */
  addCookie(name: string, value: string, options: CookieOptions = {}): void {
    this.responseHeaders.add('Set-Cookie', formatCookie(name, value, options));
  }

  getCookie(name: string): string | null {
    for (const header of this.requestHeaders.getAll('cookie')) {
      for (const pair of header.split(';')) {
        const eq = pair.indexOf('=');
        if (eq === -1) continue;
        if (pair.slice(0, eq).trim() === name) {
          let v = pair.slice(eq + 1).trim();
          if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
          return v;
        }
      }
    }
    return null;
  }

  redirect(url: string, code = 302): void {
    this.setResponseCode(code);
    this.setHeader('Location', url);
  }

  /**
   * Records `data` (copied) in {@link written}, unless the request is HEAD
   * or the status has no body (then only counted). Empty data is ignored.
   * After a connection loss, writes are dropped.
   * @throws TransportClosedError after `finish()`.
   * @throws ContentLengthMismatch (as the real request) if the bytes would
   *   exceed the `Content-Length` set before the first write (nothing is
   *   recorded).
   */
  write(data: Uint8Array | string): void {
    if (this.#finished) throw new TransportClosedError('write() after finish()');
    if (this.#lost !== null) return;
    const b = toBuffer(data);
    const counted = this.method === 'HEAD' || statusHasNoBody(this.#code);
    if (!this.#startedWriting) {
      this.#startedWriting = true;
      const cl = this.responseHeaders.get('content-length');
      if (!counted && cl !== null && /^\d+$/.test(cl)) this.#declared = Number(cl);
    }
    if (b.length === 0) return;
    if (this.bytesWritten + b.length > this.#declared) {
      throw new ContentLengthMismatch(
        `write() of ${b.length} bytes would exceed the declared Content-Length ${this.#declared} (${this.bytesWritten} written)`,
      );
    }
    this.bytesWritten += b.length;
    if (!counted) this.written.push(b);
    if (this.streaming === false) this.#pull();
  }

  /**
   * Ends the response: unregisters a producer still registered, then fires
   * the `notifyFinish()` Deferreds. After a connection loss it does nothing
   * (but counts).
   * @throws AlreadyCalledError the second time (it still counts it).
   */
  finish(): void {
    this.finishCount++;
    if (this.#lost !== null) return;
    if (this.#finished) throw new AlreadyCalledError('finish() called twice');
    this.#finished = true;
    this.#startedWriting = true;
    this.unregisterProducer();
    const waiters = this.#finishWaiters;
    this.#finishWaiters = [];
    for (const d of waiters) d.callback(undefined);
  }

  /**
   * Registers the response's producer (see the class documentation). After
   * `finish()` or a connection loss, the producer is stopped at once instead.
   * @throws ProducerAlreadyRegistered if one is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#finished || this.#lost !== null) {
      producer.stopProducing();
      return;
    }
    this.producer = producer;
    this.streaming = streaming;
    if (!streaming) this.#pull();
  }

  unregisterProducer(): void {
    this.producer = null;
    this.streaming = null;
  }

  /** Drives a pull producer: one `resumeProducing()`, again while it writes synchronously. */
  #pull(): void {
    if (this.#pulling) {
      this.#pullAgain = true;
      return;
    }
    const producer = this.producer!;
    this.#pulling = true;
    try {
      let n = 0;
      do {
        this.#pullAgain = false;
        if (++n > MAX_PULLS) {
          throw new TorsionError(
            `pull producer still writing after ${MAX_PULLS} resumeProducing() calls`,
            'TORSION_ERR_RUNAWAY_PRODUCER',
          );
        }
        producer.resumeProducing();
      } while (
        this.#pullAgain &&
        this.producer === producer &&
        !this.#finished &&
        this.#lost === null
      );
    } finally {
      this.#pulling = false;
    }
  }

  notifyFinish(): Deferred<void> {
    if (this.#finished) return succeed(undefined);
    if (this.#lost !== null) return fail(this.#lost);
    if (this.#processingFailure !== null) return fail(this.#processingFailure);
    const d = new Deferred<void>();
    this.#finishWaiters.push(d);
    return d;
  }

  bodyStream(): IRequestBody {
    return this.requestBody;
  }

  /**
   * Collects the body (`RequestBody.collect`). Fails with a 413 `HTTPError`
   * (`TORSION_ERR_HTTP_BODY_TOO_LARGE`) past `maxBytes` (default 10 MiB), at
   * once when `Content-Length` says so; with the body's failure if it broke
   * off; with InvalidArgumentError if the body is already being read.
   */
  body(maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<Buffer> {
    return this.requestBody.collect(maxBytes);
  }

  getClientAddress(): IAddress {
    return this.#client;
  }

  getHost(): IAddress {
    return this.#host;
  }

  isSecure(): boolean {
    return this.#secure;
  }

  /** The Host header without its port (Twisted's rule), else `'dummy'`. */
  getRequestHostname(): string {
    // The same rule as the server's Request: an absolute-form target's
    // authority wins over Host (RFC 9112 §3.2.2); IPv6 without brackets.
    const target = targetAuthority(this.uri);
    const authority = target !== null && target !== '' ? target : this.requestHeaders.get('host');
    if (authority !== null && authority !== '') return authorityHostname(authority);
    return 'dummy';
  }

  /**
   * Simulates the client going away: pending and later `notifyFinish()`
   * Deferreds fail with `reason` (default {@link ConnectionLost}), the
   * registered producer gets `stopProducing()`, and the body breaks off.
   * Does nothing after `finish()` or a first loss.
   */
  connectionLost(reason: unknown = new ConnectionLost()): void {
    if (this.#finished || this.#lost !== null) return;
    const failure = Failure.from(reason);
    this.#lost = failure;
    this.requestBody.fail(failure);
    const producer = this.producer;
    if (producer !== null) {
      this.producer = null;
      this.streaming = null;
      producer.stopProducing();
    }
    const waiters = this.#finishWaiters;
    this.#finishWaiters = [];
    for (const d of waiters) d.errback(failure);
  }

  /**
   * Rendering failed with `reason` (what the site does for a 500): the
   * failure is recorded in {@link failures}, the code becomes 500 if the
   * head was not sent, and pending and later `notifyFinish()` Deferreds fail
   * with it (as Twisted's `DummyRequest.processingFailed`).
   */
  processingFailed(reason: unknown): void {
    const failure = Failure.from(reason);
    this.failures.push(failure);
    if (!this.#startedWriting) this.setResponseCode(500);
    if (this.#processingFailure === null) this.#processingFailure = failure;
    const waiters = this.#finishWaiters;
    this.#finishWaiters = [];
    for (const d of waiters) d.errback(failure);
  }
}

// ====================================================================== render

/**
 * Renders `resource` into `request` as the site does, and resolves once the
 * response is finished (Twisted's test `_render`):
 *
 * - bytes or a string (or a Promise/Deferred of them): `Content-Length` is
 *   set to the body's length, replacing one the resource set (unless the
 *   head was sent or the status has no body; for HEAD only if the body is
 *   not empty), the body written and the request finished;
 * - {@link NOT_DONE_YET} (or a Promise of it): waits for `finish()`;
 *   rejects if `connectionLost`/`processingFailed` comes first;
 * - a throw or rejection with an {@link HTTPException} (or another 3xx–5xx
 *   `HTTPError`), before the head was sent: the response headers set so
 *   far are dropped, the exception's status, headers and body written and
 *   the request finished;
 * - any other throw or rejection, or a result of another type:
 *   `request.processingFailed(error)`, then rejects with the error.
 *
 * It renders `resource` itself: pass `getChildForRequest(root, request)` to
 * go through a tree.
 */
export async function render(resource: IResource, request: DummyRequest): Promise<void> {
  let result: unknown;
  try {
    result = resource.render(request);
    if (isThenable(result)) result = await result;
    if (result !== NOT_DONE_YET && typeof result !== 'string' && !(result instanceof Uint8Array)) {
      throw new InvalidArgumentError(
        `render() returned ${result === null ? 'null' : typeof result}: expected bytes, a string, NOT_DONE_YET or a Promise of one`,
      );
    }
  } catch (error) {
    const exception = HTTPException.from(error);
    if (exception !== null && !request.startedWriting && !request.finished) {
      // As the site: the headers the resource set are dropped.
      request.responseHeaders.clear();
      writeBody(request, exception.render(request));
      return;
    }
    request.processingFailed(error);
    throw error;
  }
  if (result === NOT_DONE_YET) {
    if (!request.finished) await request.notifyFinish();
    return;
  }
  writeBody(request, result as Uint8Array | string);
}

/** What the site does with bytes from `render` (`Request.respond`). */
function writeBody(request: DummyRequest, body: Uint8Array | string): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  if (!request.startedWriting) {
    // The body's length replaces a Content-Length the resource set; for
    // HEAD, a non-empty body sets it (the length a GET would have).
    if (request.method === 'HEAD') {
      if (bytes.length > 0) request.setHeader('Content-Length', String(bytes.length));
    } else if (!statusHasNoBody(request.code)) {
      request.setHeader('Content-Length', String(bytes.length));
    }
  }
  if (bytes.length > 0) request.write(bytes);
  request.finish();
}

/** The server's Set-Cookie formatter, re-exported for users' tests. */
export { formatCookie };
