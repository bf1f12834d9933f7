/**
 * HTTP status codes: reason phrases (RFC 9110 §15 plus the registered
 * extensions servers commonly send) and status lines built once per code.
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import { InvalidHeaderError } from './errors.js';
import { isFieldValue } from './headers.js';

/** Status code → reason phrase, from the IANA HTTP Status Code Registry. */
export const STATUS_CODES: Readonly<Record<number, string>> = Object.freeze({
  100: 'Continue',
  101: 'Switching Protocols',
  102: 'Processing',
  103: 'Early Hints',
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  203: 'Non-Authoritative Information',
  204: 'No Content',
  205: 'Reset Content',
  206: 'Partial Content',
  207: 'Multi-Status',
  208: 'Already Reported',
  226: 'IM Used',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  305: 'Use Proxy',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  417: 'Expectation Failed',
  418: "I'm a Teapot",
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  423: 'Locked',
  424: 'Failed Dependency',
  425: 'Too Early',
  426: 'Upgrade Required',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  451: 'Unavailable For Legal Reasons',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  506: 'Variant Also Negotiates',
  507: 'Insufficient Storage',
  508: 'Loop Detected',
  510: 'Not Extended',
  511: 'Network Authentication Required',
});

/**
 * The reason phrase of `code`: its registered phrase, else a generic one for
 * its class (`"Success"` for an unregistered 2xx…), else `"Unknown"`.
 */
export function reasonPhrase(code: number): string {
  const known = STATUS_CODES[code];
  if (known !== undefined) return known;
  switch (Math.floor(code / 100)) {
    case 1:
      return 'Informational';
    case 2:
      return 'Success';
    case 3:
      return 'Redirection';
    case 4:
      return 'Client Error';
    case 5:
      return 'Server Error';
    default:
      return 'Unknown';
  }
}

/** Whether a response with this status never has content (1xx, 204, 304: RFC 9110 §6.4.1). */
export function statusHasNoBody(code: number): boolean {
  return code < 200 || code === 204 || code === 304;
}

const textCache = new Map<number, string>();
const bufferCache = new Map<number, Buffer>();

function checkStatus(code: number, reason: string | undefined): void {
  if (!Number.isInteger(code) || code < 100 || code > 999) {
    throw new InvalidArgumentError(`status code must be an integer from 100 to 999, got ${code}`);
  }
  if (reason !== undefined && (typeof reason !== 'string' || !isFieldValue(reason))) {
    throw new InvalidHeaderError(`invalid reason phrase ${JSON.stringify(reason)}`);
  }
}

/**
 * The status line `"HTTP/1.x CODE REASON\r\n"` as a (latin1) string. Without
 * `reason` the registered phrase is used and the string is cached per
 * `(version, code)`.
 *
 * @param version - the minor version written: `'1.1'` (default) or `'1.0'`.
 * @throws InvalidArgumentError if `code` is not an integer in 100–999.
 * @throws InvalidHeaderError if `reason` has CR, LF or another control byte.
 */
export function statusLineText(
  code: number,
  reason?: string,
  version: '1.0' | '1.1' = '1.1',
): string {
  if (reason === undefined) {
    const key = version === '1.1' ? code : -code;
    const cached = textCache.get(key);
    if (cached !== undefined) return cached;
    checkStatus(code, reason);
    const line = `HTTP/${version} ${code} ${reasonPhrase(code)}\r\n`;
    textCache.set(key, line);
    return line;
  }
  checkStatus(code, reason);
  return `HTTP/${version} ${code} ${reason}\r\n`;
}

/**
 * {@link statusLineText} as a Buffer. Without `reason` the Buffer is cached
 * per `(version, code)` and shared: do not modify it.
 *
 * @throws InvalidArgumentError if `code` is not an integer in 100–999.
 * @throws InvalidHeaderError if `reason` has CR, LF or another control byte.
 */
export function statusLine(code: number, reason?: string, version: '1.0' | '1.1' = '1.1'): Buffer {
  if (reason === undefined) {
    const key = version === '1.1' ? code : -code;
    const cached = bufferCache.get(key);
    if (cached !== undefined) return cached;
    const line = Buffer.from(statusLineText(code, undefined, version), 'latin1');
    bufferCache.set(key, line);
    return line;
  }
  return Buffer.from(statusLineText(code, reason, version), 'latin1');
}
