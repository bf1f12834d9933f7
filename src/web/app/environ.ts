/**
 * The environ an app is called with ({@link Environ}: CGI/WSGI keys, built
 * by {@link buildEnviron}) and its error stream ({@link ErrorStream},
 * `environ['wsgi.errors']`, which writes to the reactor's log).
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import { msg } from '../../reactor/log.js';
import { authorityHost, targetAuthority } from '../http/authority.js';
import type { IRequest } from '../iweb.js';
import type { AsyncBody } from './async-body.js';
import type { InputStream } from './input.js';

// Kept importable from here, where it was first defined.
export { targetAuthority } from '../http/authority.js';

/** `environ['wsgi.errors']`: a writable text stream (what a middleware's replacement must offer). */
export interface ErrorOutput {
  /** Writes text (bytes are decoded as UTF-8); complete lines are logged at once. */
  write(data: string | Uint8Array): void;
  /** Writes each of `lines` (no separator is added, as Python's `writelines`). */
  writelines(lines: Iterable<string | Uint8Array>): void;
  /** Logs a pending partial line. */
  flush(): void;
}

/**
 * The environ of one request: a plain object, CGI/WSGI style. Values are
 * strings unless stated. Paths are percent-decoded (UTF-8); `QUERY_STRING`
 * is as sent.
 */
export interface Environ {
  /** The method, e.g. `'GET'`. */
  REQUEST_METHOD: string;
  /** Where the app is mounted: `'/'` + the segments traversed to reach it, joined; `''` at the root. */
  SCRIPT_NAME: string;
  /** The rest of the path below `SCRIPT_NAME` (`'/a/b'`, `'/'` for a trailing slash, `''` for none). */
  PATH_INFO: string;
  /** The query after `?`, as sent (`''` when there is none). */
  QUERY_STRING: string;
  /** The request's `Content-Type`, or `''`. */
  CONTENT_TYPE: string;
  /** The request's `Content-Length`; absent when the body is chunked or there is none. */
  CONTENT_LENGTH?: string;
  /**
   * The host the request was made to, without its port: from an
   * absolute-form target (`GET http://host/p`) if that is what was sent,
   * else the `Host` header, else the server's address.
   */
  SERVER_NAME: string;
  /** The port the connection came in on (`''` for a UNIX socket). */
  SERVER_PORT: string;
  /** `'HTTP/1.0'` or `'HTTP/1.1'`. */
  SERVER_PROTOCOL: string;
  /** The client's address (`''` for a UNIX socket). */
  REMOTE_ADDR: string;
  /** The client's port (`''` for a UNIX socket). */
  REMOTE_PORT: string;
  /** The request-target as sent (path and query, undecoded). */
  REQUEST_URI: string;
  /** `[1, 0]`. */
  'wsgi.version': readonly [1, 0];
  /** `'https'` over TLS, else `'http'`. */
  'wsgi.url_scheme': 'http' | 'https';
  /** The request body (see {@link InputStream}). */
  'wsgi.input': InputStream;
  /** Text written here goes to the reactor's log. */
  'wsgi.errors': ErrorOutput;
  /** `false`: apps run on the reactor, one call at a time. */
  'wsgi.multithread': boolean;
  /** `false`. */
  'wsgi.multiprocess': boolean;
  /** `false`. */
  'wsgi.run_once': boolean;
  /** The request's {@link AsyncBody}. */
  'torsion.async': AsyncBody;
  /** The underlying request (its response is the gateway's: do not write to it). */
  'torsion.request': IRequest;
  /**
   * Each request header: `HTTP_` + its name upper-cased with `-` as `_`
   * (repeated fields joined with `', '`, `Cookie` with `'; '`). Names with an
   * `_` are left out (they would collide with `-` names: header spoofing),
   * as are `Content-Type` and `Content-Length` (see above).
   */
  [header: `HTTP_${string}`]: string | undefined;
  /** Whatever a middleware adds. */
  [key: string]: unknown;
}

/** Partial lines longer than this are logged without waiting for their end. */
const MAX_PARTIAL = 8 * 1024;

/**
 * `environ['wsgi.errors']`: text written to it is logged (the reactor's
 * `msg`) one line at a time, prefixed with the request (`METHOD URI`).
 */
export class ErrorStream implements ErrorOutput {
  readonly #prefix: string;
  #partial = '';

  /** @param prefix - put before every logged line. */
  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** @throws InvalidArgumentError if `data` is not a string or bytes. */
  write(data: string | Uint8Array): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw new InvalidArgumentError('wsgi.errors.write(): data must be a string or bytes');
    }
    let text =
      typeof data === 'string'
        ? data
        : Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8');
    if (this.#partial !== '') {
      text = this.#partial + text;
      this.#partial = '';
    }
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      msg(this.#prefix + text.slice(start, nl));
      start = nl + 1;
    }
    const rest = start === 0 ? text : text.slice(start);
    if (rest.length > MAX_PARTIAL) msg(this.#prefix + rest);
    else this.#partial = rest;
  }

  writelines(lines: Iterable<string | Uint8Array>): void {
    for (const line of lines) this.write(line);
  }

  flush(): void {
    if (this.#partial === '') return;
    const rest = this.#partial;
    this.#partial = '';
    msg(this.#prefix + rest);
  }
}

/** `Content-Type` → `HTTP_CONTENT_TYPE`… for the common names, computed once. */
const KEYS = new Map<string, string>();
for (const name of [
  'host',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'connection',
  'cookie',
  'referer',
  'origin',
  'authorization',
  'cache-control',
  'if-none-match',
  'if-modified-since',
  'expect',
  'transfer-encoding',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-requested-with',
]) {
  KEYS.set(name, `HTTP_${name.toUpperCase().replaceAll('-', '_')}`);
}

/** The environ key of a request header, or `null` for a name the environ leaves out. */
function headerKey(name: string): string | null {
  const lower = name.toLowerCase();
  const known = KEYS.get(lower);
  if (known !== undefined) return known;
  if (lower === 'content-type' || lower === 'content-length' || lower.includes('_')) return null;
  return `HTTP_${lower.toUpperCase().replaceAll('-', '_')}`;
}

/** The `host` and `port` of an address, when it has them. */
function hostPort(address: unknown): { host: string; port: string } {
  const a = address as { host?: unknown; port?: unknown } | null;
  return {
    host: typeof a?.host === 'string' ? a.host : '',
    port: typeof a?.port === 'number' ? String(a.port) : '',
  };
}

/** What {@link buildEnviron} puts in beside the request's own fields. */
export interface EnvironParts {
  readonly input: InputStream;
  readonly errors: ErrorOutput;
  readonly body: AsyncBody;
}

/** The environ of `request` (see {@link Environ}), for an app mounted at `request.prepath`. */
export function buildEnviron(request: IRequest, parts: EnvironParts): Environ {
  const uri = request.uri;
  const q = uri.indexOf('?');
  const prepath = request.prepath;
  const postpath = request.postpath;
  const headers = request.requestHeaders;
  const server = hostPort(request.getHost());
  const client = hostPort(request.getClientAddress());
  // The target's authority (RFC 9112 §3.2.2), else Host: its host as a URL
  // writes it (an IPv6 literal in brackets); else the server's address.
  const target = targetAuthority(uri);
  const authority = target !== null && target !== '' ? target : headers.get('host');
  const environ: Environ = {
    REQUEST_METHOD: request.method,
    SCRIPT_NAME: prepath.length === 0 ? '' : `/${prepath.join('/')}`,
    PATH_INFO: postpath.length === 0 ? '' : `/${postpath.join('/')}`,
    QUERY_STRING: q === -1 ? '' : uri.slice(q + 1),
    CONTENT_TYPE: headers.get('content-type') ?? '',
    SERVER_NAME:
      authority !== null && authority !== ''
        ? authorityHost(authority)
        : request.getRequestHostname(),
    SERVER_PORT: server.port,
    SERVER_PROTOCOL: request.clientproto,
    REMOTE_ADDR: client.host,
    REMOTE_PORT: client.port,
    REQUEST_URI: uri,
    'wsgi.version': [1, 0],
    'wsgi.url_scheme': request.isSecure() ? 'https' : 'http',
    'wsgi.input': parts.input,
    'wsgi.errors': parts.errors,
    'wsgi.multithread': false,
    'wsgi.multiprocess': false,
    'wsgi.run_once': false,
    'torsion.async': parts.body,
    'torsion.request': request,
  };
  // The framing decided by the parser, not the raw header: a chunked body
  // has no length even if a (rejected) Content-Length came with it.
  const length = request.bodyStream().length;
  if (length !== null) environ.CONTENT_LENGTH = String(length);
  else if (headers.has('content-length') && !headers.has('transfer-encoding')) {
    environ.CONTENT_LENGTH = '0'; // a body-less request that said so
  }
  headers.forEach((value, name) => {
    const key = headerKey(name);
    if (key === null) return;
    const before = environ[key as `HTTP_${string}`];
    if (before === undefined) environ[key as `HTTP_${string}`] = value;
    else
      environ[key as `HTTP_${string}`] = `${before}${key === 'HTTP_COOKIE' ? '; ' : ', '}${value}`;
  });
  return environ;
}
