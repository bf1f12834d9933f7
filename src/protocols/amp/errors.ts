/**
 * The errors of AMP, as Twisted's `twisted.protocols.amp` names them. Each has
 * a stable `code` (`TORSION_ERR_AMP_*`).
 *
 * @module
 */

import { TorsionError } from '../../reactor/errors.js';
import type { Failure } from '../../reactor/failure.js';

/** Base class of every AMP error. */
export class AmpError extends TorsionError {
  constructor(message: string, code = 'TORSION_ERR_AMP', options?: { cause?: unknown }) {
    super(message, code, options);
  }
}

/**
 * One of AMP's length limits was broken: a key longer than 255 bytes (or
 * empty, where a key is due), or a value longer than 65,535 bytes.
 *
 * Raised locally (`isLocal`) when a box being sent breaks a limit; a peer
 * that announces a key longer than 255 bytes closes the connection, and the
 * pending requests fail with a remote (`isLocal === false`) TooLong.
 */
export class TooLong extends AmpError {
  /** `true` for a key, `false` for a value. */
  readonly isKey: boolean;
  /** `true` if this side tried to encode it; `false` if it came off the wire. */
  readonly isLocal: boolean;
  /** For a value: the key it was encoded for. */
  readonly keyName: string | null;
  /** The offending length in bytes (for a remote key: the announced length). */
  readonly length: number;

  constructor(isKey: boolean, isLocal: boolean, length: number, keyName: string | null = null) {
    const what = isKey ? 'key' : `value ${JSON.stringify(keyName)}`;
    super(
      `${isLocal ? 'local' : 'remote'} ${what} too long: ${length}`,
      'TORSION_ERR_AMP_TOO_LONG',
    );
    this.isKey = isKey;
    this.isLocal = isLocal;
    this.keyName = keyName;
    this.length = length;
  }
}

/**
 * A box with none of `_command`, `_answer` or `_error` arrived (an empty box
 * is one such). The connection is closed with this reason.
 */
export class NoEmptyBoxes extends AmpError {
  constructor(message = 'received a box with no _command, _answer or _error key') {
    super(message, 'TORSION_ERR_AMP_NO_EMPTY_BOXES');
  }
}

/**
 * A command was called with a missing required argument or an argument it
 * does not declare; or a responder returned a response missing a required
 * key.
 */
export class InvalidSignature extends AmpError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_AMP_INVALID_SIGNATURE');
  }
}

/**
 * A box's content is not what AMP or the command expects: a value that does
 * not decode as its argument type, a missing required key, an answer to a
 * request that was never asked, an error box without a code. On the receiving
 * side of a request this becomes an `UNKNOWN` error answer; in an answer, the
 * caller's Deferred fails with it; at the protocol level the connection is
 * closed with it.
 */
export class MalformedAmpBox extends AmpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TORSION_ERR_AMP_MALFORMED_BOX', options);
  }
}

/**
 * A responder's result could not be encoded as its command's response. The
 * caller gets an `UNKNOWN` error and the connection is closed, as for any
 * undeclared error.
 */
export class BadLocalReturn extends AmpError {
  /** What went wrong while encoding the result. */
  readonly enclosed: Failure;

  constructor(message: string, enclosed: Failure) {
    super(`${message}: ${enclosed.getErrorMessage()}`, 'TORSION_ERR_AMP_BAD_LOCAL_RETURN', {
      cause: enclosed.value,
    });
    this.enclosed = enclosed;
  }
}

/**
 * An error answer from the peer: its `_error_code` and
 * `_error_description`. A responder may throw one to answer with any code;
 * `fatal` ones close the connection after the answer is sent.
 */
export class RemoteAmpError extends AmpError {
  /** The wire error code (`_error_code`), e.g. `UNKNOWN`. */
  readonly errorCode: string;
  /** The peer's description (`_error_description`, decoded as UTF-8). */
  readonly description: string;
  /** Whether the connection is closed after this error is sent. */
  readonly fatal: boolean;
  /** The local failure behind it, when this side raised it. */
  readonly local: Failure | null;

  constructor(
    errorCode: string,
    description: string,
    fatal = false,
    local: Failure | null = null,
    code = 'TORSION_ERR_AMP_REMOTE',
  ) {
    super(`Code<${errorCode}>${local ? ' (local)' : ''}: ${description}`, code);
    this.errorCode = errorCode;
    this.description = description;
    this.fatal = fatal;
    this.local = local;
  }
}

/**
 * The peer answered with an error code the command does not declare (its
 * responder raised an undeclared error: Twisted then sends `UNKNOWN` and
 * closes the connection).
 */
export class UnknownRemoteError extends RemoteAmpError {
  constructor(description: string, errorCode = 'UNKNOWN') {
    super(errorCode, description, false, null, 'TORSION_ERR_AMP_UNKNOWN_REMOTE');
  }
}

/**
 * The peer has no responder for the command (`UNHANDLED` error answer). The
 * connection stays open.
 */
export class UnhandledCommand extends AmpError {
  /** Always `UNHANDLED`. */
  readonly errorCode: string;
  /** The peer's description, e.g. `Unhandled Command: b'Foo'`. */
  readonly description: string;

  constructor(description = 'Unhandled Command', errorCode = 'UNHANDLED') {
    super(description, 'TORSION_ERR_AMP_UNHANDLED_COMMAND');
    this.errorCode = errorCode;
    this.description = description;
  }
}

/** `callRemote` on a protocol that has no connection yet. */
export class NotConnectedError extends AmpError {
  constructor(message = 'AMP protocol is not connected yet') {
    super(message, 'TORSION_ERR_AMP_NOT_CONNECTED');
  }
}

/** TLS was asked for twice on one connection (Twisted's `OnlyOneTLS`). */
export class OnlyOneTLS extends AmpError {
  constructor(message = 'TLS may only be started once per connection') {
    super(message, 'TORSION_ERR_AMP_ONLY_ONE_TLS');
  }
}

/**
 * `StartTLS` on a connection whose transport cannot switch to TLS (it has no
 * `startTLS`, e.g. a UNIX socket or an in-memory transport).
 */
export class TLSNotAvailable extends AmpError {
  constructor(message = 'TLS not available on this transport') {
    super(message, 'TORSION_ERR_AMP_TLS_NOT_AVAILABLE');
  }
}
