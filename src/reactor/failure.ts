/**
 * `Failure`: an error captured for delivery down a Deferred's errback chain.
 *
 * As in Twisted, errbacks receive a Failure, never the raw error: it names the
 * error's class, can `trap` expected classes (re-throwing itself otherwise, so
 * the chain keeps failing with the same Failure), and keeps the stack of the
 * place the error was raised.
 *
 * @module
 */

/** Any constructor of errors; used by {@link Failure.trap} and {@link Failure.check}. */
// biome-ignore lint/suspicious/noExplicitAny: constructor parameter lists are contravariant; any is the only top type here.
export type ErrorClass<E extends Error = Error> = abstract new (...args: any[]) => E;

/**
 * Wraps a thrown value that is not an `Error` (a string, a number, `undefined`),
 * so that every Failure holds an `Error`. The original is in `thrown`.
 */
export class NonErrorThrown extends Error {
  readonly thrown: unknown;
  readonly code = 'TORSION_ERR_NON_ERROR_THROWN';

  constructor(thrown: unknown) {
    super(`non-Error value thrown: ${describe(thrown)}`);
    this.name = 'NonErrorThrown';
    this.thrown = thrown;
  }
}

function describe(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** An error captured for errback delivery. */
export class Failure<E extends Error = Error> {
  /** The error itself. */
  readonly value: E;

  /** The error's class (its constructor). */
  readonly type: ErrorClass<E>;

  /**
   * Creates a Failure for `error`. A Failure passed in is returned as-is by
   * {@link Failure.from}; the constructor always wraps.
   */
  constructor(error: E | unknown) {
    const value = (error instanceof Error ? error : new NonErrorThrown(error)) as E;
    this.value = value;
    this.type = value.constructor as ErrorClass<E>;
  }

  /** `value` as a Failure: a Failure is returned unchanged, anything else is wrapped. */
  static from(value: unknown): Failure {
    return value instanceof Failure ? value : new Failure(value);
  }

  /**
   * Returns the first of `types` that the error is an instance of; if none
   * matches, throws this Failure (so an errback that traps the wrong kind passes
   * the same failure on down the chain).
   */
  trap<T extends Error>(...types: ErrorClass<T>[]): ErrorClass<T> {
    const match = this.check(...types);
    if (match === null) throw this;
    return match;
  }

  /** The first of `types` that the error is an instance of, or `null`. */
  check<T extends Error>(...types: ErrorClass<T>[]): ErrorClass<T> | null {
    for (const type of types) {
      if (this.value instanceof type) return type;
    }
    return null;
  }

  /** The error's message (Twisted: `getErrorMessage()`). */
  getErrorMessage(): string {
    return this.value.message;
  }

  /** The error's stack, or `name: message` when it has none. */
  get stack(): string {
    return this.value.stack ?? `${this.value.name}: ${this.value.message}`;
  }

  /** The stack as a printable traceback (Twisted: `getTraceback()`). */
  getTraceback(): string {
    return this.stack;
  }

  /** Throws the wrapped error (Twisted: `raiseException()`). */
  raiseException(): never {
    throw this.value;
  }

  toString(): string {
    return `[Failure instance: ${this.value.name}: ${this.value.message}]`;
  }
}
