/**
 * Typed errors raised or delivered (as a {@link Failure}) by the reactor layer.
 *
 * Every error carries a stable `code` (`TORSION_ERR_*`) so callers can branch on
 * it without string matching, and a `name` equal to its class name.
 *
 * @module
 */

/** Base class of every torsion error. */
export class TorsionError extends Error {
  /** Stable machine-readable code, `TORSION_ERR_*`. */
  readonly code: string;

  constructor(message: string, code = 'TORSION_ERR_GENERIC', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A bad argument at the API edge (Twisted raises `ValueError`/`TypeError`). */
export class InvalidArgumentError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_INVALID_ARGUMENT');
  }
}

// ---------------------------------------------------------------- Deferred

/** A Deferred was fired (callback/errback) a second time. */
export class AlreadyCalledError extends TorsionError {
  constructor(message = 'Deferred has already been called') {
    super(message, 'TORSION_ERR_ALREADY_CALLED');
  }
}

/** Delivered to errbacks of a Deferred cancelled without a canceller that fired it. */
export class CancelledError extends TorsionError {
  constructor(message = 'Deferred was cancelled') {
    super(message, 'TORSION_ERR_CANCELLED');
  }
}

/** An operation (a Deferred's `addTimeout`, a connect attempt) took too long. */
export class TimeoutError extends TorsionError {
  constructor(message = 'Deferred timed out') {
    super(message, 'TORSION_ERR_TIMEOUT');
  }
}

/**
 * One of the Deferreds given to `gatherResults` or a `DeferredList` with
 * `fireOnOneErrback` failed. `subFailure` is its failure, `index` its position.
 */
export class FirstError extends TorsionError {
  readonly subFailure: unknown;
  readonly index: number;

  constructor(subFailure: { value: Error }, index: number) {
    super(`FirstError[#${index}, ${subFailure.value.message}]`, 'TORSION_ERR_FIRST_ERROR', {
      cause: subFailure.value,
    });
    this.subFailure = subFailure;
    this.index = index;
  }
}

/** A `DeferredQueue` is over its size or backlog limit. */
export class QueueOverflow extends TorsionError {
  constructor(message = 'queue is full') {
    super(message, 'TORSION_ERR_QUEUE_OVERFLOW');
  }
}

/** A `DeferredQueue` cannot take more waiters (backlog limit reached). */
export class QueueUnderflow extends TorsionError {
  constructor(message = 'too many pending gets') {
    super(message, 'TORSION_ERR_QUEUE_UNDERFLOW');
  }
}

// ---------------------------------------------------------------- time and core

/** A delayed call was cancelled twice, or cancelled/reset after it ran. */
export class AlreadyCancelled extends TorsionError {
  constructor(message = 'Tried to cancel an already-cancelled event.') {
    super(message, 'TORSION_ERR_ALREADY_CANCELLED');
  }
}

/** A delayed call was cancelled, reset or delayed after it already ran. */
export class AlreadyCalled extends TorsionError {
  constructor(message = 'Tried to cancel an already-called event.') {
    super(message, 'TORSION_ERR_ALREADY_CALLED_EVENT');
  }
}

/** `stop()` on a reactor that is not running. */
export class ReactorNotRunning extends TorsionError {
  constructor(message = "Can't stop reactor that isn't running.") {
    super(message, 'TORSION_ERR_REACTOR_NOT_RUNNING');
  }
}

/** `run()` on a reactor that is already running. */
export class ReactorAlreadyRunning extends TorsionError {
  constructor(message = 'Reactor already running.') {
    super(message, 'TORSION_ERR_REACTOR_ALREADY_RUNNING');
  }
}

// ---------------------------------------------------------------- connections

/** The connection was closed cleanly (both sides agreed). */
export class ConnectionDone extends TorsionError {
  constructor(message = 'Connection was closed cleanly.', options?: { cause?: unknown }) {
    super(message, 'TORSION_ERR_CONNECTION_DONE', options);
  }
}

/** The connection was lost in a non-clean fashion (reset, error, abort). */
export class ConnectionLost extends TorsionError {
  constructor(
    message = 'Connection to the other side was lost in a non-clean fashion.',
    options?: { cause?: unknown },
    code = 'TORSION_ERR_CONNECTION_LOST',
  ) {
    super(message, code, options);
  }
}

/** The connection was closed by `abortConnection()` on this side. */
export class ConnectionAborted extends ConnectionLost {
  constructor(message = 'Connection was aborted locally using abortConnection().') {
    super(message, undefined, 'TORSION_ERR_CONNECTION_ABORTED');
  }
}

/** Base class of connection-establishment failures. */
export class ConnectError extends TorsionError {
  constructor(
    message = 'An error occurred while connecting.',
    options?: { cause?: unknown },
    code = 'TORSION_ERR_CONNECT',
  ) {
    super(message, code, options);
  }
}

/** The peer refused the connection (`ECONNREFUSED`). */
export class ConnectionRefusedError extends ConnectError {
  constructor(message = 'Connection was refused by other side.', options?: { cause?: unknown }) {
    super(message, options, 'TORSION_ERR_CONNECTION_REFUSED');
  }
}

/** Connecting took longer than the `timeout` option (Twisted's `error.TimeoutError`). */
export class ConnectTimeoutError extends ConnectError {
  constructor(message = 'User timeout caused connection failure.') {
    super(message, undefined, 'TORSION_ERR_CONNECT_TIMEOUT');
  }
}

/** The host name could not be resolved. */
export class DNSLookupError extends ConnectError {
  constructor(message = 'DNS lookup failed.', options?: { cause?: unknown }) {
    super(message, options, 'TORSION_ERR_DNS_LOOKUP');
  }
}

/** Connecting was stopped by `connector.stopConnecting()`. */
export class UserError extends ConnectError {
  constructor(message = 'User aborted connection.') {
    super(message, undefined, 'TORSION_ERR_USER_ABORTED');
  }
}

/** `stopConnecting()` on a connector that is not connecting. */
export class NotConnectingError extends TorsionError {
  constructor(message = 'The Connector was not connecting when it was asked to stop connecting.') {
    super(message, 'TORSION_ERR_NOT_CONNECTING');
  }
}

/** A port could not be bound. `cause` holds the system error. */
export class CannotListenError extends TorsionError {
  readonly interface: string;
  readonly port: number | string;

  constructor(iface: string, port: number | string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`Couldn't listen on ${iface || 'any'}:${port}: ${why}.`, 'TORSION_ERR_CANNOT_LISTEN', {
      cause,
    });
    this.interface = iface;
    this.port = port;
  }
}

/** An operation on a transport that is closed or closing (e.g. write after loseConnection). */
export class TransportClosedError extends TorsionError {
  constructor(message = 'Transport is closed.') {
    super(message, 'TORSION_ERR_TRANSPORT_CLOSED');
  }
}

/** A second producer was registered on a consumer that already has one. */
export class ProducerAlreadyRegistered extends TorsionError {
  constructor(message = 'Cannot register producer: a producer is already registered.') {
    super(message, 'TORSION_ERR_PRODUCER_REGISTERED');
  }
}
