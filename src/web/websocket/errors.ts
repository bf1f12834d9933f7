/**
 * Typed errors of the WebSocket layer, and the close-code rules they share.
 *
 * - {@link WebSocketClosed}: the `reason.value` of every WebSocket protocol's
 *   `connectionLost`: the close code and reason of the closing handshake.
 * - {@link WebSocketHandshakeError}: `connectWS` got something other than a
 *   valid `101 Switching Protocols` answer.
 * - {@link WebSocketOverflowError}: a peer did not read and its queued output
 *   passed the connection's `maxBufferedAmount` (the `cause` of its close).
 *
 * @module
 */

import { InvalidArgumentError, TorsionError } from '../../reactor/errors.js';

/** Close codes with a name in RFC 6455 §7.4.1 (and the IANA registry). */
export const CloseCode = {
  /** 1000: the purpose of the connection was fulfilled. */
  NORMAL: 1000,
  /** 1001: the endpoint is going away (server shutdown, page navigation). */
  GOING_AWAY: 1001,
  /** 1002: protocol error (a bad frame). */
  PROTOCOL_ERROR: 1002,
  /** 1003: a data type the endpoint cannot accept. */
  UNSUPPORTED_DATA: 1003,
  /** 1005: no status code was present in the peer's close frame (never sent). */
  NO_STATUS: 1005,
  /** 1006: the connection closed without a close frame (never sent). */
  ABNORMAL: 1006,
  /** 1007: a text message that is not valid UTF-8. */
  INVALID_PAYLOAD: 1007,
  /** 1008: a policy was violated (here: a peer that does not read its output). */
  POLICY_VIOLATION: 1008,
  /** 1009: a message too big to process (`maxPayload`). */
  MESSAGE_TOO_BIG: 1009,
  /** 1010: the client expected an extension the server did not negotiate. */
  MANDATORY_EXTENSION: 1010,
  /** 1011: the server hit an unexpected condition (a protocol callback threw). */
  INTERNAL_ERROR: 1011,
} as const;

/**
 * Whether `code` may be sent in a close frame (RFC 6455 §7.4): 1000–1003,
 * 1007–1014, or 3000–4999 (registered and private-use codes). 1004, 1005,
 * 1006 and 1015 are reserved and never sent.
 */
export function isValidCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
  );
}

/**
 * Checks the arguments of `close(code, reason)`.
 * @throws InvalidArgumentError for a code that may not be sent or a reason
 *   longer than 123 bytes of UTF-8 (a close frame's payload is at most 125).
 */
export function checkCloseArguments(code: number, reason: string): void {
  if (!isValidCloseCode(code)) {
    throw new InvalidArgumentError(
      `close(): ${String(code)} is not a close code that may be sent (1000-1003, 1007-1014, 3000-4999)`,
    );
  }
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new InvalidArgumentError('close(): the reason must be a string of at most 123 bytes');
  }
}

/**
 * Checks the payload of `ping(data)`.
 * @throws InvalidArgumentError if it is longer than 125 bytes (a control frame's limit).
 */
export function checkPingData(data: Uint8Array | string | undefined): void {
  if (data === undefined) return;
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  if (size > 125) throw new InvalidArgumentError('ping(): the data must be at most 125 bytes');
}

/**
 * The close code `ws` sends when it fails a connection for `error` (its
 * receiver errors carry it under a symbol described `'status-code'`), or
 * `null` for other errors (socket errors: no close frame is sent).
 */
export function wsStatusCode(error: Error): number | null {
  for (const symbol of Object.getOwnPropertySymbols(error)) {
    if (symbol.description === 'status-code') {
      const value = (error as unknown as Record<symbol, unknown>)[symbol];
      return typeof value === 'number' ? value : null;
    }
  }
  return null;
}

/** Options of {@link WebSocketClosed}. */
export interface WebSocketClosedOptions {
  /** What made this side close, or what broke the connection (see {@link WebSocketClosed}). */
  cause?: unknown;
  /** Whether the peer's close frame arrived (default: `closeCode !== 1006`). */
  wasClean?: boolean;
}

/**
 * The connection ended: `reason.value` of `WebSocketProtocol.connectionLost`.
 *
 * `closeCode` and `reason` are those of the closing handshake:
 * - the peer's close frame, when one arrived (after we closed first, the
 *   peer echoes our code; `1005` when its frame had no code);
 * - otherwise the close frame this side sent, if it sent one (our `close()`,
 *   or `ws` failing the connection: 1009 for a message over `maxPayload`,
 *   1007 for bad UTF-8, 1002 for a bad frame), with `wasClean` false;
 * - otherwise `1006` (reset, abort, a dead peer dropped).
 *
 * `wasClean` is `true` when the peer's close frame arrived. `cause`, when
 * set, says why this side closed or what broke: the `ws` error (e.g. a
 * `RangeError` with `code` `WS_ERR_UNSUPPORTED_MESSAGE_LENGTH`), a
 * `TimeoutError` (keep-alive ping unanswered, closing handshake not
 * finished in time), a {@link WebSocketOverflowError}, a
 * `ConnectionAborted` (`abortConnection()`), or the exception a protocol
 * callback threw.
 *
 * (`code` is the stable torsion error code, as on every `TorsionError`; the
 * close code is `closeCode`.)
 */
export class WebSocketClosed extends TorsionError {
  /** The close code (1000–4999; 1005 no code in the close frame; 1006 no close frame at all). */
  readonly closeCode: number;
  /** The close reason (UTF-8 text, at most 123 bytes; `''` if none). */
  readonly reason: string;
  /** `true` when the peer's close frame arrived. */
  readonly wasClean: boolean;

  constructor(closeCode: number, reason: string, options?: WebSocketClosedOptions) {
    const why = reason === '' ? '' : `: ${reason}`;
    const wasClean = options?.wasClean ?? closeCode !== CloseCode.ABNORMAL;
    super(
      closeCode === CloseCode.ABNORMAL
        ? `WebSocket connection closed abnormally (1006, no close frame)${why}`
        : `WebSocket connection closed (${closeCode}${wasClean ? '' : ', not acknowledged'})${why}`,
      'TORSION_ERR_WEBSOCKET_CLOSED',
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.closeCode = closeCode;
    this.reason = reason;
    this.wasClean = wasClean;
  }
}

/**
 * The opening handshake of `connectWS` failed after the TCP (or TLS)
 * connection was made: the server answered with a status other than 101
 * (`status` holds it), or its 101 answer was invalid (a wrong
 * `Sec-WebSocket-Accept`, a subprotocol or extension that was not offered:
 * `status` is then 101), or the connection closed during the handshake or
 * the answer was not HTTP (`status` is `null`).
 */
export class WebSocketHandshakeError extends TorsionError {
  /** The HTTP status the server answered with, or `null` if it sent no complete answer. */
  readonly status: number | null;

  constructor(message: string, status: number | null, options?: { cause?: unknown }) {
    super(message, 'TORSION_ERR_WEBSOCKET_HANDSHAKE', options);
    this.status = status;
  }
}

/**
 * A peer did not read: the output queued for it (`bufferedAmount`) was above
 * the connection's `maxBufferedAmount` when another message was sent. The
 * message was discarded and the connection closed with 1008 (policy
 * violation). Delivered as the `cause` of the {@link WebSocketClosed}.
 */
export class WebSocketOverflowError extends TorsionError {
  /** The bytes that were queued when the limit was found passed. */
  readonly bufferedAmount: number;
  /** The limit. */
  readonly limit: number;

  constructor(bufferedAmount: number, limit: number) {
    super(
      `the peer is not reading: ${bufferedAmount} bytes queued, above the limit of ${limit}`,
      'TORSION_ERR_WEBSOCKET_OVERFLOW',
    );
    this.bufferedAmount = bufferedAmount;
    this.limit = limit;
  }
}
