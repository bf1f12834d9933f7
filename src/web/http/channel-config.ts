/**
 * The options of an {@link HTTPChannel} ({@link HTTPChannelOptions}),
 * checked and filled in once ({@link ChannelConfig}), and what a channel
 * needs from the site it serves ({@link ChannelSite}).
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import type { IReactorTime } from '../../reactor/interfaces.js';
import { reactor as defaultReactor } from '../../reactor/reactor.js';
import type { Session } from '../site.js';
import type { HTTPChannel } from './channel.js';
import { type ParserHandler, type ParserOptions, RequestParser } from './parser.js';
import type { Request } from './request.js';
import { ResponseDate } from './response-date.js';

/**
 * What a channel needs from the site it serves (a {@link Site} implements
 * it): dispatching, the access log, sessions, and connection accounting.
 */
export interface ChannelSite {
  /**
   * Renders `request`, whose head is complete and which is at the head of
   * the pipeline. Must not throw (a throw is logged and the connection
   * aborted).
   */
  process(request: Request): void;
  /** `request`'s response finished (access log). */
  requestFinished(request: Request): void;
  /** The channel answered a protocol error with `status` (no request to log): access log. */
  errorSent(channel: HTTPChannel, status: number, bytes: number): void;
  /** The channel's connection closed (or was detached). Called once. */
  channelClosed(channel: HTTPChannel): void;
  /** The live session `uid`, or `null`. */
  getSession(uid: string): Session | null;
  /** A new session. */
  makeSession(): Session;
}

/** Options of an {@link HTTPChannel} (a {@link Site} takes the same ones). Times in seconds. */
export interface HTTPChannelOptions {
  /** Time and delayed calls (a `Clock` in tests). Default: the global reactor. */
  reactor?: IReactorTime;
  /**
   * From the first byte of a request head until it is complete (with no
   * request in progress); then 408 and close. Default 30; `null` disables.
   */
  headerTimeout?: number | null;
  /** Between requests (none in progress, nothing received); then close silently. Default 60; `null` disables. */
  idleTimeout?: number | null;
  /**
   * Between pieces of a request body while the channel reads it (not while
   * it is paused for a slow reader); then the body fails with a 408
   * `HTTPError` and the connection closes. Default `null` (off).
   */
  bodyTimeout?: number | null;
  /** After the channel starts closing, until it aborts the connection. Default 15. */
  closeTimeout?: number;
  /** The parser's limits (request line, header section and count, body size…). */
  limits?: ParserOptions;
  /** Requests parsed and waiting behind the one in progress before reading pauses. Default 16. */
  maxPipelinedRequests?: number;
  /** Request body bytes held per connection that no reader took before reading pauses. Default 64 KiB. */
  maxBufferedBody?: number;
  /** Unread request body bytes dropped after a response to keep the connection. Default 64 KiB. */
  maxDiscardedBody?: number;
  /** The default cap of `request.body()`, in bytes. Default 10 MiB. */
  maxBodySize?: number;
  /** The site that renders requests; without one every request gets a 404. */
  site?: ChannelSite | null;
  /**
   * What the client's FIN (its half-close) means (Node's `allowHalfOpen`
   * name). Default `false`, as Twisted's `HTTPChannel` and Node's HTTP
   * server: the client has gone away. Responses already finished are
   * flushed and the connection closes; every request whose response has
   * not finished gets `connectionLost` at once (`notifyFinish()` fails with
   * `ConnectionLost`, its producer is stopped, an incomplete body fails),
   * and requests not dispatched yet are dropped with it. With `true`, a
   * FIN after complete requests only means the client sends nothing more:
   * they are all answered, then the connection closes (a request body the
   * FIN cuts short still fails, and closes the connection if its request is
   * the one in progress).
   */
  allowHalfOpen?: boolean;
}

const DEFAULT_MAX_BODY = 10 * 1024 * 1024;

function seconds(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === null) return Number.POSITIVE_INFINITY;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(
      `${name} must be a positive number of seconds or null, got ${String(value)}`,
    );
  }
  return value;
}

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * {@link HTTPChannelOptions}, checked and filled in once: a site builds one
 * and hands it to every channel it makes (no per-connection work).
 */
export class ChannelConfig {
  readonly reactor: IReactorTime;
  readonly headerTimeout: number;
  readonly idleTimeout: number;
  readonly bodyTimeout: number;
  readonly closeTimeout: number;
  readonly limits: ParserOptions;
  readonly maxPipelinedRequests: number;
  readonly maxBufferedBody: number;
  readonly maxDiscardedBody: number;
  readonly maxBodySize: number;
  readonly site: ChannelSite | null;
  readonly allowHalfOpen: boolean;
  readonly date: ResponseDate;

  /** @throws InvalidArgumentError for a bad option (including the parser's limits). */
  constructor(options: HTTPChannelOptions = {}) {
    this.reactor = options.reactor ?? defaultReactor;
    this.headerTimeout = seconds('headerTimeout', options.headerTimeout, 30);
    this.idleTimeout = seconds('idleTimeout', options.idleTimeout, 60);
    this.bodyTimeout = seconds('bodyTimeout', options.bodyTimeout ?? null, 0);
    this.closeTimeout = seconds('closeTimeout', options.closeTimeout, 15);
    this.limits = { ...options.limits };
    new RequestParser(NULL_HANDLER, this.limits); // validates the limits now
    this.maxPipelinedRequests = count('maxPipelinedRequests', options.maxPipelinedRequests, 16, 1);
    this.maxBufferedBody = count('maxBufferedBody', options.maxBufferedBody, 64 * 1024, 1);
    this.maxDiscardedBody = count('maxDiscardedBody', options.maxDiscardedBody, 64 * 1024, 0);
    this.maxBodySize = count('maxBodySize', options.maxBodySize, DEFAULT_MAX_BODY, 1);
    this.site = options.site ?? null;
    const halfOpen = options.allowHalfOpen ?? false;
    if (typeof halfOpen !== 'boolean') {
      throw new InvalidArgumentError(
        `allowHalfOpen must be a boolean, got ${String(options.allowHalfOpen)}`,
      );
    }
    this.allowHalfOpen = halfOpen;
    this.date = new ResponseDate(this.reactor);
  }
}

const NULL_HANDLER: ParserHandler = {
  onRequest() {},
  onBody() {},
  onMessageComplete() {},
  onError() {},
};
