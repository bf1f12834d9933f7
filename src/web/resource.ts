/**
 * The resource tree (Twisted's `twisted.web.resource`): {@link Resource} with
 * its children and per-method rendering, the traversal the site performs
 * ({@link getChildForRequest}), and the stock resources {@link ErrorPage},
 * {@link NoResource}, {@link ForbiddenResource}, {@link Redirect} and
 * {@link Data}.
 *
 * How a request is answered: the site sets `request.prepath = []` and
 * `request.postpath` to the decoded segments of the path after the first
 * `/` (`/` → `['']`, `/a/b/` → `['a', 'b', '']`), walks the tree with
 * {@link getChildForRequest}, then calls `render(request)` on the resource it
 * reached. `render` returns the body (bytes or a string: the site sets
 * `Content-Length`, writes and finishes), a Promise or Deferred of it, or
 * {@link NOT_DONE_YET} when the resource writes and finishes the request
 * itself. A throw or rejection gives a 500, unless the error is an
 * {@link HTTPException} (see `./errors.ts`), which answers its own status.
 *
 * @module
 */

import { InvalidArgumentError } from '../reactor/errors.js';
import { errorPageBody } from './errors.js';
import { isFieldValue } from './http/headers.js';
import type { IRequest, IResource, RenderResult } from './iweb.js';

export { HTTPException } from './errors.js';
export type { IRequest, IResource, RenderResult } from './iweb.js';
export { NOT_DONE_YET } from './iweb.js';

/** A `render_GET`-style handler: renders one method of a resource. */
export type RenderMethod = (request: IRequest) => RenderResult;

/**
 * Only method names of this shape are looked up as `render_<METHOD>`: an
 * uppercase token. The method comes from the client, so nothing it sends may
 * reach another property (`render_constructor`, `render___proto__`).
 */
const HANDLER_METHOD = /^[A-Z][A-Z0-9_-]*$/;

/** `render_<METHOD>` names of the common methods, built once (not a cache: clients choose methods). */
const HANDLER_NAMES: ReadonlyMap<string, string> = new Map(
  ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].map((m) => [m, `render_${m}`]),
);

/** The `render_<METHOD>` property name for `method`, or `null` if `method` may not be looked up. */
function handlerName(method: string): string | null {
  const known = HANDLER_NAMES.get(method);
  if (known !== undefined) return known;
  return HANDLER_METHOD.test(method) ? `render_${method}` : null;
}

/** The handler `render_<METHOD>` of `resource`, if it has a function there. */
function findHandler(resource: object, method: string): RenderMethod | null {
  const name = handlerName(method);
  if (name === null) return null;
  const fn = (resource as Record<string, unknown>)[name];
  return typeof fn === 'function' ? (fn as RenderMethod) : null;
}

/** Whether `value` looks like an {@link IResource} (checked at `putChild`). */
function isResource(value: unknown): value is IResource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as IResource).render === 'function' &&
    typeof (value as IResource).getChildWithDefault === 'function'
  );
}

/**
 * A node of the resource tree (Twisted's `Resource`).
 *
 * Children: {@link putChild} registers a child under one decoded path
 * segment; {@link getChildWithDefault} returns a registered child first and
 * otherwise asks {@link getChild}, which subclasses override to make
 * children dynamically (the default answers 404).
 *
 * Rendering: the default {@link render} calls the method `render_<METHOD>`
 * of the object (`render_GET`, `render_POST`, `render_PUT`…, defined by the
 * subclass, looked up only for uppercase token methods). `HEAD` uses
 * `render_HEAD` if there is one, else `render_GET` (the channel sends the
 * headers, with the `Content-Length` of the GET body, and no body). A method
 * without a handler answers `405 Method Not Allowed` with an `Allow` header
 * listing {@link allowedMethods}.
 *
 * @example
 * ```ts
 * class Hello extends Resource {
 *   override isLeaf = true;
 *   render_GET(request: IRequest) {
 *     request.setHeader('Content-Type', 'text/plain');
 *     return 'Hello, world!\n';
 *   }
 * }
 * const root = new Resource();
 * root.putChild('', new Hello());
 * ```
 */
export class Resource implements IResource {
  /**
   * A leaf renders every path below it itself: traversal stops at it and the
   * rest of the path stays in `request.postpath`. Default `false`.
   */
  isLeaf = false;

  readonly #children = new Map<string, IResource>();

  /** The registered children, by segment (a read-only view). */
  get children(): ReadonlyMap<string, IResource> {
    return this.#children;
  }

  /**
   * Registers `child` under the path segment `name` (decoded: `'a b'`, not
   * `'a%20b'`), replacing an earlier child of that name. `''` is the child
   * for a trailing slash: `/dir/` reaches `dir`'s `''` child, and the root's
   * `''` child answers `/`.
   *
   * @throws InvalidArgumentError if `name` is not a string or contains `/`,
   *   or if `child` is not a resource.
   */
  putChild(name: string, child: IResource): void {
    if (typeof name !== 'string' || name.includes('/')) {
      throw new InvalidArgumentError(
        `putChild: a child's name is one path segment (no "/"), got ${JSON.stringify(name)}`,
      );
    }
    if (!isResource(child)) {
      throw new InvalidArgumentError('putChild: child must be a resource');
    }
    this.#children.set(name, child);
  }

  /**
   * The child for `name` when none is registered under it: subclasses
   * override this to make children dynamically. Called by
   * {@link getChildWithDefault} only. The default is a {@link NoResource}
   * (404).
   */
  getChild(_name: string, _request: IRequest): IResource {
    return new NoResource('No such child resource.');
  }

  /** The registered child `name` if there is one, else {@link getChild}`(name, request)`. */
  getChildWithDefault(name: string, request: IRequest): IResource {
    const child = this.#children.get(name);
    return child !== undefined ? child : this.getChild(name, request);
  }

  /**
   * The methods this resource answers: each `render_<METHOD>` found on the
   * object and its prototypes (up to `Resource`), in the order found, plus
   * `HEAD` when there is a `render_GET`. Used for the `Allow` header of a 405.
   * Override it (a getter) to announce something else.
   */
  get allowedMethods(): string[] {
    const found: string[] = [];
    for (
      let o: object | null = this;
      o !== null && o !== Resource.prototype && o !== Object.prototype;
      o = Object.getPrototypeOf(o) as object | null
    ) {
      for (const key of Object.getOwnPropertyNames(o)) {
        if (!key.startsWith('render_')) continue;
        const method = key.slice(7);
        if (!HANDLER_METHOD.test(method) || found.includes(method)) continue;
        if (typeof (this as unknown as Record<string, unknown>)[key] !== 'function') continue;
        found.push(method);
      }
    }
    if (found.includes('GET') && !found.includes('HEAD')) found.push('HEAD');
    return found;
  }

  /**
   * Renders `request` with `render_<request.method>` (see the class
   * documentation): its result is returned as it is. Without a handler: a
   * 405 page, with `Allow`.
   *
   * @throws whatever the handler throws (the site answers 500, or the
   *   status of an `HTTPException`).
   */
  render(request: IRequest): RenderResult {
    const method = request.method;
    let handler = findHandler(this, method);
    if (handler === null && method === 'HEAD') handler = findHandler(this, 'GET');
    if (handler !== null) return handler.call(this, request);
    return this.renderNotAllowed(request);
  }

  /** Answers a method without a handler: 405, `Allow`, and a short HTML page. */
  protected renderNotAllowed(request: IRequest): RenderResult {
    const allowed = this.allowedMethods;
    const list = allowed.join(', ');
    request.setHeader('Allow', list);
    const detail =
      allowed.length === 0
        ? `The method "${request.method}" is not allowed here (no method is).`
        : `Your browser approached me (at ${request.uri}) with the method "${request.method}". ` +
          `I only allow the method${allowed.length === 1 ? '' : 's'} ${list} here.`;
    return new ErrorPage(405, 'Method Not Allowed', detail).render(request);
  }
}

/**
 * Walks the tree from `resource` along `request.postpath` (Twisted's
 * `getChildForRequest`): while the postpath is not empty and the current
 * resource is not a leaf, the first segment moves from `postpath` to the end
 * of `prepath` and the resource becomes its `getChildWithDefault(segment,
 * request)`. Returns the resource reached; `postpath` then holds what a leaf
 * left untraversed. `postpath` is read anew each step (a `getChild` may
 * replace it).
 */
export function getChildForRequest(resource: IResource, request: IRequest): IResource {
  while (request.postpath.length > 0 && !resource.isLeaf) {
    const segment = request.postpath.shift()!;
    request.prepath.push(segment);
    resource = resource.getChildWithDefault(segment, request);
  }
  return resource;
}

/**
 * A page for an error (Twisted's `ErrorPage`): renders any method with
 * status `status`, `Content-Type: text/html; charset=utf-8`, and a small page
 * with `brief` as its title and heading and `detail` as its text, both
 * HTML-escaped. Every child of it is itself.
 */
export class ErrorPage extends Resource {
  /**
   * @param status - the response code (100–999).
   * @throws InvalidArgumentError for a status that is not an integer from 100 to 999.
   */
  constructor(
    readonly status: number,
    readonly brief: string,
    readonly detail: string,
  ) {
    super();
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new InvalidArgumentError(`ErrorPage: invalid status ${String(status)}`);
    }
  }

  override render(request: IRequest): RenderResult {
    request.setResponseCode(this.status);
    request.setHeader('Content-Type', 'text/html; charset=utf-8');
    return errorPageBody(this.status, this.brief, this.detail);
  }

  override getChild(_name: string, _request: IRequest): IResource {
    return this;
  }
}

/** 404 (Twisted's `NoResource`). */
export class NoResource extends ErrorPage {
  constructor(message = 'Sorry. No luck finding that resource.') {
    super(404, 'No Such Resource', message);
  }
}

/** 403 (Twisted's `ForbiddenResource`). */
export class ForbiddenResource extends ErrorPage {
  constructor(message = 'Sorry, resource is forbidden.') {
    super(403, 'Forbidden Resource', message);
  }
}

/** The status codes {@link Redirect} accepts. */
export type RedirectStatus = 301 | 302 | 303 | 307 | 308;

/**
 * Redirects every request to `url` (Twisted's `twisted.web.util.Redirect`):
 * status `code` (default 302 Found), `Location: url`, and a tiny HTML page
 * with a refresh and a link. A leaf: paths below it redirect too.
 */
export class Redirect extends Resource {
  override isLeaf = true;

  /**
   * @param url - sent as it is in `Location` (relative or absolute).
   * @param code - 301, 302 (default), 303, 307 or 308.
   * @throws InvalidArgumentError for another code, or a `url` that cannot be
   *   a header value (CR, LF, NUL, other control characters, or characters
   *   above U+00FF: percent-encode them).
   */
  constructor(
    readonly url: string,
    readonly code: RedirectStatus = 302,
  ) {
    super();
    if (![301, 302, 303, 307, 308].includes(code)) {
      throw new InvalidArgumentError(`Redirect: code must be 301, 302, 303, 307 or 308`);
    }
    if (typeof url !== 'string' || url === '' || !isFieldValue(url)) {
      throw new InvalidArgumentError(`Redirect: invalid URL ${JSON.stringify(url)}`);
    }
  }

  override render(request: IRequest): RenderResult {
    request.setResponseCode(this.code);
    request.setHeader('Location', this.url);
    request.setHeader('Content-Type', 'text/html; charset=utf-8');
    const u = escapeAttr(this.url);
    return `<!DOCTYPE html>
<html>
  <head><meta http-equiv="refresh" content="0;URL=${u}"></head>
  <body><a href="${u}">click here</a></body>
</html>
`;
  }

  override getChild(_name: string, _request: IRequest): IResource {
    return this;
  }
}

function escapeAttr(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/"/g, '&quot;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}

/**
 * Fixed bytes with a Content-Type (Twisted's `static.Data`): `GET` (and so
 * `HEAD`) answers 200 with `body`; other methods 405.
 */
export class Data extends Resource {
  /** The body sent (strings are stored as UTF-8). Shared between responses: do not modify. */
  readonly body: Buffer;

  /**
   * @param body - the bytes to serve (a string is encoded as UTF-8 once).
   * @param contentType - the `Content-Type` header value.
   * @throws InvalidArgumentError if `contentType` is not a valid header value.
   */
  constructor(
    body: Uint8Array | string,
    readonly contentType: string,
  ) {
    super();
    if (typeof contentType !== 'string' || !isFieldValue(contentType)) {
      throw new InvalidArgumentError(`Data: invalid content type ${JSON.stringify(contentType)}`);
    }
    this.body =
      typeof body === 'string'
        ? Buffer.from(body, 'utf8')
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }

  render_GET(request: IRequest): RenderResult {
    request.setHeader('Content-Type', this.contentType);
    return this.body;
  }
}
