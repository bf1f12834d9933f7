/**
 * {@link WebSocketRequestInfo}: what a WebSocket protocol knows of the
 * opening handshake it came from (path, query, headers, cookies, addresses,
 * the chosen subprotocol). A plain value: it holds no reference to the HTTP
 * request or channel, which are gone once the connection is upgraded.
 *
 * @module
 */

import type { IAddress } from '../../reactor/interfaces.js';
import type { Headers } from '../http/headers.js';

/** The fields of a {@link WebSocketRequestInfo}. */
export interface WebSocketRequestInit {
  /** The request-target as sent, e.g. `'/chat?room=a'`. */
  readonly uri: string;
  /** The path part of `uri`, still percent-encoded. */
  readonly path: string;
  /** The query arguments: each name to its values, in order. */
  readonly args: ReadonlyMap<string, string[]>;
  /** The handshake request's header fields. */
  readonly headers: Headers;
  /** Path segments traversed to reach the resource (server side; `[]` on the client). */
  readonly prepath?: readonly string[];
  /** Path segments below the resource (server side; `[]` on the client). */
  readonly postpath?: readonly string[];
  /** The remote end's address. */
  readonly peer: IAddress;
  /** This end's address. */
  readonly host: IAddress;
  /** Whether the connection is TLS (`wss:`). */
  readonly secure: boolean;
  /** The subprotocol agreed on, `''` if none. */
  readonly subprotocol: string;
  /** The headers of the server's `101` answer (client side), or `null` (server side). */
  readonly responseHeaders?: Headers | null;
}

const NO_SEGMENTS: readonly string[] = Object.freeze([]);

/**
 * The opening handshake of one WebSocket connection, as its protocol sees it
 * (`protocol.request`). On the server it describes the client's upgrade
 * request; on the client (`connectWS`), the request this side sent, plus the
 * server's answer in {@link responseHeaders}.
 */
export class WebSocketRequestInfo {
  /** The request-target as sent, e.g. `'/chat?room=a'`. */
  readonly uri: string;
  /** The path part of {@link uri}, still percent-encoded. */
  readonly path: string;
  /** The query arguments: each name to its values, in order (`+` is a space). */
  readonly args: ReadonlyMap<string, string[]>;
  /** The handshake request's header fields (do not modify them). */
  readonly headers: Headers;
  /** Path segments (decoded) traversed to reach the `WebSocketResource`; `[]` on the client. */
  readonly prepath: readonly string[];
  /** Path segments (decoded) below the `WebSocketResource` (it is a leaf); `[]` on the client. */
  readonly postpath: readonly string[];
  /** The remote end's address. */
  readonly peer: IAddress;
  /** This end's address. */
  readonly host: IAddress;
  /** Whether the connection is TLS. */
  readonly secure: boolean;
  /** The subprotocol agreed on in the handshake, `''` if none. */
  readonly subprotocol: string;
  /** The server's `101` answer's headers (client side only; `null` on the server). */
  readonly responseHeaders: Headers | null;

  #cookies: Map<string, string> | null = null;

  constructor(init: WebSocketRequestInit) {
    this.uri = init.uri;
    this.path = init.path;
    this.args = init.args;
    this.headers = init.headers;
    this.prepath = init.prepath ?? NO_SEGMENTS;
    this.postpath = init.postpath ?? NO_SEGMENTS;
    this.peer = init.peer;
    this.host = init.host;
    this.secure = init.secure;
    this.subprotocol = init.subprotocol;
    this.responseHeaders = init.responseHeaders ?? null;
  }

  /** The first value of request header `name` (case-insensitive; repeated lines joined with `", "`), or `null`. */
  getHeader(name: string): string | null {
    return this.headers.get(name);
  }

  /** The value of the request cookie `name` (RFC 6265 `Cookie` header; parsed on first use), or `null`. */
  getCookie(name: string): string | null {
    this.#cookies ??= parseCookieHeaders(this.headers.getAll('cookie'));
    return this.#cookies.get(name) ?? null;
  }
}

/** `name=value` pairs of `Cookie` header values; the first of a repeated name wins; quotes dropped. */
function parseCookieHeaders(values: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const header of values) {
    let start = 0;
    while (start < header.length) {
      let end = header.indexOf(';', start);
      if (end === -1) end = header.length;
      const eq = header.indexOf('=', start);
      if (eq !== -1 && eq < end) {
        const name = header.slice(start, eq).trim();
        let value = header.slice(eq + 1, end).trim();
        if (value.length >= 2 && value.charCodeAt(0) === 0x22 && value.endsWith('"')) {
          value = value.slice(1, -1);
        }
        if (name !== '' && !out.has(name)) out.set(name, value);
      }
      start = end + 1;
    }
  }
  return out;
}
