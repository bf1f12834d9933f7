/**
 * {@link Request}: one HTTP exchange on an {@link HTTPChannel}, as a resource
 * sees it (Twisted's `http.Request` + `server.Request`, implementing
 * {@link IRequest}).
 *
 * The request builds its response: the head (status line cached per code,
 * `Date` and `Server` cached per second by the channel, the response headers,
 * the framing fields) is one string written with the first body bytes; body
 * bytes go to the channel without being copied (chunked framing is a size
 * line and a CRLF around them). Everything about the connection (pipelining,
 * keep-alive, flow control, timeouts) is the channel's.
 *
 * Lazily computed (Hono's `??=`): `args`, cookies, the response headers and
 * the body object, so a request that never looks at them never pays.
 *
 * @module
 */

import { isAscii } from 'node:buffer';
import { Deferred, fail, succeed } from '../../reactor/deferred.js';
import {
  AlreadyCalledError,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TorsionError,
  TransportClosedError,
} from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type { IAddress, IPullProducer, IPushProducer } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import type { CookieOptions, IRequest } from '../iweb.js';
import type { Session } from '../site.js';
import { RequestBody } from './body.js';
import type { HTTPChannel } from './channel.js';
import { CRLF, encodeLastChunk, LAST_CHUNK } from './chunked.js';
import { Headers, isToken } from './headers.js';
import type { RequestHead } from './parser.js';
import { statusHasNoBody, statusLineText } from './status.js';

/** The response declared a `Content-Length` and `write` would go past it. */
export class ContentLengthMismatch extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_HTTP_CONTENT_LENGTH_MISMATCH');
  }
}

const EMPTY_ARGS: ReadonlyMap<string, string[]> = new Map();
/** Whether `s` has a character above U+007F (its UTF-8 form is then longer than it). */
function nonAscii(s: string): boolean {
  return Buffer.byteLength(s, 'utf8') !== s.length;
}
const DIGITS = /^\d{1,15}$/;

/** How the response body is framed on the wire. */
const F_NONE = 0; // no body (HEAD, 1xx, 204, 304)
const F_LENGTH = 1; // Content-Length
const F_CHUNKED = 2; // Transfer-Encoding: chunked
const F_CLOSE = 3; // until the connection closes (HTTP/1.0, length unknown)

// ====================================================================== helpers

/**
 * What one pass over the response headers found (scratch space: filled and
 * read within one `#writeHead`, which never re-enters).
 */
const FOUND = {
  length: null as string | null,
  lengths: 0,
  te: false,
  connection: null as string | null,
  date: false,
  server: false,
};

/** Whether `name` is `lower` in any case (`lower` is lower-case, same length). */
function named(name: string, lower: string): boolean {
  return name === lower || name.toLowerCase() === lower;
}

/** `Headers.forEach` callback noting the fields in {@link FOUND} (only names of their lengths are compared). */
function noteField(value: string, name: string): void {
  const found = FOUND;
  switch (name.length) {
    case 4:
      if (named(name, 'date')) found.date = true;
      break;
    case 6:
      if (named(name, 'server')) found.server = true;
      break;
    case 10:
      if (named(name, 'connection')) {
        found.connection = found.connection === null ? value : `${found.connection}, ${value}`;
      }
      break;
    case 14:
      if (named(name, 'content-length')) {
        found.length = value;
        found.lengths++;
      }
      break;
    case 17:
      if (named(name, 'transfer-encoding')) found.te = true;
      break;
  }
}

/** Bodies up to this size that are ASCII are sent with their head as one string. */
const SMALL_BODY = 1024;

type Latin1Readable = Buffer & { latin1Slice(start: number, end: number): string };

/** `data` (ASCII) as a string. */
function asLatin1(data: Uint8Array, n: number): string {
  const buf = (
    Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, n)
  ) as Latin1Readable;
  return buf.latin1Slice(0, n);
}

function byteLength(data: Uint8Array | string): number {
  return typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
}

/**
 * Percent-decodes `s` leniently, as `application/x-www-form-urlencoded`
 * and Python's `unquote` do: valid escapes become bytes (decoded as UTF-8,
 * invalid sequences as U+FFFD), anything else stays as it is.
 */
function decodeLenient(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = s.indexOf('%'); i !== -1; i = s.indexOf('%', i + 1)) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) continue;
      parts.push(Buffer.from(s.slice(start, i), 'utf8'), Buffer.of(Number.parseInt(hex, 16)));
      start = i + 3;
      i += 2;
    }
    parts.push(Buffer.from(s.slice(start), 'utf8'));
    return Buffer.concat(parts).toString('utf8');
  }
}

function decodeQueryPart(s: string): string {
  if (s.includes('+')) s = s.replaceAll('+', ' ');
  return s.includes('%') ? decodeLenient(s) : s;
}

/**
 * Parses a query string (`a=1&b=x+y&a=2`, without `?`) into each name's
 * values in order: `+` is a space, escapes are decoded leniently, a field
 * without `=` has the value `''`, empty fields are skipped.
 */
export function parseQuery(query: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (query === '') return out;
  for (const field of query.split('&')) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const name = decodeQueryPart(eq === -1 ? field : field.slice(0, eq));
    const value = eq === -1 ? '' : decodeQueryPart(field.slice(eq + 1));
    const values = out.get(name);
    if (values === undefined) out.set(name, [value]);
    else values.push(value);
  }
  return out;
}

/**
 * The decoded segments of a path after its first `/` (Twisted's `postpath`):
 * `/` → `['']`, `/a/b%20c/` → `['a', 'b c', '']`. Returns `null` when a
 * segment has an escape that is not valid percent-encoded UTF-8 (the site
 * answers 400). `'*'` and other paths not starting with `/` give `[]`.
 */
export function pathSegments(path: string): string[] | null {
  if (path.charCodeAt(0) !== 0x2f) return [];
  if (path.length === 1) return [''];
  const segments = path.slice(1).split('/');
  if (!path.includes('%')) return segments;
  try {
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      if (s.includes('%')) segments[i] = decodeURIComponent(s);
    }
  } catch {
    return null;
  }
  return segments;
}

// RFC 6265 cookie-octet: visible ASCII but DQUOTE, comma, semicolon and backslash.
const COOKIE_VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/;
const COOKIE_ATTRIBUTE = /^[\x20-\x3a\x3c-\x7e]*$/;

/**
 * A `Set-Cookie` field value (RFC 6265 §4.1).
 * @throws InvalidArgumentError for a name that is not a token, a value
 *   outside cookie-octets, an attribute with `;` or a control character, a
 *   non-integer `maxAge`, an invalid date or `sameSite`.
 */
export function formatCookie(name: string, value: string, options: CookieOptions = {}): string {
  if (typeof name !== 'string' || !isToken(name)) {
    throw new InvalidArgumentError(`invalid cookie name ${JSON.stringify(name)}`);
  }
  if (typeof value !== 'string' || !COOKIE_VALUE.test(value)) {
    throw new InvalidArgumentError(`invalid cookie value ${JSON.stringify(value)}`);
  }
  let s = `${name}=${value}`;
  const { expires, maxAge, domain, path, secure, httpOnly, sameSite } = options;
  if (expires !== undefined) {
    if (!(expires instanceof Date) || Number.isNaN(expires.getTime())) {
      throw new InvalidArgumentError('cookie expires must be a valid Date');
    }
    s += `; Expires=${expires.toUTCString()}`;
  }
  if (maxAge !== undefined) {
    if (!Number.isSafeInteger(maxAge)) throw new InvalidArgumentError('cookie maxAge: an integer');
    s += `; Max-Age=${maxAge}`;
  }
  if (domain !== undefined) {
    if (typeof domain !== 'string' || !COOKIE_ATTRIBUTE.test(domain)) {
      throw new InvalidArgumentError(`invalid cookie domain ${JSON.stringify(domain)}`);
    }
    s += `; Domain=${domain}`;
  }
  if (path !== undefined) {
    if (typeof path !== 'string' || !COOKIE_ATTRIBUTE.test(path)) {
      throw new InvalidArgumentError(`invalid cookie path ${JSON.stringify(path)}`);
    }
    s += `; Path=${path}`;
  }
  if (secure) s += '; Secure';
  if (httpOnly) s += '; HttpOnly';
  if (sameSite !== undefined) {
    if (sameSite !== 'Strict' && sameSite !== 'Lax' && sameSite !== 'None') {
      throw new InvalidArgumentError(`invalid cookie sameSite ${String(sameSite)}`);
    }
    s += `; SameSite=${sameSite}`;
  }
  return s;
}

/** Parses `Cookie` header values (RFC 6265 §5.4): the first value of each name wins. */
function parseCookies(values: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const header of values) {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1) continue;
      const name = pair.slice(0, eq).trim();
      if (name === '' || out.has(name)) continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.charCodeAt(0) === 0x22 && value.endsWith('"')) {
        value = value.slice(1, -1);
      }
      out.set(name, value);
    }
  }
  return out;
}

/** The path part of an absolute-form target `scheme://authority/path?query`. */
function absolutePath(target: string): string {
  const start = target.indexOf('://') + 3;
  let end = target.length;
  const q = target.indexOf('?', start);
  if (q !== -1) end = q;
  const slash = target.indexOf('/', start);
  return slash === -1 || slash > end ? '/' : target.slice(slash, end);
}

// ====================================================================== Request

/**
 * One request and its response on an {@link HTTPChannel} (see the module
 * documentation). Made by the channel when the request head is complete;
 * the channel dispatches it (calls its site's `process`) once every earlier
 * response on the connection has finished.
 *
 * Response rules, in order of the calls a resource makes:
 * - `setResponseCode`/`setHeader`/`addCookie` before the first `write`
 *   (later changes do not reach the wire);
 * - `write(data)`: the head goes out with the first bytes. Framing: the
 *   `Content-Length` set by the resource (or by the site for rendered
 *   bytes), else chunked on HTTP/1.1, else the end of the connection
 *   (HTTP/1.0). A `Transfer-Encoding` or `Connection` set by the resource is
 *   replaced by the channel's own (`Connection: close` from the resource is
 *   honoured). Bytes are counted but not sent for HEAD and for 1xx, 204 and
 *   304 responses. A HEAD response's head waits for `finish()`, so its
 *   `Content-Length` is what a GET would have sent when the resource wrote
 *   the body (or rendered it) without declaring one.
 * - `finish()`: the end of the body (the last chunk, with
 *   {@link responseTrailers} if any); a response shorter than its declared
 *   `Content-Length` closes the connection after it.
 */
export class Request implements IRequest {
  /** The connection this request came on. */
  readonly channel: HTTPChannel;
  /** The method, e.g. `'GET'` (case-sensitive, as sent). */
  readonly method: string;
  /** The request-target as sent, e.g. `'/a/b?x=1'`. */
  readonly uri: string;
  /** The path part of `uri`, still percent-encoded (for an absolute-form target, its path). */
  readonly path: string;
  /** `'HTTP/1.0'` or `'HTTP/1.1'` (HTTP/1.2–1.9 are processed as 1.1). */
  readonly clientproto: 'HTTP/1.0' | 'HTTP/1.1';
  /** The request's header fields. */
  readonly requestHeaders: Headers;
  /** The parsed head (framing details: `keepAlive`, `expectContinue`, `upgrade`…). */
  readonly head: RequestHead;
  /** Path segments already traversed (set by the site). */
  prepath: string[] = [];
  /** Path segments still to traverse (set by the site from {@link path}). */
  postpath: string[] = [];

  #query: string;
  #args: Map<string, string[]> | null = null;
  #cookies: Map<string, string> | null = null;
  #responseHeaders: Headers | null = null;
  #trailers: Headers | null = null;
  #body: RequestBody | null = null;
  #session: Session | null = null;

  #code = 200;
  #message: string | undefined = undefined;
  #startedWriting = false;
  #finished = false;
  #lost = false;
  #framing = F_NONE;
  #declared = -1; // the Content-Length sent, or -1
  #sent = 0; // body bytes passed to write (sent or, for bodiless responses, counted)
  #persistent = true;
  #continueSent = false;
  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  #waiters: Deferred<void>[] | null = null;

  /**
   * Made by the channel (not by users).
   * @param body - the request's body, or `null` when the request has none
   *   (an empty, complete body is then made on first use).
   */
  constructor(channel: HTTPChannel, head: RequestHead, body: RequestBody | null) {
    this.channel = channel;
    this.head = head;
    this.method = head.method;
    const target = head.target;
    this.uri = target;
    this.clientproto = head.version === '1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
    this.requestHeaders = head.headers;
    this.#body = body;
    const q = target.indexOf('?');
    this.#query = q === -1 ? '' : target.slice(q + 1);
    if (head.targetForm === 'absolute') this.path = absolutePath(target);
    else this.path = q === -1 ? target : target.slice(0, q);
  }

  // ------------------------------------------------------------------ request side

  /** The query arguments: each name to its values in order (parsed on first use; `+` is a space). */
  get args(): ReadonlyMap<string, string[]> {
    if (this.#query === '') return EMPTY_ARGS;
    this.#args ??= parseQuery(this.#query);
    return this.#args;
  }

  /** The first value of a request header (several lines joined with `", "`), or `null`. */
  getHeader(name: string): string | null {
    return this.requestHeaders.get(name);
  }

  /** The value of a request cookie (RFC 6265; parsed on first use), or `null`. */
  getCookie(name: string): string | null {
    this.#cookies ??= parseCookies(this.requestHeaders.getAll('cookie'));
    return this.#cookies.get(name) ?? null;
  }

  /** The request body, flow-controlled (see {@link RequestBody}). */
  bodyStream(): RequestBody {
    this.#body ??= new RequestBody(null, null, true);
    return this.#body;
  }

  /**
   * The whole body, collected. Fails with a 413 `HTTPError` past `maxBytes`
   * (default: the site's `maxBodySize`, 10 MiB), at once when the
   * `Content-Length` says so; with `ConnectionLost` if the client goes away;
   * with InvalidArgumentError if the body is already being read. Calling it
   * again returns the same result.
   */
  body(maxBytes?: number): Promise<Buffer> {
    return this.bodyStream().collect(maxBytes ?? this.channel.maxBodySize);
  }

  /** The client's address (the transport's peer). */
  getClientAddress(): IAddress {
    return this.channel.transport.getPeer();
  }

  /** The server side's address. */
  getHost(): IAddress {
    return this.channel.transport.getHost();
  }

  /** Whether the connection is TLS (see {@link HTTPChannel.secure}). */
  isSecure(): boolean {
    return this.channel.secure;
  }

  /**
   * The host the request was made to: the `Host` header without its port
   * (`[v6]` literals keep their brackets), else the server's own address.
   */
  getRequestHostname(): string {
    const host = this.requestHeaders.get('host');
    if (host !== null && host !== '') {
      if (host.charCodeAt(0) === 0x5b) {
        const close = host.indexOf(']');
        return close === -1 ? host : host.slice(0, close + 1);
      }
      const colon = host.indexOf(':');
      return colon === -1 ? host : host.slice(0, colon);
    }
    const addr = this.getHost() as IAddress & { host?: string };
    return addr.host ?? '';
  }

  /**
   * The session of this client (Twisted's `getSession`): the one named by
   * the `TORSION_SESSION` cookie (`TORSION_SECURE_SESSION` over TLS) if the
   * site still has it (it is touched), else a new one, whose cookie is
   * added to the response (`Path=/; HttpOnly; SameSite=Lax`, and `Secure`
   * over TLS). The same session for every call on this request.
   * @throws InvalidArgumentError when the channel has no site.
   */
  getSession(): Session {
    if (this.#session !== null) {
      this.#session.touch();
      return this.#session;
    }
    const site = this.channel.site;
    if (site === null) throw new InvalidArgumentError('getSession(): the channel has no site');
    const secure = this.isSecure();
    const cookieName = secure ? 'TORSION_SECURE_SESSION' : 'TORSION_SESSION';
    const uid = this.getCookie(cookieName);
    let session = uid === null ? null : site.getSession(uid);
    if (session !== null) {
      session.touch();
    } else {
      session = site.makeSession();
      this.addCookie(cookieName, session.uid, {
        path: '/',
        httpOnly: true,
        sameSite: 'Lax',
        secure,
      });
    }
    this.#session = session;
    return session;
  }

  // ------------------------------------------------------------------ response side

  /** The response's header fields (made on first use). */
  get responseHeaders(): Headers {
    this.#responseHeaders ??= new Headers();
    return this.#responseHeaders;
  }

  /** Trailer fields sent after a chunked response body (ignored for other framings). */
  get responseTrailers(): Headers {
    this.#trailers ??= new Headers();
    return this.#trailers;
  }

  /** The response status code (default 200). */
  get code(): number {
    return this.#code;
  }

  /** The reason phrase given to `setResponseCode`, or `undefined` (the registered one). */
  get codeMessage(): string | undefined {
    return this.#message;
  }

  /** `true` once `finish()` was called. */
  get finished(): boolean {
    return this.#finished;
  }

  /** `true` once the response head was sent (or, for HEAD, once `finish()` sent it). */
  get startedWriting(): boolean {
    return this.#startedWriting;
  }

  /** Body bytes given to `write` (sent, or counted for bodiless responses). */
  get sentLength(): number {
    return this.#sent;
  }

  /** `true` once the connection was lost before the response finished. */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Whether the connection may carry another request after this response:
   * decided when the head is written (`false` for `Connection: close` either
   * way, an HTTP/1.0 close-delimited body, an unread `100-continue` body, a
   * closing channel), and cleared if the response ends short of its length.
   */
  get persistent(): boolean {
    return this.#persistent;
  }

  /** Whether `100 Continue` was sent for this request. */
  get continueSent(): boolean {
    return this.#continueSent;
  }

  /**
   * Sets the status code and optionally the reason phrase. Ignored once the
   * head was sent.
   * @throws InvalidArgumentError for a code that is not an integer from 100 to 999.
   * @throws InvalidHeaderError for a reason phrase with CR, LF or control characters.
   */
  setResponseCode(code: number, message?: string): void {
    statusLineText(code, message); // validates
    if (this.#startedWriting) return;
    this.#code = code;
    this.#message = message;
  }

  /**
   * Sets a response header, replacing earlier values.
   * @throws InvalidHeaderError (a TorsionError) for a name that is not a
   *   token or a value with CR, LF, NUL or other control characters.
   */
  setHeader(name: string, value: string): void {
    this.responseHeaders.set(name, value);
  }

  /**
   * Adds a `Set-Cookie` response header.
   * @throws InvalidArgumentError for an invalid name, value or attribute.
   */
  addCookie(name: string, value: string, options?: CookieOptions): void {
    this.responseHeaders.add('Set-Cookie', formatCookie(name, value, options));
  }

  /**
   * Sets the code (302 by default) and `Location: url`. The caller still
   * finishes the request.
   * @throws InvalidHeaderError for a URL that cannot be a header value.
   */
  redirect(url: string, code = 302): void {
    this.setResponseCode(code);
    this.setHeader('Location', url);
  }

  /**
   * Writes part of the response body (strings as UTF-8); the head goes out
   * with the first call (an empty write sends just the head). Bytes are
   * counted but not sent for HEAD requests and bodiless statuses.
   * @throws TransportClosedError after `finish()` (checked first).
   * @throws ContentLengthMismatch if the bytes would exceed the declared
   *   `Content-Length` (nothing is written).
   * Does nothing after the connection was lost.
   */
  write(data: Uint8Array | string): void {
    if (this.#finished) throw new TransportClosedError('Request.write() after finish()');
    if (this.#lost) return;
    const n = byteLength(data);
    if (!this.#startedWriting) {
      if (this.method === 'HEAD') {
        // The head waits for finish(): it then knows the length a GET would have.
        this.#sent += n;
        this.#pullAgain();
        return;
      }
      this.#writeHead(-1, n === 0 ? null : data, n);
      return;
    }
    if (n === 0) return;
    this.#writeBody(data, n, '');
  }

  /**
   * Writes `body` as the whole response body (its length as
   * `Content-Length`, replacing one the resource set; for HEAD a non-empty
   * body only sets the length) and finishes: what the site does with bytes
   * returned by `render`. Head and body go out in one write when they fit.
   * Falls back to `write` + `finish` once the head was sent.
   * @throws TransportClosedError after `finish()`. Does nothing after the
   *   connection was lost.
   */
  respond(body: Uint8Array | string): void {
    if (this.#finished) throw new TransportClosedError('Request.respond() after finish()');
    if (this.#lost) return;
    if (this.#startedWriting) {
      this.write(body);
      this.finish();
      return;
    }
    const n = byteLength(body);
    const headers = this.#responseHeaders;
    if (this.method === 'HEAD') {
      if (n > 0) this.responseHeaders.set('Content-Length', String(n));
      this.#sent += n;
      this.finish();
      return;
    }
    if (headers !== null && !statusHasNoBody(this.#code)) headers.delete('content-length');
    this.#finished = true;
    this.#writeHead(n, n === 0 ? null : body, n);
    this.#done();
  }

  /**
   * Ends the response: sends the head if not yet sent (with
   * `Content-Length: 0`, or for HEAD the counted length), the last chunk of
   * a chunked body, unregisters a producer still registered, hands the
   * request back to the channel (which dispatches the next pipelined
   * request or closes), then fires the `notifyFinish()` Deferreds.
   * Does nothing after the connection was lost.
   * @throws AlreadyCalledError if called twice.
   */
  finish(): void {
    if (this.#lost) return;
    if (this.#finished) throw new AlreadyCalledError('Request.finish() called twice');
    this.#finished = true;
    if (!this.#startedWriting) {
      this.#writeHead(this.#sent, null, 0);
    } else if (this.#framing === F_CHUNKED) {
      const trailers = this.#trailers;
      this.channel.writeResponse(trailers === null ? LAST_CHUNK : encodeLastChunk(trailers));
    }
    this.#done();
  }

  /**
   * Registers the producer of the response body. A push producer
   * (`streaming`) is paused while the client reads slowly (the channel
   * relays the transport's pause and resume); a pull producer gets
   * `resumeProducing()` each time the written bytes have drained. After
   * the connection's loss or `finish()` the producer is stopped at once.
   * It is unregistered at `finish()` if still registered, and stopped if the
   * connection is lost.
   * @throws ProducerAlreadyRegistered if one is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.#producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#lost || this.#finished) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
      return;
    }
    this.#producer = producer;
    this.#streaming = streaming;
    this.channel.requestProducerRegistered(this, producer, streaming);
  }

  /** Forgets the registered producer (it is not stopped). */
  unregisterProducer(): void {
    const producer = this.#producer;
    if (producer === null) return;
    this.#producer = null;
    this.channel.requestProducerUnregistered(this, producer, this.#streaming);
  }

  /** The registered producer, or `null`. */
  get producer(): IPushProducer | IPullProducer | null {
    return this.#producer;
  }

  /**
   * A Deferred that fires (with `undefined`) once the response is finished
   * and handed to the connection, or fails with `ConnectionLost` if the
   * connection is lost first. Already fired if either has happened.
   */
  notifyFinish(): Deferred<void> {
    if (this.#finished && !this.#lost) return succeed(undefined);
    if (this.#lost)
      return fail(new ConnectionLost('the connection was lost before the response finished'));
    const d = new Deferred<void>();
    this.#waiters ??= [];
    this.#waiters.push(d);
    return d;
  }

  // ------------------------------------------------------------------ the channel's side

  /**
   * The connection is gone: later writes and `finish()` do nothing, an
   * incomplete body fails with `ConnectionLost`, the producer is stopped, the
   * `notifyFinish()` Deferreds fail. Called by the channel (once);
   * `producerStopped` when the transport already stopped the producer.
   */
  connectionLost(reason: Failure, producerStopped: boolean): void {
    const body = this.#body;
    const lost =
      reason.value instanceof ConnectionLost
        ? reason
        : new Failure(
            new ConnectionLost('the connection was closed before the request finished', {
              cause: reason.value,
            }),
          );
    if (body !== null && !body.complete) body.fail(lost);
    if (this.#finished) return;
    this.#lost = true;
    const producer = this.#producer;
    this.#producer = null;
    if (producer !== null && !producerStopped) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
    }
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const d of waiters) d.errback(lost);
  }

  /** Notes that `100 Continue` went out (called by the channel). */
  markContinueSent(): void {
    this.#continueSent = true;
  }

  /** The body object if one was made (the channel feeds it), else `null`. */
  get bodyIfAny(): RequestBody | null {
    return this.#body;
  }

  /** The connection must close after this response (the channel's call, e.g. on a parse error in the body). */
  forceClose(): void {
    this.#persistent = false;
  }

  // ------------------------------------------------------------------ internals

  /**
   * Builds and sends the head, with `data` (`n` bytes; `null` for none)
   * after it. `total` is the whole body's length when known (`respond`,
   * `finish`), else -1.
   */
  #writeHead(total: number, data: Uint8Array | string | null, n: number): void {
    this.#startedWriting = true;
    const channel = this.channel;
    const code = this.#code;
    const isHead = this.method === 'HEAD';
    const noBody = isHead || statusHasNoBody(code);
    const headers = this.#responseHeaders;
    let declared = -1;
    let userLength = false;
    let persistent = channel.mayKeepAlive(this);
    let fields = '';
    let dateServer = true;
    let hasDate = false;
    let hasServer = false;
    if (headers !== null && headers.size > 0) {
      // One pass finds the fields the channel owns or must not duplicate.
      const found = FOUND;
      found.length = null;
      found.lengths = 0;
      found.te = false;
      found.connection = null;
      found.date = false;
      found.server = false;
      headers.forEach(noteField);
      const cl = found.length;
      if (cl !== null) {
        if (found.lengths === 1 && DIGITS.test(cl) && code !== 204 && code >= 200) {
          declared = Number(cl);
          userLength = true;
        } else {
          headers.delete('content-length');
        }
      }
      if (found.te) headers.delete('transfer-encoding');
      const connection = found.connection;
      if (connection !== null) {
        if (/(?:^|,)\s*close\s*(?:,|$)/i.test(connection)) persistent = false;
        headers.delete('connection');
      }
      hasDate = found.date;
      hasServer = found.server;
      dateServer = !hasDate && !hasServer;
      fields = headers.serialize();
    }
    let head =
      this.#message === undefined
        ? statusLineText(code, undefined, '1.1')
        : statusLineText(code, this.#message, '1.1');
    if (dateServer) head += channel.dateServerFields();
    else {
      if (!hasDate) head += `Date: ${channel.dateValue()}\r\n`;
      if (!hasServer) head += 'Server: torsion\r\n';
    }
    head += fields;
    let framing: number;
    if (noBody) {
      framing = F_NONE;
      if (isHead && !userLength && total > 0) head += `Content-Length: ${total}\r\n`;
    } else if (total >= 0 && !userLength) {
      framing = F_LENGTH;
      declared = total;
      head += `Content-Length: ${total}\r\n`;
    } else if (declared >= 0) {
      framing = F_LENGTH;
    } else if (this.clientproto === 'HTTP/1.1') {
      framing = F_CHUNKED;
      head += 'Transfer-Encoding: chunked\r\n';
    } else {
      framing = F_CLOSE;
      persistent = false;
    }
    const body = this.#body;
    if (body !== null && !body.complete && !body.wanted) {
      if (this.head.expectContinue && !this.#continueSent) {
        // The client may be holding the body back for our 100: it will never come now.
        persistent = false;
      } else if (body.length !== null && body.length - body.received > channel.maxDiscardedBody) {
        // Nobody asked for the body and too much of it is left to drop: the
        // channel will close after this response, so say so.
        persistent = false;
      }
    }
    if (!persistent) head += 'Connection: close\r\n';
    else if (this.clientproto === 'HTTP/1.0') head += 'Connection: keep-alive\r\n';
    head += '\r\n';
    this.#framing = framing;
    this.#declared = declared;
    this.#persistent = persistent;
    if (
      (fields !== '' && nonAscii(fields)) ||
      (this.#message !== undefined && nonAscii(this.#message))
    ) {
      // Field values may hold latin1 characters: the head is bytes, one per character.
      channel.writeResponse(Buffer.from(head, 'latin1'));
      if (data !== null) this.#writeBody(data, n, '');
      return;
    }
    if (data === null) {
      channel.writeResponse(head);
      return;
    }
    this.#writeBody(data, n, head);
  }

  /** Sends `n` body bytes after `prefix` (the head, or ''), framed. */
  #writeBody(data: Uint8Array | string, n: number, prefix: string): void {
    const framing = this.#framing;
    if (framing === F_NONE) {
      this.#sent += n;
      if (prefix !== '') this.channel.writeResponse(prefix);
      this.#pullAgain();
      return;
    }
    if (framing === F_LENGTH && this.#sent + n > this.#declared) {
      if (prefix !== '') this.channel.writeResponse(prefix);
      throw new ContentLengthMismatch(
        `write() of ${n} bytes would exceed the declared Content-Length ${this.#declared} (${this.#sent} sent)`,
      );
    }
    this.#sent += n;
    const channel = this.channel;
    if (framing === F_CHUNKED) {
      const size = `${n.toString(16)}\r\n`;
      if (typeof data === 'string') channel.writeResponse(`${prefix}${size}${data}\r\n`);
      else channel.writeResponseParts(prefix + size, data, CRLF);
    } else if (typeof data === 'string') {
      channel.writeResponse(prefix === '' ? data : prefix + data);
    } else if (prefix === '') {
      channel.writeResponse(data);
    } else if (n <= SMALL_BODY && isAscii(data)) {
      // A small ASCII body (most short answers): head and body as one string,
      // one write, no Buffer to assemble.
      channel.writeResponse(prefix + asLatin1(data, n));
    } else {
      channel.writeResponseParts(prefix, data, null);
    }
  }

  /**
   * A pull producer whose bytes are not sent (HEAD, bodiless status) never
   * sees a drain: ask it for more on the next turn instead.
   */
  #pullAgain(): void {
    const producer = this.#producer;
    if (producer === null || this.#streaming) return;
    this.channel.reactor.callLater(0, Request.#resumePull, this, producer);
  }

  static #resumePull(request: Request, producer: IPushProducer | IPullProducer): void {
    if (request.#producer !== producer || request.#finished || request.#lost) return;
    try {
      producer.resumeProducing();
    } catch (e) {
      err(e, 'Unhandled error in producer.resumeProducing()');
    }
  }

  /** After the last bytes: producer, channel, then the `notifyFinish()` Deferreds. */
  #done(): void {
    if (this.#framing === F_LENGTH && this.#sent < this.#declared) this.#persistent = false;
    if (this.#producer !== null) this.unregisterProducer();
    this.channel.requestDone(this);
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const d of waiters) d.callback(undefined);
  }
}
