/**
 * Typed errors of the HTTP layer.
 *
 * - {@link HTTPError}: an error that carries the HTTP `status` it answers
 *   with (as Hono's `HTTPException`), plus a stable `code`.
 * - {@link HTTPParseError}: the request parser (and the chunked decoder)
 *   refused the bytes: `status` is the 4xx/5xx to answer, `code` one of
 *   {@link ParseErrorCode}. After one, the connection must close.
 * - {@link InvalidHeaderError}: a header name or value given to `Headers`
 *   (or a reason phrase) would break the message framing (CR, LF, NUL, other
 *   control bytes, non-token name): response-splitting protection.
 * - {@link ParserStateError}: the parser was used against its contract
 *   (`execute` re-entered from one of its own callbacks).
 *
 * @module
 */

import { TorsionError } from '../../reactor/errors.js';

/** An error that answers with an HTTP status code. */
export class HTTPError extends TorsionError {
  /** The HTTP status code this error answers with (4xx or 5xx). */
  readonly status: number;

  constructor(
    status: number,
    message: string,
    code = 'TORSION_ERR_HTTP',
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
    this.status = status;
  }
}

/**
 * Every way the request parser refuses a message: `[status, code, message]`.
 * The codes are stable API (tests and channels branch on them); the messages
 * are for logs.
 */
export const PARSE_ERRORS = {
  // ---- request line
  INVALID_REQUEST_LINE: [
    400,
    'TORSION_ERR_HTTP_INVALID_REQUEST_LINE',
    'malformed request line (method SP request-target SP HTTP-version expected)',
  ],
  INVALID_METHOD: [400, 'TORSION_ERR_HTTP_INVALID_METHOD', 'invalid character in method'],
  METHOD_TOO_LONG: [
    400,
    'TORSION_ERR_HTTP_METHOD_TOO_LONG',
    'method longer than the request line limit',
  ],
  INVALID_TARGET: [400, 'TORSION_ERR_HTTP_INVALID_TARGET', 'invalid request-target'],
  URI_TOO_LONG: [414, 'TORSION_ERR_HTTP_URI_TOO_LONG', 'request line longer than the limit'],
  INVALID_VERSION: [400, 'TORSION_ERR_HTTP_INVALID_VERSION', 'missing or malformed HTTP version'],
  VERSION_NOT_SUPPORTED: [
    505,
    'TORSION_ERR_HTTP_VERSION_NOT_SUPPORTED',
    'HTTP version not supported',
  ],
  TOO_MANY_EMPTY_LINES: [
    400,
    'TORSION_ERR_HTTP_TOO_MANY_EMPTY_LINES',
    'too many empty lines before the request line',
  ],
  // ---- line endings
  BARE_CR: [400, 'TORSION_ERR_HTTP_BARE_CR', 'CR not followed by LF'],
  BARE_LF: [400, 'TORSION_ERR_HTTP_BARE_LF', 'line ended by LF without CR where CRLF is required'],
  // ---- field lines
  OBS_FOLD: [
    400,
    'TORSION_ERR_HTTP_OBS_FOLD',
    'line folding (obs-fold) or whitespace before a field line',
  ],
  WHITESPACE_BEFORE_COLON: [
    400,
    'TORSION_ERR_HTTP_WHITESPACE_BEFORE_COLON',
    'whitespace between a field name and its colon',
  ],
  EMPTY_HEADER_NAME: [400, 'TORSION_ERR_HTTP_EMPTY_HEADER_NAME', 'empty field name'],
  INVALID_HEADER_NAME: [
    400,
    'TORSION_ERR_HTTP_INVALID_HEADER_NAME',
    'invalid character in a field name',
  ],
  MISSING_COLON: [400, 'TORSION_ERR_HTTP_MISSING_COLON', 'field line without a colon'],
  INVALID_HEADER_VALUE: [
    400,
    'TORSION_ERR_HTTP_INVALID_HEADER_VALUE',
    'NUL or control character in a field value',
  ],
  HEADERS_TOO_LARGE: [
    431,
    'TORSION_ERR_HTTP_HEADERS_TOO_LARGE',
    'header section larger than the limit',
  ],
  TOO_MANY_HEADERS: [431, 'TORSION_ERR_HTTP_TOO_MANY_HEADERS', 'more header fields than the limit'],
  // ---- Host
  MISSING_HOST: [400, 'TORSION_ERR_HTTP_MISSING_HOST', 'HTTP/1.1 request without a Host header'],
  DUPLICATE_HOST: [400, 'TORSION_ERR_HTTP_DUPLICATE_HOST', 'more than one Host header'],
  INVALID_HOST: [400, 'TORSION_ERR_HTTP_INVALID_HOST', 'invalid Host header value'],
  // ---- framing
  INVALID_CONTENT_LENGTH: [
    400,
    'TORSION_ERR_HTTP_INVALID_CONTENT_LENGTH',
    'Content-Length is not a non-negative decimal integer within 2^53 - 1',
  ],
  CONFLICTING_CONTENT_LENGTH: [
    400,
    'TORSION_ERR_HTTP_CONFLICTING_CONTENT_LENGTH',
    'differing Content-Length values',
  ],
  CONTENT_LENGTH_WITH_TRANSFER_ENCODING: [
    400,
    'TORSION_ERR_HTTP_CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    'both Content-Length and Transfer-Encoding',
  ],
  CHUNKED_NOT_FINAL: [
    400,
    'TORSION_ERR_HTTP_CHUNKED_NOT_FINAL',
    'Transfer-Encoding does not end with chunked exactly once',
  ],
  UNSUPPORTED_TRANSFER_CODING: [
    501,
    'TORSION_ERR_HTTP_UNSUPPORTED_TRANSFER_CODING',
    'unsupported transfer coding',
  ],
  TRANSFER_ENCODING_HTTP10: [
    400,
    'TORSION_ERR_HTTP_TRANSFER_ENCODING_HTTP10',
    'Transfer-Encoding in an HTTP/1.0 request',
  ],
  CONNECT_WITH_BODY: [400, 'TORSION_ERR_HTTP_CONNECT_WITH_BODY', 'CONNECT request with content'],
  BODY_TOO_LARGE: [413, 'TORSION_ERR_HTTP_BODY_TOO_LARGE', 'request body larger than the limit'],
  // ---- chunked coding
  INVALID_CHUNK_SIZE: [400, 'TORSION_ERR_HTTP_INVALID_CHUNK_SIZE', 'invalid chunk size line'],
  CHUNK_SIZE_TOO_LARGE: [
    400,
    'TORSION_ERR_HTTP_CHUNK_SIZE_TOO_LARGE',
    'chunk size over 16 hex digits or 2^53 - 1',
  ],
  INVALID_CHUNK_EXTENSION: [
    400,
    'TORSION_ERR_HTTP_INVALID_CHUNK_EXTENSION',
    'control character in a chunk extension',
  ],
  CHUNK_EXTENSION_TOO_LONG: [
    400,
    'TORSION_ERR_HTTP_CHUNK_EXTENSION_TOO_LONG',
    'chunk extension longer than the limit',
  ],
  MISSING_CHUNK_CRLF: [
    400,
    'TORSION_ERR_HTTP_MISSING_CHUNK_CRLF',
    'chunk data not followed by CRLF',
  ],
  TRAILERS_TOO_LARGE: [
    431,
    'TORSION_ERR_HTTP_TRAILERS_TOO_LARGE',
    'trailer section larger than the limit',
  ],
  TOO_MANY_TRAILERS: [
    431,
    'TORSION_ERR_HTTP_TOO_MANY_TRAILERS',
    'more trailer fields than the limit',
  ],
} as const satisfies Record<string, readonly [number, string, string]>;

/** The kind of a parse failure: a key of {@link PARSE_ERRORS}. */
export type ParseErrorKind = keyof typeof PARSE_ERRORS;

/** The stable `code` of an {@link HTTPParseError}. */
export type ParseErrorCode = (typeof PARSE_ERRORS)[ParseErrorKind][1];

/**
 * The parser refused a request: answer `status` and close the connection
 * without reading on. `kind` names the rule, `code` is its stable
 * `TORSION_ERR_HTTP_*` code.
 */
export class HTTPParseError extends HTTPError {
  /** Which rule was broken (a key of {@link PARSE_ERRORS}). */
  readonly kind: ParseErrorKind;
  declare readonly code: ParseErrorCode;

  constructor(kind: ParseErrorKind, detail?: string) {
    const [status, code, message] = PARSE_ERRORS[kind];
    super(status, detail === undefined ? message : `${message}: ${detail}`, code);
    this.kind = kind;
  }
}

/**
 * A header name or value (or a status reason phrase) that cannot be written
 * safely: a name that is not an RFC 9110 token, or a value with CR, LF, NUL,
 * another control byte than HTAB, or a character above U+00FF.
 */
export class InvalidHeaderError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_HTTP_INVALID_HEADER');
  }
}

/** The parser was used against its contract (e.g. `execute` re-entered from its own callback). */
export class ParserStateError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_HTTP_PARSER_STATE');
  }
}

/** The response declared a `Content-Length` and `write` would go past it (nothing is written). */
export class ContentLengthMismatch extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_HTTP_CONTENT_LENGTH_MISMATCH');
  }
}
