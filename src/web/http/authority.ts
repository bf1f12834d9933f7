/**
 * The host a request was made to, from its request-target or its `Host`
 * field: the authority of an absolute-form target
 * ({@link targetAuthority}), an authority's host with its port removed,
 * for a URL ({@link authorityHost}: IPv6 literals keep their brackets) or
 * as a bare name ({@link authorityHostname}: `[::1]:8080` gives `::1`).
 *
 * RFC 9112 §3.2.2: a server that receives an absolute-form target uses its
 * authority and ignores the `Host` field.
 *
 * @module
 */

/**
 * The authority of an absolute-form request-target (`http://host:8080/p?q`
 * gives `host:8080`), or `null` for an origin-form (`/p`), asterisk-form or
 * authority-form (`host:443`, CONNECT) target.
 */
export function targetAuthority(uri: string): string | null {
  if (uri.charCodeAt(0) === 0x2f) return null;
  const scheme = uri.indexOf('://');
  if (scheme === -1) return null;
  const start = scheme + 3;
  let end = start;
  while (end < uri.length) {
    const c = uri.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break; // '/' or '?': the path or the query
    end++;
  }
  return uri.slice(start, end);
}

/**
 * The host of an authority (`host[:port]`, after a `userinfo@` if any) with
 * its port removed; an IPv6 literal keeps its brackets (`[::1]:8080` gives
 * `[::1]`), as a URL or a CGI `SERVER_NAME` writes it.
 */
export function authorityHost(authority: string): string {
  const at = authority.lastIndexOf('@');
  const hostport = at === -1 ? authority : authority.slice(at + 1);
  if (hostport.charCodeAt(0) === 0x5b) {
    const close = hostport.indexOf(']');
    return close === -1 ? hostport : hostport.slice(0, close + 1);
  }
  const colon = hostport.indexOf(':');
  return colon === -1 ? hostport : hostport.slice(0, colon);
}

/**
 * The host name of an authority, as {@link authorityHost} but an IPv6
 * literal without its brackets (`[::1]:8080` gives `::1`): what Twisted's
 * `getRequestHostname` returns.
 */
export function authorityHostname(authority: string): string {
  const host = authorityHost(authority);
  return host.charCodeAt(0) === 0x5b && host.charCodeAt(host.length - 1) === 0x5d
    ? host.slice(1, -1)
    : host;
}
