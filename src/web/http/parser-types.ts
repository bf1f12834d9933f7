/**
 * The request parser's contract: the {@link RequestHead} it delivers (and
 * {@link ParsedHead}, the one it makes), the {@link ParserHandler} it
 * reports to, and its {@link ParserOptions} limits. The parser itself is in
 * `parser.ts`, which re-exports the types.
 *
 * @module
 */

import type { HTTPParseError } from './errors.js';
import { decodeLatin1, type Headers, headersFromSource } from './headers.js';

/** How the request-target is written (RFC 9112 §3.2). */
export type TargetForm = 'origin' | 'absolute' | 'authority' | 'asterisk';

/** A parsed request head, with the message framing derived from it. */
export interface RequestHead {
  /** The method, case preserved (methods are case-sensitive), e.g. `'GET'`. */
  readonly method: string;
  /** The request-target exactly as sent (latin1-decoded), e.g. `'/a?b=c'`. */
  readonly target: string;
  /**
   * `'origin'` (`/path?query`), `'absolute'` (`scheme://authority/path`),
   * `'authority'` (`host:port`, CONNECT only) or `'asterisk'` (`*`, OPTIONS only).
   */
  readonly targetForm: TargetForm;
  /**
   * The HTTP version the request is processed as: `'1.0'`, or `'1.1'` for
   * HTTP/1.1 and any higher 1.x minor version (RFC 9110 §2.5).
   */
  readonly version: '1.0' | '1.1';
  /** The header fields, in order, raw casing kept. */
  readonly headers: Headers;
  /**
   * The body length from `Content-Length`, or `null` when the request has no
   * `Content-Length` (then the body is chunked, or empty).
   */
  readonly contentLength: number | null;
  /** Whether the body uses the chunked transfer coding. */
  readonly chunked: boolean;
  /**
   * Whether the connection may carry another request after this one:
   * HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
   * `Connection: keep-alive` (and no `close`). When `false`, the parser
   * reads nothing after this message ({@link RequestParser.finished}).
   */
  readonly keepAlive: boolean;
  /** HTTP/1.1 with `Expect: 100-continue` (RFC 9110 §10.1.1; ignored in HTTP/1.0). */
  readonly expectContinue: boolean;
  /**
   * HTTP/1.1 with an `Expect` member other than `100-continue` (compared
   * case-insensitively; `100-continue` with parameters counts as other):
   * an expectation this server cannot meet, which the channel answers with
   * 417 (RFC 9110 §10.1.1). Empty list members are ignored; ignored in
   * HTTP/1.0, as `100-continue` is.
   */
  readonly expectationFailed: boolean;
  /**
   * HTTP/1.1 with an `Upgrade` header and an `upgrade` connection option
   * (RFC 9110 §7.8). The parser pauses after such a message (and after a
   * CONNECT): see {@link RequestParser.execute}.
   */
  readonly upgrade: boolean;
}

/**
 * What a {@link RequestParser} reports to. Callbacks run synchronously
 * inside `execute`, in byte order, for one message at a time:
 * `onRequest`, then `onBody` zero or more times, then `onMessageComplete`;
 * and at most one `onError`, after which nothing else is called. A callback
 * may call `pause()`/`resume()` on the parser but not `execute`. If a
 * callback throws, the exception propagates out of `execute` and the parser
 * is finished (it reads nothing more).
 */
export interface ParserHandler {
  /**
   * A request head is complete; its body (if any) follows. The head may
   * keep a view of the Buffer given to `execute` until its `headers` are
   * first read (they are decoded then).
   */
  onRequest(head: RequestHead): void;
  /**
   * A piece of the current request's body, in order, never empty. `chunk` is
   * a view of the Buffer given to `execute` (not a copy): keep it only if
   * that Buffer is not reused.
   */
  onBody(chunk: Buffer): void;
  /**
   * The current request is complete (its whole body was delivered).
   * `trailers` holds the trailer fields of a chunked body, or is `null`
   * when there were none (and always for non-chunked bodies).
   */
  onMessageComplete(trailers: Headers | null): void;
  /**
   * The bytes broke a rule: answer `error.status` and close the connection.
   * Called once; the parser then reads nothing more.
   */
  onError(error: HTTPParseError): void;
}

/** Limits of a {@link RequestParser}; every one is optional. */
export interface ParserOptions {
  /** Longest request line, in bytes, without its CRLF. Longer → 414 (or 400 if the method alone is longer). Default 8 KiB. */
  maxRequestLineLength?: number;
  /** Largest header section, in bytes: every field line with its line ending, plus the final empty line. Default 64 KiB. Larger → 431. */
  maxHeaderSize?: number;
  /** Most header fields (field lines); also the most trailer fields. Default 100. More → 431. */
  maxHeaderCount?: number;
  /** Longest chunk extension (bytes between a chunk size and its CRLF). Default 4096. Longer → 400. */
  maxChunkExtensionLength?: number;
  /** Largest trailer section, in bytes (counted as the header section). Default 16 KiB. Larger → 431. */
  maxTrailerSize?: number;
  /**
   * Largest request body; `null` (default) for no limit. A larger
   * `Content-Length` → 413 before `onRequest`; a chunked body → 413 at the
   * size line that crosses the limit (before its data is delivered).
   */
  maxBodySize?: number | null;
  /** Most empty lines ignored before a request line (RFC 9112 §2.2). Default 16. More → 400. */
  maxLeadingEmptyLines?: number;
  /**
   * Accept a bare LF as the end of a request line or field line (RFC 9112
   * §2.2 allows it). Default `true`. A bare CR is always refused, and the
   * chunked coding always needs CRLF.
   */
  allowBareLF?: boolean;
}

// ====================================================================== the head

/**
 * A {@link RequestHead} as the parser makes it: the header fields are kept
 * as the decoded text and offsets into it, or as the input bytes and
 * offsets into them (not decoded yet), and become a {@link Headers} on
 * first use (many requests are answered without a look at them).
 */
export class ParsedHead implements RequestHead {
  #source: string;
  /** The fields' bytes when they are not decoded yet, else `null`. */
  #raw: Buffer | null;
  /** Where in `#raw` the fields start (`#offsets` count from there). */
  #base: number;
  #offsets: number[] | null;
  #headers: Headers | null = null;

  constructor(
    readonly method: string,
    readonly target: string,
    readonly targetForm: TargetForm,
    readonly version: '1.0' | '1.1',
    source: string,
    raw: Buffer | null,
    base: number,
    offsets: number[],
    readonly contentLength: number | null,
    readonly chunked: boolean,
    readonly keepAlive: boolean,
    readonly expectContinue: boolean,
    readonly expectationFailed: boolean,
    readonly upgrade: boolean,
  ) {
    this.#source = source;
    this.#raw = raw;
    this.#base = base;
    this.#offsets = offsets;
  }

  /** The header fields, in order, raw casing kept (made on first use; the same object after). */
  get headers(): Headers {
    let headers = this.#headers;
    if (headers === null) {
      const offsets = this.#offsets!;
      const raw = this.#raw;
      if (raw !== null) {
        // One decode for every field; the offsets count from its start.
        const from = this.#base;
        this.#source = decodeLatin1(raw, from, from + offsets[offsets.length - 1]!);
        this.#raw = null;
      }
      headers = headersFromSource(this.#source, offsets);
      this.#headers = headers;
      this.#source = '';
      this.#offsets = null;
    }
    return headers;
  }
}
