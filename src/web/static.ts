/**
 * {@link File}: serves a file or a directory tree (Twisted's
 * `twisted.web.static.File`): MIME types from `mime-types`, index files and
 * directory listings, `ETag`/`Last-Modified` and conditional requests,
 * single and multiple byte ranges, bodies streamed from the file under flow
 * control, and no way out of the served root.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { closeSync, constants, fstat, open } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import mime from 'mime-types';
import { InvalidArgumentError } from '../reactor/errors.js';
import type { Failure } from '../reactor/failure.js';
import { err } from '../reactor/log.js';
import { errorPageBody, escapeHTML } from './errors.js';
import { isFieldValue } from './http/headers.js';
import type { IRequest, IResource, RenderResult } from './iweb.js';
import { NOT_DONE_YET } from './iweb.js';
import { NoResource, Resource } from './resource.js';
import { readListing, renderListing } from './static-listing.js';
import { isSafeSegment, isWithin, slashLocation } from './static-paths.js';
import type { BodySegment } from './static-producer.js';
import { DEFAULT_CHUNK_SIZE, FileBodyProducer, TRANSFER_FAILED } from './static-producer.js';
import {
  contentRange,
  DEFAULT_MAX_RANGES,
  parseRange,
  planMultipart,
  RANGE_SATISFIABLE,
  RANGE_UNSATISFIABLE,
  rangeLength,
  unsatisfiedRange,
} from './static-ranges.js';
import type { Validators } from './static-validators.js';
import {
  evaluatePreconditions,
  fileETag,
  formatETag,
  formatHttpDate,
  ifRangeMatches,
  NOT_MODIFIED,
  PRECONDITION_FAILED,
} from './static-validators.js';

const openFd = promisify(open);
const fstatFd = promisify(fstat) as unknown as (
  fd: number,
  options: { bigint: true },
) => Promise<BigIntStats>;

/** Options of {@link File}. */
export interface FileOptions {
  /** Content-Type of files whose type `mime-types` does not know (default `application/octet-stream`). */
  defaultType?: string;
  /**
   * Files served for a directory requested with a trailing slash, tried in
   * order (default `['index.html']`). Each is one path segment.
   */
  indexNames?: readonly string[];
  /** Without an index file: list the directory (default `true`) or answer 403. */
  allowListing?: boolean;
  /**
   * Serve through symlinks whose target lies outside the root (default
   * `false`: such a path answers 404 and is left out of listings). Symlinks
   * inside the root are always followed.
   */
  followSymlinks?: boolean;
  /**
   * Extensions tried when a requested name does not exist (Twisted's
   * `ignoredExts`): with `['.html']`, `/about` serves `about.html`.
   */
  ignoreExts?: readonly string[];
  /**
   * Content-Type overrides by extension (`{ '.md': 'text/markdown; charset=utf-8' }`),
   * matched case-insensitively; used as given.
   */
  contentTypes?: Readonly<Record<string, string>>;
  /**
   * The `ETag` sent: `'strong'` (default; `"size-mtime"`, so `If-Range`
   * with it works), `'weak'` (`W/"size-mtime"`) or `false` (none).
   */
  etag?: 'strong' | 'weak' | false;
  /** More range specs than this in one `Range` header: the header is ignored (default 100). */
  maxRanges?: number;
  /** Bytes per file read while streaming (default 64 KiB). */
  chunkSize?: number;
}

interface Settings {
  readonly defaultType: string;
  readonly indexNames: readonly string[];
  readonly allowListing: boolean;
  readonly followSymlinks: boolean;
  readonly ignoreExts: readonly string[];
  readonly contentTypes: ReadonlyMap<string, string>;
  readonly etag: 'strong' | 'weak' | false;
  readonly maxRanges: number;
  readonly chunkSize: number;
}

/** What every File of one tree shares: the root and the settings. */
interface Root {
  /** The root as given, made absolute. */
  readonly path: string;
  readonly settings: Settings;
  /** The root's real path, once resolved (a failure is not kept: the root may appear later). */
  real: string | null;
}

function checkSettings(options: FileOptions): Settings {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('File: options must be an object');
  }
  const defaultType = options.defaultType ?? 'application/octet-stream';
  if (typeof defaultType !== 'string' || defaultType === '' || !isFieldValue(defaultType)) {
    throw new InvalidArgumentError(`File: invalid defaultType ${JSON.stringify(defaultType)}`);
  }
  const indexNames = [...(options.indexNames ?? ['index.html'])];
  for (const name of indexNames) {
    if (typeof name !== 'string' || !isSafeSegment(name)) {
      throw new InvalidArgumentError(`File: index name ${JSON.stringify(name)} is not one segment`);
    }
  }
  const ignoreExts = [...(options.ignoreExts ?? [])];
  for (const ext of ignoreExts) {
    if (typeof ext !== 'string' || !ext.startsWith('.') || !isSafeSegment(`x${ext}`)) {
      throw new InvalidArgumentError(`File: ignoreExts entry ${JSON.stringify(ext)}`);
    }
  }
  const contentTypes = new Map<string, string>();
  for (const [ext, type] of Object.entries(options.contentTypes ?? {})) {
    if (!ext.startsWith('.') || typeof type !== 'string' || type === '' || !isFieldValue(type)) {
      throw new InvalidArgumentError(
        `File: contentTypes entry ${JSON.stringify(ext)}: ${JSON.stringify(type)}`,
      );
    }
    contentTypes.set(ext.toLowerCase(), type);
  }
  const etag = options.etag ?? 'strong';
  if (etag !== 'strong' && etag !== 'weak' && etag !== false) {
    throw new InvalidArgumentError(`File: etag must be 'strong', 'weak' or false`);
  }
  const maxRanges = options.maxRanges ?? DEFAULT_MAX_RANGES;
  if (!Number.isInteger(maxRanges) || maxRanges < 1) {
    throw new InvalidArgumentError('File: maxRanges must be a positive integer');
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 16 * 1024 * 1024) {
    throw new InvalidArgumentError('File: chunkSize must be an integer from 1 to 16 MiB');
  }
  return {
    defaultType,
    indexNames,
    allowListing: options.allowListing ?? true,
    followSymlinks: options.followSymlinks ?? false,
    ignoreExts,
    contentTypes,
    etag,
    maxRanges,
    chunkSize,
  };
}

/** An fs error's code, or `''`. */
function errnoCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** Lookup failures that mean "no such thing here" (404), not a server fault. */
const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'EINVAL']);

const NOT_FOUND = 1;
const FORBIDDEN = 2;

/**
 * The response for an fs error met while looking up or opening a path:
 * 404 for a missing thing, 403 for a permission error; anything else is
 * rethrown (a 500).
 */
function lookupFailure(error: unknown): number {
  const code = errnoCode(error);
  if (NOT_FOUND_CODES.has(code)) return NOT_FOUND;
  if (code === 'EACCES' || code === 'EPERM') return FORBIDDEN;
  throw error;
}

/** One request being answered: watches for the connection going away meanwhile. */
class Exchange {
  lost = false;
  producer: FileBodyProducer | null = null;

  readonly onLost = (_reason: Failure): void => {
    this.lost = true;
    this.producer?.stopProducing();
  };
}

/**
 * A static file or directory tree (Twisted's `static.File`).
 *
 * Traversal: the site walks the request path through {@link getChild}; each
 * segment (decoded) names an entry of this File's directory. A segment that
 * is `.`, `..`, or holds `/`, `\` or NUL (sent raw or percent-encoded)
 * answers 404 at once; `''` (a trailing slash) stands for the directory
 * itself. No file system access happens during traversal: all of it is at
 * render time, where the target's real path must lie under the root's real
 * path (unless `followSymlinks`), or the answer is 404.
 *
 * Rendering (GET and HEAD; other methods 405 with `Allow: GET, HEAD`):
 * - a regular file: 200 with `Content-Type` (`mime-types`, `charset=utf-8`
 *   for text types, `contentTypes` overrides, else `defaultType`),
 *   `Content-Length`, `Last-Modified`, `ETag`, `Accept-Ranges: bytes`, the
 *   body streamed by a {@link FileBodyProducer}; conditionals answer 304 or
 *   412 (RFC 9110 §13.2.2); a GET with `Range` (and a matching `If-Range`)
 *   206 with one range or `multipart/byteranges`, 416 if unsatisfiable
 *   (policy in `./static-ranges.ts`); HEAD sends the GET's headers and no
 *   body (a `Range` is ignored for HEAD, as RFC 9110 §14.2 requires);
 * - a directory without a trailing slash: 301 to the same path with `/`
 *   (query kept);
 * - a directory with it: the first index file present, else a listing if
 *   `allowListing`, else 403;
 * - a file with a trailing slash, a missing path, a FIFO or device: 404;
 *   an unreadable one: 403.
 *
 * The real path of the root is resolved on the first request and kept.
 */
export class File extends Resource {
  /** The absolute file system path this resource stands for. */
  readonly path: string;
  #root: Root;
  /** Reached through a trailing slash (the `''` child): the directory itself. */
  #slash = false;

  /**
   * @param path - a file or directory (relative paths resolve against the
   *   current directory now). It need not exist yet.
   * @throws InvalidArgumentError for a path that is not a non-empty string
   *   without NUL, or invalid options.
   */
  constructor(path: string, options: FileOptions = {}) {
    super();
    if (typeof path !== 'string' || path === '' || path.includes('\0')) {
      throw new InvalidArgumentError(`File: invalid path ${JSON.stringify(path)}`);
    }
    this.path = resolve(path);
    this.#root = { path: this.path, settings: checkSettings(options), real: null };
  }

  /** The methods a File answers: `GET` and `HEAD`. */
  override get allowedMethods(): string[] {
    return ['GET', 'HEAD'];
  }

  /**
   * The File for entry `name` of this directory (not checked for existence
   * yet), this directory itself for `''`, or a 404 resource for a segment
   * that could leave the directory.
   */
  override getChild(name: string, _request: IRequest): IResource {
    if (name === '') {
      const self = this.#similar(this.path);
      self.#slash = true;
      return self;
    }
    if (!isSafeSegment(name)) return new NoResource('File not found.');
    return this.#similar(join(this.path, name));
  }

  /**
   * Makes the File for `path` below this one. Subclasses override it to
   * serve their own class; the child shares this File's root and settings
   * whatever this returns.
   */
  protected createSimilarFile(path: string): File {
    const Ctor = this.constructor as new (path: string, options?: FileOptions) => File;
    return new Ctor(path);
  }

  #similar(path: string): File {
    const child = this.createSimilarFile(path);
    child.#root = this.#root;
    return child;
  }

  /**
   * The Content-Type for a file named `name`: a `contentTypes` override by
   * extension, else what `mime-types` says (with `charset=utf-8` for text),
   * else `defaultType`.
   */
  protected contentTypeFor(name: string): string {
    const settings = this.#root.settings;
    if (settings.contentTypes.size > 0) {
      const override = settings.contentTypes.get(extname(name).toLowerCase());
      if (override !== undefined) return override;
    }
    const type = mime.contentType(basename(name));
    return type === false ? settings.defaultType : type;
  }

  /**
   * Answers GET and HEAD as the class documentation says (a Promise: the
   * file system is asked first), other methods with 405. The response is
   * written and finished by this File: a streamed body through a producer
   * registered on `request`, a 304/416/HEAD answer by `finish()`, pages as
   * bytes for the site to send. If the connection goes away meanwhile, an
   * opened file is closed and nothing more is written.
   */
  override render(request: IRequest): RenderResult {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return this.renderNotAllowed(request);
    }
    const exchange = new Exchange();
    request.notifyFinish().addErrback(exchange.onLost);
    return this.#serve(request, exchange);
  }

  async #serve(request: IRequest, exchange: Exchange): Promise<Body> {
    const settings = this.#root.settings;
    const rootReal = await this.#rootReal();
    if (rootReal === null) return notFound(request);
    let real: string;
    // The name the type is taken from: the one requested (a symlink's name,
    // not its target's), or the one found through `ignoreExts`.
    let name = basename(this.path);
    try {
      real = await realpath(this.path);
    } catch (error) {
      const kind = lookupFailure(error);
      const ext = kind === NOT_FOUND && !this.#slash ? await this.#withExtension() : null;
      if (ext === null) return errorFor(request, kind);
      real = ext.real;
      name += ext.ext;
    }
    if (!settings.followSymlinks && !isWithin(real, rootReal)) return notFound(request);
    let st: BigIntStats;
    try {
      st = await stat(real, { bigint: true });
    } catch (error) {
      return errorFor(request, lookupFailure(error));
    }
    if (st.isDirectory()) {
      if (!this.#slash) {
        const q = request.uri.indexOf('?');
        const query = q < 0 ? '' : request.uri.slice(q);
        return redirect(request, slashLocation(request.path, query));
      }
      return this.#serveDirectory(request, exchange, real, rootReal);
    }
    if (!st.isFile() || this.#slash) return notFound(request);
    return this.#serveFile(request, exchange, real, name);
  }

  /** The root's real path, resolved once; `null` if the root does not exist (now). */
  async #rootReal(): Promise<string | null> {
    const root = this.#root;
    if (root.real !== null) return root.real;
    try {
      root.real = await realpath(root.path);
    } catch (error) {
      lookupFailure(error);
      return null;
    }
    return root.real;
  }

  /** The first `this.path + ext` (of `ignoreExts`) that exists, with its real path, or `null`. */
  async #withExtension(): Promise<{ real: string; ext: string } | null> {
    for (const ext of this.#root.settings.ignoreExts) {
      try {
        return { real: await realpath(this.path + ext), ext };
      } catch (error) {
        lookupFailure(error);
      }
    }
    return null;
  }

  async #serveDirectory(
    request: IRequest,
    exchange: Exchange,
    dir: string,
    rootReal: string,
  ): Promise<Body> {
    const settings = this.#root.settings;
    for (const name of settings.indexNames) {
      let real: string;
      let st: BigIntStats;
      try {
        real = await realpath(join(dir, name));
        st = await stat(real, { bigint: true });
      } catch (error) {
        if (lookupFailure(error) === NOT_FOUND) continue;
        return forbidden(request);
      }
      if (!settings.followSymlinks && !isWithin(real, rootReal)) continue;
      if (st.isFile()) return this.#serveFile(request, exchange, real, name);
    }
    if (!settings.allowListing) return forbidden(request);
    let entries: Awaited<ReturnType<typeof readListing>>;
    try {
      entries = await readListing(dir, {
        followSymlinks: settings.followSymlinks,
        rootReal,
        typeOf: (name) => this.contentTypeFor(name),
      });
    } catch (error) {
      return errorFor(request, lookupFailure(error));
    }
    request.setHeader('Content-Type', 'text/html; charset=utf-8');
    return renderListing(request.path, entries, dir !== rootReal);
  }

  /**
   * Answers for the regular file at `real`, typed by `name`. Opens it first
   * (an unreadable file is 403 for HEAD and conditionals too, as for GET),
   * then takes size and times from the open descriptor, so the validators
   * describe the bytes that will be read.
   */
  async #serveFile(
    request: IRequest,
    exchange: Exchange,
    real: string,
    name: string,
  ): Promise<Body> {
    const settings = this.#root.settings;
    let fd: number;
    try {
      // O_NOFOLLOW: `real` has no symlinks left; one swapped in since is
      // refused. O_NONBLOCK: a FIFO swapped in since the stat must not block
      // a thread-pool thread in open() (no effect on regular files).
      fd = await openFd(
        real,
        constants.O_RDONLY |
          constants.O_NONBLOCK |
          (settings.followSymlinks ? 0 : constants.O_NOFOLLOW),
      );
    } catch (error) {
      return errorFor(request, lookupFailure(error));
    }
    let st: BigIntStats;
    try {
      st = await fstatFd(fd, { bigint: true });
    } catch (error) {
      closeFile(fd);
      throw error;
    }
    if (exchange.lost || !st.isFile()) {
      closeFile(fd);
      return exchange.lost ? NOT_DONE_YET : notFound(request);
    }
    const size = Number(st.size);
    const lastModifiedMs = Number(st.mtimeMs);
    // RFC 9110 §8.8.2.1: never announce a modification in the future.
    const nowMs = Date.now();
    const validators: Validators = {
      etag:
        settings.etag === false ? null : fileETag(st.size, st.mtimeNs, settings.etag === 'weak'),
      lastModified: Math.floor(Math.min(lastModifiedMs, nowMs) / 1000),
    };
    request.setHeader('Last-Modified', formatHttpDate(validators.lastModified * 1000));
    if (validators.etag !== null) request.setHeader('ETag', formatETag(validators.etag));
    request.setHeader('Accept-Ranges', 'bytes');

    const condition = evaluatePreconditions(request.requestHeaders, validators);
    if (condition !== 0) {
      closeFile(fd);
      if (condition === PRECONDITION_FAILED) {
        return errorPage(
          request,
          412,
          'Precondition Failed',
          'A precondition of the request failed.',
        );
      }
      request.setResponseCode(NOT_MODIFIED);
      request.finish();
      return NOT_DONE_YET;
    }

    const type = this.contentTypeFor(name);
    let segments: BodySegment[] = [{ head: null, offset: 0, length: size }];
    let length = size;
    const ranges = request.requestHeaders.getAll('range');
    if (
      request.method === 'GET' &&
      ranges.length === 1 &&
      ifRangeMatches(request.requestHeaders, validators)
    ) {
      const parsed = parseRange(ranges[0]!, size, settings.maxRanges);
      if (parsed.status === RANGE_UNSATISFIABLE) {
        closeFile(fd);
        request.setResponseCode(416);
        request.setHeader('Content-Range', unsatisfiedRange(size));
        request.setHeader('Content-Length', '0');
        request.finish();
        return NOT_DONE_YET;
      }
      if (parsed.status === RANGE_SATISFIABLE) {
        request.setResponseCode(206);
        if (parsed.ranges.length === 1) {
          const range = parsed.ranges[0]!;
          request.setHeader('Content-Range', contentRange(range, size));
          length = rangeLength(range);
          segments = [{ head: null, offset: range.first, length }];
        } else {
          const plan = planMultipart(parsed.ranges, size, type, randomBytes(12).toString('hex'));
          segments = plan.parts.map((p) => ({
            head: p.head,
            offset: p.range.first,
            length: rangeLength(p.range),
          }));
          segments.push({ head: plan.trailer, offset: 0, length: 0 });
          length = plan.length;
          request.setHeader('Content-Type', plan.contentType);
        }
      }
    }
    if (!request.responseHeaders.has('content-type')) request.setHeader('Content-Type', type);
    request.setHeader('Content-Length', String(length));
    if (request.method === 'HEAD' || length === 0) {
      closeFile(fd);
      request.finish();
      return NOT_DONE_YET;
    }
    const producer = new FileBodyProducer(fd, request, segments, {
      chunkSize: settings.chunkSize,
      onEnd: (how) => {
        exchange.producer = null;
        if (how === TRANSFER_FAILED) abortRequest(request);
      },
    });
    exchange.producer = producer;
    producer.start();
    return NOT_DONE_YET;
  }
}

/** What a File's rendering resolves to. */
type Body = Uint8Array | string | typeof NOT_DONE_YET;

function errorPage(request: IRequest, status: number, brief: string, detail: string): Buffer {
  request.setResponseCode(status);
  request.setHeader('Content-Type', 'text/html; charset=utf-8');
  return errorPageBody(status, brief, detail);
}

function notFound(request: IRequest): Buffer {
  return errorPage(request, 404, 'No Such Resource', 'File not found.');
}

function forbidden(request: IRequest): Buffer {
  return errorPage(request, 403, 'Forbidden Resource', 'Sorry, resource is forbidden.');
}

function errorFor(request: IRequest, kind: number): Buffer {
  return kind === FORBIDDEN ? forbidden(request) : notFound(request);
}

/** 301 to `location` (a directory's URL with its slash), with a small HTML page. */
function redirect(request: IRequest, location: string): Buffer {
  request.setResponseCode(301);
  request.setHeader('Location', location);
  request.setHeader('Content-Type', 'text/html; charset=utf-8');
  const href = escapeHTML(location);
  return Buffer.from(
    `<!DOCTYPE html>\n<html><body><a href="${href}">${href}</a></body></html>\n`,
    'latin1',
  );
}

/**
 * Closes a file opened for reading. Synchronously, as the producer does: it
 * costs no I/O, and the descriptor is free before the response goes on.
 */
function closeFile(fd: number): void {
  try {
    closeSync(fd);
  } catch (error) {
    err(error, 'Closing a static file failed');
  }
}

/**
 * Ends a response that cannot honour its `Content-Length` (the file failed
 * or shrank mid-body): the connection must close so the client sees the
 * truncation instead of waiting for bytes that never come. `IRequest` has
 * no abort: this uses the request's channel (`request.channel.abortConnection()`,
 * as the site does for a failure after the head was sent) when there is one.
 */
function abortRequest(request: IRequest): void {
  const channel = (request as { channel?: { abortConnection?: () => void } }).channel;
  if (channel !== undefined && typeof channel.abortConnection === 'function') {
    channel.abortConnection();
  }
}
