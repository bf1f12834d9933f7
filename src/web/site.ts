/**
 * {@link Site}: the HTTP server factory (Twisted's `server.Site`): it makes an
 * {@link HTTPChannel} per connection, finds the resource for each request
 * ({@link getChildForRequest}) and renders it, writes the access log, keeps
 * the sessions, and shuts down gracefully.
 *
 * Rendering (`render(request)`'s result):
 * - bytes or a string: `Content-Length`, the body, `finish()` (one write);
 * - {@link NOT_DONE_YET}: the resource finishes the request itself;
 * - a Promise, Deferred or other thenable of those: the same once it settles;
 * - a throw or a rejection: an {@link HTTPException} (or another 3xx–5xx
 *   `HTTPError`, such as the 413 of `request.body()` or the 400 of a
 *   malformed chunked body) answers its own status; anything else is logged
 *   and answers 500 with a short `text/plain` body (the stack only with
 *   `displayTracebacks`). If the response had already started, the
 *   connection is aborted instead (a truncated response must not look
 *   complete). The server keeps serving either way.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { Factory } from '../protocols/protocol.js';
import { Deferred, isThenable } from '../reactor/deferred.js';
import { ConnectionLost, InvalidArgumentError } from '../reactor/errors.js';
import type { IAddress, IDelayedCall, IReactorTime, TriggerId } from '../reactor/interfaces.js';
import { err } from '../reactor/log.js';
import { HTTPException } from './errors.js';
import {
  ChannelConfig,
  type ChannelSite,
  HTTPChannel,
  type HTTPChannelOptions,
} from './http/channel.js';
import { pathSegments, type Request } from './http/request.js';
import { statusHasNoBody } from './http/status.js';
import { type IResource, NOT_DONE_YET } from './iweb.js';
import { getChildForRequest } from './resource.js';

/**
 * Options of a {@link Site}: the channel's options (timeouts, limits,
 * `allowHalfOpen`: see {@link HTTPChannelOptions}), plus the site's own.
 */
export interface SiteOptions extends Omit<HTTPChannelOptions, 'site'> {
  /** Put the stack of an unexpected error in the 500 response body. Default `false`. */
  displayTracebacks?: boolean;
  /**
   * Where the access log goes, one line per response in the combined log
   * format: a writable stream, a file path (appended to; opened on the first
   * line; reopened by {@link Site.reopenLog}, which SIGHUP calls), `'-'` for
   * standard output, or `null` (default) for none.
   */
  accessLog?: Writable | string | null;
  /** Seconds a session lives without being used. Default 900 (15 minutes). */
  sessionTimeout?: number;
  /** Default grace period of {@link Site.shutdown}, in seconds. Default 10. */
  gracePeriod?: number;
}

function positiveSeconds(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(
      `${name} must be a non-negative number of seconds, got ${String(value)}`,
    );
  }
  return value;
}

// ====================================================================== Session

let forgetSession: (site: Site, session: Session) => void;

/**
 * A server-side session (Twisted's `server.Session`), found through the
 * `TORSION_SESSION` cookie by `request.getSession()`. It expires
 * `sessionTimeout` seconds after it was last used (one delayed call per
 * session, pushed back by {@link touch}), or when {@link expire} is called;
 * it then leaves the site and its expiry callbacks run once.
 */
export class Session {
  /** The session id (32 hex digits, from a CSPRNG): the cookie's value. */
  readonly uid: string;
  /** The site this session belongs to. */
  readonly site: Site;
  /** Whatever the application keeps in the session. */
  readonly data = new Map<string, unknown>();
  /** Seconds without use before it expires. */
  readonly sessionTimeout: number;
  readonly #reactor: IReactorTime;
  #lastModified: number;
  #timer: IDelayedCall | null;
  #callbacks: (() => void)[] = [];

  /** Made by {@link Site.makeSession}. */
  constructor(site: Site, uid: string, reactor: IReactorTime, sessionTimeout: number) {
    this.site = site;
    this.uid = uid;
    this.#reactor = reactor;
    this.sessionTimeout = sessionTimeout;
    this.#lastModified = reactor.seconds();
    this.#timer = reactor.callLater(sessionTimeout, Session.#timedOut, this);
  }

  /** The reactor time of the last use (creation or {@link touch}). */
  get lastModified(): number {
    return this.#lastModified;
  }

  /** Whether the session has expired. */
  get expired(): boolean {
    return this.#timer === null;
  }

  /** Marks the session used now: it expires `sessionTimeout` seconds from now. No-op once expired. */
  touch(): void {
    const timer = this.#timer;
    if (timer === null) return;
    this.#lastModified = this.#reactor.seconds();
    timer.reset(this.sessionTimeout);
  }

  /**
   * Calls `callback()` when the session expires (at once if it has). An
   * exception from a callback is logged.
   */
  notifyOnExpire(callback: () => void): void {
    if (this.#timer === null) {
      runCallback(callback);
      return;
    }
    this.#callbacks.push(callback);
  }

  /** Expires the session now: it leaves the site, its callbacks run in order. Idempotent. */
  expire(): void {
    const timer = this.#timer;
    if (timer === null) return;
    this.#timer = null;
    if (timer.active()) timer.cancel();
    forgetSession(this.site, this);
    const callbacks = this.#callbacks;
    this.#callbacks = [];
    for (const callback of callbacks) runCallback(callback);
  }

  static #timedOut(session: Session): void {
    if (session.#timer !== null && !session.#timer.active()) session.expire();
  }
}

function runCallback(callback: () => void): void {
  try {
    callback();
  } catch (e) {
    err(e, 'Unhandled error in a session expiry callback');
  }
}

// ====================================================================== the access log

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `[10/Oct/2000:13:55:36 +0000]` (UTC), cached per second. */
class LogTime {
  #second = -1;
  #text = '';

  now(): string {
    const ms = Date.now();
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      const d = new Date(ms);
      this.#second = second;
      this.#text =
        `[${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
        `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000]`;
    }
    return this.#text;
  }
}

/**
 * A log field: `"` and `\` escaped with `\`, control and non-ASCII
 * characters as `\xHH` (Apache's rule): characters up to U+00FF (what the
 * wire carries: the parser decodes bytes as latin1) as their own byte,
 * others as their UTF-8 bytes.
 */
export function escapeLogField(s: string): string {
  let i = 0;
  const n = s.length;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) break;
  }
  if (i === n) return s;
  let out = s.slice(0, i);
  for (const ch of s.slice(i)) {
    const c = ch.codePointAt(0)!;
    if (c === 0x22 || c === 0x5c) out += `\\${ch}`;
    else if (c >= 0x20 && c <= 0x7e) out += ch;
    else if (c <= 0xff) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else for (const b of Buffer.from(ch, 'utf8')) out += `\\x${b.toString(16)}`;
  }
  return out;
}

/**
 * One line of the combined log format:
 * `host - - [time] "METHOD URI PROTO" status bytes "referer" "user-agent"`.
 * `bytes` is `-` when no body bytes were sent.
 */
export function combinedLogLine(
  client: IAddress,
  time: string,
  requestLine: string,
  status: number,
  bytes: number,
  referer: string | null,
  agent: string | null,
): string {
  const host = (client as IAddress & { host?: string }).host ?? '-';
  const b = bytes > 0 ? String(bytes) : '-';
  return (
    `${host} - - ${time} "${escapeLogField(requestLine)}" ${status} ${b} ` +
    `"${escapeLogField(referer ?? '-')}" "${escapeLogField(agent ?? '-')}"\n`
  );
}

// ====================================================================== SIGHUP

/** Sites whose file access log is open: SIGHUP reopens each. */
const hangupSites = new Set<Site>();

function onHangup(): void {
  for (const site of [...hangupSites]) {
    try {
      site.reopenLog();
    } catch (e) {
      err(e, 'Unhandled error reopening an access log on SIGHUP');
    }
  }
}

/** `site` has a file log open: SIGHUP now reopens it (one process listener for all sites). */
function watchHangup(site: Site): void {
  if (hangupSites.has(site)) return;
  if (hangupSites.size === 0) process.on('SIGHUP', onHangup);
  hangupSites.add(site);
}

/** `site`'s file log is closed: the process listener leaves with the last such site. */
function unwatchHangup(site: Site): void {
  if (hangupSites.delete(site) && hangupSites.size === 0) process.off('SIGHUP', onHangup);
}

// ====================================================================== Site

/** A shutdown in progress. */
interface Stopping {
  readonly waiters: Deferred<void>[];
  timer: IDelayedCall | null;
}

/**
 * The HTTP factory (see the module documentation). Listen with it as with
 * any factory: `listenTCP(reactor, 8080, new Site(root))`.
 *
 * With an access log written to a file path, the process listens for
 * SIGHUP from the first line logged until the site's shutdown, and each
 * SIGHUP calls {@link Site.reopenLog} (logrotate: move the file, send
 * SIGHUP). While it listens, SIGHUP no longer ends the process (Node's
 * default for an unhandled SIGHUP).
 */
export class Site extends Factory<HTTPChannel> implements ChannelSite {
  /** The root of the resource tree. */
  readonly resource: IResource;
  /** Put the stack of an unexpected error in the 500 response body. */
  displayTracebacks: boolean;
  /** Seconds a new session lives without use. */
  sessionTimeout: number;

  readonly #config: ChannelConfig;
  readonly #reactor: IReactorTime;
  readonly #gracePeriod: number;
  readonly #channels = new Set<HTTPChannel>();
  readonly #sessions = new Map<string, Session>();
  readonly #logTime = new LogTime();
  readonly #logTarget: Writable | string | null;
  #log: Writable | null = null;
  #logBroken = false;
  /** The log is a file path that has been opened (and not closed by a shutdown). */
  #fileLogActive = false;
  #accepting = true;
  #stopping: Stopping | null = null;
  #trigger: TriggerId | null = null;

  static {
    forgetSession = (site, session) => {
      if (site.#sessions.get(session.uid) === session) site.#sessions.delete(session.uid);
    };
  }

  /**
   * @param resource - the root resource.
   * @param options - see {@link SiteOptions} and {@link HTTPChannelOptions}.
   * @throws InvalidArgumentError for a bad option.
   */
  constructor(resource: IResource, options: SiteOptions = {}) {
    super();
    if (
      resource === null ||
      typeof resource !== 'object' ||
      typeof resource.render !== 'function' ||
      typeof resource.getChildWithDefault !== 'function'
    ) {
      throw new InvalidArgumentError('Site: the root must be a resource');
    }
    this.resource = resource;
    const { displayTracebacks, accessLog, sessionTimeout, gracePeriod, ...channel } = options;
    this.#config = new ChannelConfig({ ...channel, site: this });
    this.#reactor = this.#config.reactor;
    this.displayTracebacks = displayTracebacks ?? false;
    this.sessionTimeout = positiveSeconds('sessionTimeout', sessionTimeout, 900);
    if (this.sessionTimeout === 0) throw new InvalidArgumentError('sessionTimeout must be > 0');
    this.#gracePeriod = positiveSeconds('gracePeriod', gracePeriod, 10);
    if (
      accessLog !== undefined &&
      accessLog !== null &&
      typeof accessLog !== 'string' &&
      typeof (accessLog as Writable).write !== 'function'
    ) {
      throw new InvalidArgumentError('accessLog must be a writable stream, a path, "-" or null');
    }
    this.#logTarget = accessLog ?? null;
  }

  /** The reactor (time source) of the site and its channels. */
  get reactor(): IReactorTime {
    return this.#reactor;
  }

  /** The open connections. */
  get channels(): ReadonlySet<HTTPChannel> {
    return this.#channels;
  }

  /** The live sessions, by uid. */
  get sessions(): ReadonlyMap<string, Session> {
    return this.#sessions;
  }

  // ------------------------------------------------------------------ factory

  /** A new channel for a connection; `null` (refused) while shutting down. */
  override buildProtocol(_addr: IAddress): HTTPChannel | null {
    if (!this.#accepting) return null;
    const channel = new HTTPChannel(this.#config);
    channel.factory = this;
    this.#channels.add(channel);
    return channel;
  }

  /**
   * The first port started: accept again (after a shutdown), and if the
   * reactor has system events, shut down gracefully during its `shutdown`.
   */
  override startFactory(): void {
    this.#accepting = true;
    const r = this.#reactor as IReactorTime & {
      addSystemEventTrigger?: (phase: 'during', event: 'shutdown', fn: () => unknown) => TriggerId;
    };
    if (typeof r.addSystemEventTrigger === 'function' && this.#trigger === null) {
      this.#trigger = r.addSystemEventTrigger('during', 'shutdown', () => {
        this.#trigger = null;
        return this.shutdown();
      });
    }
  }

  /** The last port stopped listening: a graceful {@link shutdown} starts. */
  override stopFactory(): void {
    const trigger = this.#trigger;
    if (trigger !== null) {
      this.#trigger = null;
      try {
        (
          this.#reactor as unknown as { removeSystemEventTrigger(id: TriggerId): void }
        ).removeSystemEventTrigger(trigger);
      } catch {
        // It ran already.
      }
    }
    this.shutdown();
  }

  /**
   * Graceful shutdown: new connections are refused (until a port starts the
   * factory again), idle connections close at once, each busy one closes
   * after its response in progress (which gets `Connection: close`), and
   * whatever is still open after `gracePeriod` seconds (default: the
   * site's, 10) is aborted. Then every session expires (they live in memory
   * only) and a log file the site opened is closed. The Deferred fires (never
   * fails) when the last connection has closed; calls made meanwhile get
   * Deferreds that fire at the same time.
   * @throws InvalidArgumentError for a bad `gracePeriod`.
   */
  shutdown(gracePeriod?: number): Deferred<void> {
    const grace = positiveSeconds('gracePeriod', gracePeriod, this.#gracePeriod);
    const d = new Deferred<void>();
    this.#accepting = false;
    if (this.#stopping !== null) {
      this.#stopping.waiters.push(d);
      return d;
    }
    const stopping: Stopping = { waiters: [d], timer: null };
    this.#stopping = stopping;
    for (const channel of [...this.#channels]) channel.shutdown();
    if (this.#channels.size === 0) this.#shutdownDone();
    else stopping.timer = this.#reactor.callLater(grace, Site.#graceOver, this);
    return d;
  }

  static #graceOver(site: Site): void {
    const stopping = site.#stopping;
    if (stopping === null) return;
    stopping.timer = null;
    for (const channel of [...site.#channels]) channel.abortConnection();
  }

  #shutdownDone(): void {
    const stopping = this.#stopping;
    if (stopping === null) return;
    this.#stopping = null;
    if (stopping.timer?.active()) stopping.timer.cancel();
    for (const session of [...this.#sessions.values()]) session.expire();
    if (this.#fileLogActive) {
      this.#fileLogActive = false;
      unwatchHangup(this);
      const log = this.#log;
      this.#log = null;
      log?.end();
    }
    for (const w of stopping.waiters) w.callback(undefined);
  }

  // ------------------------------------------------------------------ ChannelSite

  /** @internal Finds the resource for `request` and renders it (see the module documentation). */
  process(request: Request): void {
    const segments = pathSegments(request.path);
    if (segments === null) {
      this.#plain(request, 400, 'Bad Request: the path is not valid percent-encoded UTF-8\n');
      return;
    }
    request.postpath = segments;
    let result: unknown;
    try {
      const resource = getChildForRequest(this.resource, request);
      result = resource.render(request);
    } catch (e) {
      this.#failed(request, e);
      return;
    }
    this.#rendered(request, result);
  }

  /** @internal Writes the access log line of a finished response. */
  requestFinished(request: Request): void {
    const log = this.#logStream();
    if (log === null) return;
    const code = request.code;
    const bytes = request.method === 'HEAD' || statusHasNoBody(code) ? 0 : request.sentLength;
    const headers = request.requestHeaders;
    this.#writeLog(
      log,
      combinedLogLine(
        request.getClientAddress(),
        this.#logTime.now(),
        `${request.method} ${request.uri} ${request.clientproto}`,
        code,
        bytes,
        headers.get('referer'),
        headers.get('user-agent'),
      ),
    );
  }

  /** @internal Logs a protocol error response (request line `-`). */
  errorSent(channel: HTTPChannel, status: number, bytes: number): void {
    const log = this.#logStream();
    if (log === null) return;
    this.#writeLog(
      log,
      combinedLogLine(
        channel.transport.getPeer(),
        this.#logTime.now(),
        '-',
        status,
        bytes,
        null,
        null,
      ),
    );
  }

  /** @internal A channel's connection closed. */
  channelClosed(channel: HTTPChannel): void {
    this.#channels.delete(channel);
    if (this.#stopping !== null && this.#channels.size === 0) this.#shutdownDone();
  }

  /** The live session `uid`, or `null`. */
  getSession(uid: string): Session | null {
    return this.#sessions.get(uid) ?? null;
  }

  /** A new session (random uid), kept until it expires. */
  makeSession(): Session {
    let uid = randomBytes(16).toString('hex');
    while (this.#sessions.has(uid)) uid = randomBytes(16).toString('hex');
    const session = new Session(this, uid, this.#reactor, this.sessionTimeout);
    this.#sessions.set(uid, session);
    return session;
  }

  // ------------------------------------------------------------------ rendering

  #rendered(request: Request, result: unknown): void {
    if (result === NOT_DONE_YET) return;
    if (typeof result === 'string' || result instanceof Uint8Array) {
      if (request.lost) return;
      if (request.finished) {
        err(
          new InvalidArgumentError('render() returned a body for a request it had finished'),
          `Rendering ${request.method} ${request.uri}`,
        );
        return;
      }
      try {
        request.respond(result);
      } catch (e) {
        this.#failed(request, e);
      }
      return;
    }
    if (result instanceof Deferred) {
      result.addCallbacks(
        (value: unknown) => {
          this.#rendered(request, value);
          return null;
        },
        (failure) => {
          this.#failed(request, failure.value);
          return null;
        },
      );
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.#rendered(request, value),
        (reason: unknown) => this.#failed(request, reason),
      );
      return;
    }
    this.#failed(
      request,
      new InvalidArgumentError(
        `render() returned ${result === null ? 'null' : typeof result}: expected bytes, a string, NOT_DONE_YET or a Promise of one`,
      ),
    );
  }

  #failed(request: Request, error: unknown): void {
    const what = `${request.method} ${request.uri}`;
    if (request.lost) {
      if (!(error instanceof ConnectionLost))
        err(error, `Error rendering ${what} (connection lost)`);
      return;
    }
    if (request.finished) {
      err(error, `Error rendering ${what} after it finished`);
      return;
    }
    if (request.startedWriting) {
      err(error, `Error rendering ${what} after its response started: connection aborted`);
      request.channel.abortConnection();
      return;
    }
    const exception = HTTPException.from(error);
    if (exception !== null) {
      request.responseHeaders.clear();
      try {
        request.respond(exception.render(request));
        return;
      } catch (e) {
        error = e;
        if (request.lost || request.finished) return;
      }
    }
    err(error, `Unhandled error rendering ${what}`);
    let text = 'Internal Server Error\n';
    if (this.displayTracebacks) {
      const stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
      text += `\n${stack}\n`;
    }
    this.#plain(request, 500, text);
  }

  /** Answers `code` with a `text/plain` body (the resource's headers are dropped). */
  #plain(request: Request, code: number, text: string): void {
    request.responseHeaders.clear();
    request.setResponseCode(code);
    request.setHeader('Content-Type', 'text/plain; charset=utf-8');
    try {
      request.respond(text);
    } catch (e) {
      err(e, 'Unhandled error writing an error response');
      request.channel.abortConnection();
    }
  }

  // ------------------------------------------------------------------ the log stream

  /**
   * Reopens the access log when it is a file path (what SIGHUP does; the
   * logrotate convention): the open stream is ended (lines already logged
   * are flushed to the file it had open, under whatever name that file has
   * now) and the path is opened again at once, in append mode (created if
   * missing); later lines go there. A log that had failed (an unwritable
   * path) is retried. Does nothing when the log is a stream, `'-'`, none,
   * or a file not opened yet (no line logged since the site started or
   * last shut down). Open errors are reported to the log observers, as any
   * access log failure is (logging stops until the next reopen).
   */
  reopenLog(): void {
    const target = this.#logTarget;
    if (!this.#fileLogActive || typeof target !== 'string') return;
    const old = this.#log;
    this.#log = null;
    this.#logBroken = false;
    old?.end();
    this.#openFileLog(target);
  }

  #logStream(): Writable | null {
    if (this.#log !== null) return this.#log;
    const target = this.#logTarget;
    if (target === null || this.#logBroken) return null;
    if (typeof target !== 'string') {
      this.#log = target;
    } else if (target === '-') {
      this.#log = process.stdout;
    } else {
      this.#openFileLog(target);
    }
    return this.#log;
  }

  /** Opens `path` for appending as the log stream, and listens for SIGHUP. */
  #openFileLog(path: string): void {
    const stream = createWriteStream(path, { flags: 'a' });
    stream.on('error', (e) => {
      err(e, `Access log ${path} failed; logging stops`);
      if (this.#log === stream) {
        this.#logBroken = true;
        this.#log = null;
      }
    });
    this.#log = stream;
    this.#fileLogActive = true;
    watchHangup(this);
  }

  #writeLog(log: Writable, line: string): void {
    try {
      log.write(line);
    } catch (e) {
      err(e, 'Access log write failed; logging stops');
      this.#logBroken = true;
      this.#log = null;
    }
  }
}
