/**
 * AMP command definitions: a command's name, typed arguments and response,
 * the errors it may answer with, and whether it expects an answer. One
 * definition serves both sides: `callRemote(Sum, {a, b})` is typed by it, and
 * so is `amp.responder(Sum, ({a, b}) => …)`.
 *
 * ```ts
 * class ZeroDivision extends Error {}
 * const Divide = command('Divide', {
 *   arguments: { numerator: Integer, denominator: Integer },
 *   response: { result: Float },
 *   errors: { ZERO_DIVISION: ZeroDivision },
 * });
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';
import {
  type ArgumentSchema,
  type ArgumentsIn,
  type ArgumentsOut,
  boxToObjects,
  checkWireName,
  objectsToBox,
  type SchemaEntries,
  schemaEntries,
} from './arguments.js';
import { AmpBox } from './box.js';
import { InvalidSignature } from './errors.js';
import type { AMP } from './protocol.js';

/**
 * An error class a command may answer with. On the answering side, a thrown
 * instance (or subclass instance) is sent as its code with `message` as the
 * description; on the asking side the Deferred fails with
 * `new ErrorClass(description)`.
 */
export type AmpErrorClass = new (description: string) => Error;

/** Error codes (ASCII, ≤ 255 characters) to error classes. */
export type ErrorMap = { readonly [code: string]: AmpErrorClass };

/** An empty schema: a command without arguments or without response fields. */
export type NoArguments = Record<never, never>;

/** The definition given to {@link command}. */
export interface CommandOptions<
  A extends ArgumentSchema,
  R extends ArgumentSchema,
  RA extends boolean,
> {
  /** Argument names (box keys) to types. Default: none. */
  arguments?: A;
  /** Response field names to types. Default: none. */
  response?: R;
  /**
   * Errors the responder may raise, by code: the caller's Deferred fails
   * with the mapped class. Checked in order, with `instanceof`.
   */
  errors?: ErrorMap;
  /** Like `errors`, but the answering side closes the connection after sending one. */
  fatalErrors?: ErrorMap;
  /**
   * `false`: requests carry no `_ask`, the peer sends no answer, and
   * `callRemote` returns `undefined`. Default `true`.
   */
  requiresAnswer?: RA;
}

/** One declared error: its code, class, and whether it is fatal. */
interface ErrorEntry {
  readonly code: string;
  readonly type: AmpErrorClass;
  readonly fatal: boolean;
}

/**
 * A command. Immutable; make one with {@link command} (or `new Command`).
 *
 * @typeParam A - the argument schema.
 * @typeParam R - the response schema.
 * @typeParam RA - whether it requires an answer (`callRemote`'s return type follows it).
 */
export class Command<
  A extends ArgumentSchema = ArgumentSchema,
  R extends ArgumentSchema = ArgumentSchema,
  RA extends boolean = boolean,
> {
  /** The command name on the wire (`_command`). */
  readonly name: string;
  /** The argument schema. */
  readonly arguments: A;
  /** The response schema. */
  readonly response: R;
  /** Declared errors, by code. */
  readonly errors: ErrorMap;
  /** Declared fatal errors, by code. */
  readonly fatalErrors: ErrorMap;
  /** Whether requests ask for an answer. */
  readonly requiresAnswer: RA;

  readonly #argumentEntries: SchemaEntries;
  readonly #argumentNames: ReadonlySet<string>;
  readonly #responseEntries: SchemaEntries;
  readonly #errors: readonly ErrorEntry[];
  readonly #byCode: ReadonlyMap<string, AmpErrorClass>;

  /**
   * @throws InvalidArgumentError for a name or code that is not 1–255 ASCII
   *   characters, a schema entry that is not an argument type, or an error
   *   that is not a class.
   */
  constructor(name: string, options: CommandOptions<A, R, RA> = {}) {
    checkWireName(name, 'command name');
    this.name = name;
    this.arguments = (options.arguments ?? {}) as A;
    this.response = (options.response ?? {}) as R;
    this.errors = options.errors ?? {};
    this.fatalErrors = options.fatalErrors ?? {};
    this.requiresAnswer = (options.requiresAnswer ?? true) as RA;
    if (typeof this.requiresAnswer !== 'boolean') {
      throw new InvalidArgumentError('requiresAnswer must be a boolean');
    }
    this.#argumentEntries = schemaEntries(this.arguments, `${name} argument`);
    this.#argumentNames = new Set(this.#argumentEntries.map(([key]) => key));
    this.#responseEntries = schemaEntries(this.response, `${name} response field`);
    const errors: ErrorEntry[] = [];
    const byCode = new Map<string, AmpErrorClass>();
    for (const [map, fatal] of [
      [this.errors, false],
      [this.fatalErrors, true],
    ] as const) {
      for (const code of Object.keys(map)) {
        checkWireName(code, `${name} error code`);
        const type = map[code];
        if (typeof type !== 'function') {
          throw new InvalidArgumentError(`${name} error ${code} must be an error class`);
        }
        errors.push({ code, type, fatal });
        byCode.set(code, type);
      }
    }
    this.#errors = errors;
    this.#byCode = byCode;
  }

  /**
   * Encodes a request's arguments (without `_command`/`_ask`).
   * @throws InvalidSignature for a missing required or an undeclared argument.
   * @throws InvalidArgumentError / TooLong for a value that cannot be encoded.
   */
  makeArguments(values: ArgumentsIn<A>, proto: AMP | null): AmpBox {
    const record = values as Readonly<Record<string, unknown>>;
    if (record === null || typeof record !== 'object') {
      throw new InvalidSignature(`${this.name} arguments must be an object`);
    }
    for (const key of Object.keys(record)) {
      if (!this.#argumentNames.has(key)) {
        throw new InvalidSignature(`${key} is not a valid argument of ${this.name}`);
      }
    }
    return objectsToBox(this.#argumentEntries, record, new AmpBox(), proto);
  }

  /**
   * Decodes a request's arguments; keys it does not declare are ignored.
   * @throws MalformedAmpBox for a missing required key or an undecodable value.
   */
  parseArguments(box: AmpBox, proto: AMP | null): ArgumentsOut<A> {
    return boxToObjects(this.#argumentEntries, box, proto) as ArgumentsOut<A>;
  }

  /**
   * Encodes a responder's result (without `_answer`); fields it does not
   * declare are ignored.
   * @throws InvalidSignature for a missing required field.
   */
  makeResponse(values: ArgumentsIn<R>, proto: AMP | null): AmpBox {
    return objectsToBox(
      this.#responseEntries,
      values as Readonly<Record<string, unknown>>,
      new AmpBox(),
      proto,
    );
  }

  /**
   * Decodes an answer.
   * @throws MalformedAmpBox for a missing required key or an undecodable value.
   */
  parseResponse(box: AmpBox, proto: AMP | null): ArgumentsOut<R> {
    return boxToObjects(this.#responseEntries, box, proto) as ArgumentsOut<R>;
  }

  /** The declared code for `error` (first `instanceof` match, errors before fatalErrors), or `null`. */
  errorCodeFor(error: unknown): { code: string; fatal: boolean } | null {
    for (const entry of this.#errors) {
      if (error instanceof entry.type) return { code: entry.code, fatal: entry.fatal };
    }
    return null;
  }

  /** The declared class for `code`, or `undefined`. */
  errorClassFor(code: string): AmpErrorClass | undefined {
    return this.#byCode.get(code);
  }

  toString(): string {
    return `<Command ${this.name}>`;
  }
}

/**
 * Defines a command. Types are inferred from the schemas:
 *
 * ```ts
 * const Sum = command('Sum', {
 *   arguments: { a: Integer, b: Integer },
 *   response: { total: Integer },
 * });
 * // amp.callRemote(Sum, { a: 1, b: 2 }): Deferred<{ total: number }>
 * ```
 * @throws InvalidArgumentError as the {@link Command} constructor.
 */
export function command<
  const A extends ArgumentSchema = NoArguments,
  const R extends ArgumentSchema = NoArguments,
  RA extends boolean = true,
>(name: string, options: CommandOptions<A, R, RA> = {}): Command<A, R, RA> {
  return new Command(name, options);
}

/** The arguments a caller passes for `C`. */
export type CommandArguments<C> = C extends { readonly arguments: infer A extends ArgumentSchema }
  ? ArgumentsIn<A>
  : never;
/** The arguments a responder for `C` receives. */
export type ResponderArguments<C> = C extends {
  readonly arguments: infer A extends ArgumentSchema;
}
  ? ArgumentsOut<A>
  : never;
/** What a responder for `C` returns (before awaiting). */
export type ResponderResult<C> = C extends { readonly response: infer R extends ArgumentSchema }
  ? ArgumentsIn<R>
  : never;
/** What `callRemote(C, …)` resolves to. */
export type CommandResponse<C> = C extends { readonly response: infer R extends ArgumentSchema }
  ? ArgumentsOut<R>
  : never;
