/**
 * Cookies (RFC 6265): the `Set-Cookie` value a response sends
 * ({@link formatCookie}, strict: what it cannot send safely it refuses) and
 * the `Cookie` values a request carries ({@link parseCookies}, lenient).
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import type { CookieOptions } from '../iweb.js';
import { isToken } from './headers.js';

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
export function parseCookies(values: string[]): Map<string, string> {
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
