/**
 * {@link AMP}: the Asynchronous Messaging Protocol, wire-compatible with
 * Twisted's `twisted.protocols.amp.AMP`. It is a {@link BinaryBoxProtocol}
 * (box framing) whose boxes go to a {@link BoxDispatcher} (requests and
 * answers), which finds responders through the AMP itself (commands
 * registered per instance with `responder`, or per class in a
 * {@link ResponderTable}).
 *
 * ```ts
 * const Sum = command('Sum', { arguments: { a: Integer, b: Integer }, response: { total: Integer } });
 *
 * // Server: one AMP per connection; responders declared once for the class.
 * class Calculator extends AMP {
 *   static override responders = new ResponderTable<Calculator>()
 *     .on(Sum, ({ a, b }) => ({ total: a + b }));
 * }
 * reactor.listenTCP(7777, Factory.forProtocol(Calculator));
 *
 * // Client.
 * const amp = await new ClientCreator(reactor, AMP).connectTCP('127.0.0.1', port);
 * const { total } = await amp.callRemote(Sum, { a: 13, b: 81 });
 * ```
 *
 * @module
 */

import type { Deferred } from '../../reactor/deferred.js';
import { fail, maybeDeferred } from '../../reactor/deferred.js';
import { InvalidArgumentError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import {
  type ArgumentSchema,
  type ArgumentsIn,
  type ArgumentsOut,
  checkWireName,
} from './arguments.js';
import { type AmpBox, BinaryBoxProtocol, canStartTLS, type IBoxReceiver } from './box.js';
import type { Command } from './command.js';
import {
  BoxDispatcher,
  type CallArguments,
  type CallRemoteResult,
  type IResponderLocator,
  type Responder,
} from './dispatcher.js';
import { BadLocalReturn, OnlyOneTLS, RemoteAmpError, TLSNotAvailable } from './errors.js';
import { type ClientTLSOptions, StartTLSCommand } from './tls.js';

/** A value, or a Deferred or Promise of it. */
export type Awaitable<T> = T | PromiseLike<T> | Deferred<T>;

/**
 * Answers one command: gets the decoded arguments (and the AMP, also as
 * `this`), returns the response fields or a Deferred/Promise of them. A throw
 * or rejection with an error the command declares becomes that error's code;
 * any other error is logged, answered `UNKNOWN`, and closes the connection.
 */
export type Handler<A extends ArgumentSchema, R extends ArgumentSchema, Self> = (
  this: Self,
  args: ArgumentsOut<A>,
  amp: Self,
) => Awaitable<ArgumentsIn<R>>;

/** A registered typed responder (see {@link ResponderTable.lookup}). */
export interface ResponderEntry {
  readonly command: Command;
  readonly handler: (this: unknown, args: never, amp: never) => unknown;
}

/**
 * Responders declared once per AMP subclass (Twisted's `Command.responder`
 * class-body decorator, without decorators):
 *
 * ```ts
 * class Calculator extends AMP {
 *   static override responders = new ResponderTable<Calculator>()
 *     .on(Sum, (args, self) => self.sum(args))
 *     .on(Divide, ({ numerator, denominator }) => ({ result: numerator / denominator }));
 *
 *   sum({ a, b }: ResponderArguments<typeof Sum>) {
 *     return { total: a + b };
 *   }
 * }
 * ```
 *
 * A subclass's table adds to (and overrides, by command name) those of its
 * superclasses; responders registered on an instance come first. The table
 * is covariant in `Self` so that a subclass may override `responders` with a
 * table of its own type; its handlers only ever run on instances of the
 * class that declares it.
 *
 * @typeParam Self - the AMP class the handlers run on (their `this` and second argument).
 */
export class ResponderTable<out Self = AMP> {
  readonly #entries = new Map<string, ResponderEntry>();

  /**
   * Registers `handler` for `command`. Returns the table.
   * @throws InvalidArgumentError if the command already has a responder here.
   */
  on<A extends ArgumentSchema, R extends ArgumentSchema, RA extends boolean>(
    command: Command<A, R, RA>,
    handler: Handler<A, R, Self>,
  ): this {
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function');
    if (this.#entries.has(command.name)) {
      throw new InvalidArgumentError(`${command.name} already has a responder in this table`);
    }
    this.#entries.set(command.name, {
      command: command as unknown as Command,
      handler: handler as ResponderEntry['handler'],
    });
    return this;
  }

  /** The entry for command `name`, if registered here. */
  lookup(name: string): ResponderEntry | undefined {
    return this.#entries.get(name);
  }

  /** The command names registered here. */
  names(): IterableIterator<string> {
    return this.#entries.keys();
  }
}

/** Per AMP class: the merged responder tables of the class and its superclasses. */
const classTables = new WeakMap<object, Map<string, ResponderEntry>>();

function tableOf(ctor: typeof AMP): Map<string, ResponderEntry> {
  let merged = classTables.get(ctor);
  if (merged !== undefined) return merged;
  const chain: (typeof AMP)[] = [];
  for (
    let c: unknown = ctor;
    typeof c === 'function' && c !== Function.prototype;
    c = Object.getPrototypeOf(c)
  ) {
    chain.push(c as typeof AMP);
    if (c === AMP) break;
  }
  merged = new Map();
  for (const c of chain.reverse()) {
    const table = Object.hasOwn(c, 'responders') ? c.responders : null;
    if (table instanceof ResponderTable) {
      for (const name of table.names()) merged.set(name, table.lookup(name) as ResponderEntry);
    }
  }
  classTables.set(ctor, merged);
  return merged;
}

/** Options of {@link AMP}. */
export interface AMPOptions {
  /** Where received boxes go instead of the AMP's own dispatcher. */
  boxReceiver?: IBoxReceiver;
  /** Where commands are looked up instead of the AMP itself. */
  locator?: IResponderLocator;
}

/**
 * An AMP connection: send commands with {@link AMP.callRemote}, answer them
 * with responders. Use it as is (registering responders per instance) or
 * subclass it (a static {@link ResponderTable}, `connectionMade` hooks…).
 *
 * Requests and answers follow Twisted exactly: see {@link BoxDispatcher}
 * for tags and connection loss, and {@link BinaryBoxProtocol} for framing
 * and bad input.
 */
export class AMP extends BinaryBoxProtocol implements IResponderLocator {
  /** Responders of every instance of this class (see {@link ResponderTable}). */
  static responders: ResponderTable<AMP> | null = null;

  /** The request/response layer. */
  readonly dispatcher: BoxDispatcher;

  readonly #own = new Map<string, Responder>();
  readonly #bound = new Map<string, Responder>();

  constructor(options: AMPOptions = {}) {
    super();
    this.dispatcher = new BoxDispatcher(options.locator ?? this, this);
    this.boxReceiver = options.boxReceiver ?? this.dispatcher;
  }

  /**
   * Answers `command` on this connection with `handler` (called with the
   * decoded arguments and this AMP, also bound as `this`). Returns `this`.
   * Instance responders take precedence over the class's table.
   * @throws InvalidArgumentError if this instance already has a responder
   *   for the command name.
   */
  responder<A extends ArgumentSchema, R extends ArgumentSchema, RA extends boolean>(
    command: Command<A, R, RA>,
    handler: Handler<A, R, this>,
  ): this {
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function');
    const entry: ResponderEntry = {
      command: command as unknown as Command,
      handler: handler as ResponderEntry['handler'],
    };
    return this.boxResponder(command.name, (box) => this.#respond(entry, box));
  }

  /**
   * Answers command `name` with a raw box handler (Twisted's `amp_NAME`
   * methods): it gets the request box and returns the answer box. Returns
   * `this`.
   * @throws InvalidArgumentError if `name` already has a responder here.
   */
  boxResponder(name: string, responder: Responder): this {
    checkWireName(name, 'command name');
    if (this.#own.has(name)) throw new InvalidArgumentError(`${name} already has a responder`);
    this.#own.set(name, responder);
    return this;
  }

  /** The responder for `name`: this instance's, then the class table's, else `null`. */
  locateResponder(name: string): Responder | null {
    const own = this.#own.get(name);
    if (own !== undefined) return own;
    let bound = this.#bound.get(name);
    if (bound !== undefined) return bound;
    const entry = tableOf(this.constructor as typeof AMP).get(name);
    if (entry === undefined) return null;
    bound = (box) => this.#respond(entry, box);
    this.#bound.set(name, bound);
    return bound;
  }

  /**
   * Sends `command` with `args` to the peer (Twisted's `callRemote`).
   *
   * @returns a Deferred of the decoded response. It fails with: the
   *   command's declared error class (`new E(description)`) for a declared
   *   code; {@link UnknownRemoteError} for any other code (the peer then
   *   usually closes the connection); {@link UnhandledCommand} if the peer
   *   has no responder; `InvalidSignature` / `InvalidArgumentError` /
   *   `TooLong` if the arguments cannot be encoded (nothing is sent);
   *   `MalformedAmpBox` if the answer cannot be decoded; `ConnectionLost`
   *   (or the protocol error that closed it) if the connection goes first;
   *   `NotConnectedError` before the connection is made. For a command with
   *   `requiresAnswer: false`, returns `undefined` and throws those encoding
   *   and connection errors instead. {@link StartTLS} also switches the
   *   connection to TLS (see its module), failing with `TLSNotAvailable` or
   *   `OnlyOneTLS` at once when it cannot.
   */
  callRemote<A extends ArgumentSchema, R extends ArgumentSchema, RA extends boolean>(
    command: Command<A, R, RA>,
    ...args: CallArguments<A>
  ): CallRemoteResult<R, RA> {
    if (command instanceof StartTLSCommand) {
      return this.#callStartTLS(
        command,
        (args[0] ?? {}) as { tls?: ClientTLSOptions | null },
      ) as CallRemoteResult<R, RA>;
    }
    return this.dispatcher.callRemote(command, ...args);
  }

  /**
   * StartTLS, asking side (Twisted's `StartTLS._doCommand`): send, hold
   * later boxes, and on the answer switch to TLS as the client before the
   * caller's callbacks run.
   */
  #callStartTLS(
    command: StartTLSCommand,
    args: { tls?: ClientTLSOptions | null },
  ): Deferred<ArgumentsOut<StartTLSCommand['response']>> {
    if (!canStartTLS(this.transport)) return fail(new TLSNotAvailable());
    if (this.tlsState !== 'none') return fail(new OnlyOneTLS());
    const sent = this.dispatcher.callRemote(command, args);
    // Failed before anything was sent (not connected, closed): hold nothing.
    if (sent.called) return sent;
    this.prepareTLS();
    const options = args.tls ?? {};
    return sent.addCallbacks(
      (response) => {
        try {
          this.startTLS({ ...options, isServer: false });
        } catch (error) {
          this.cancelTLS();
          // The peer is switching to TLS already: this connection cannot go on.
          this.transport.loseConnection();
          throw error;
        }
        return response;
      },
      (failure) => {
        this.cancelTLS();
        return failure;
      },
    ) as Deferred<ArgumentsOut<StartTLSCommand['response']>>;
  }

  /**
   * Sends a raw box as command `name` (see
   * {@link BoxDispatcher.callRemoteString}).
   */
  callRemoteString(name: string, box?: AmpBox, requiresAnswer?: true): Deferred<AmpBox>;
  callRemoteString(name: string, box: AmpBox | undefined, requiresAnswer: false): undefined;
  callRemoteString(
    name: string,
    box?: AmpBox,
    requiresAnswer = true,
  ): Deferred<AmpBox> | undefined {
    return requiresAnswer
      ? this.dispatcher.callRemoteString(name, box)
      : this.dispatcher.callRemoteString(name, box, false);
  }

  /** Decodes, calls the handler, encodes (Twisted's `_wrapWithSerialization`). */
  #respond(entry: ResponderEntry, box: AmpBox): Deferred<AmpBox> {
    const command = entry.command;
    const args = command.parseArguments(box, this);
    return maybeDeferred(callHandler, entry, args, this)
      .addCallback(makeResponse, command, this)
      .addErrback(checkKnownErrors, command) as Deferred<AmpBox>;
  }

  override toString(): string {
    return `<${this.constructor.name}>`;
  }
}

function callHandler(entry: ResponderEntry, args: unknown, amp: AMP): unknown {
  return (entry.handler as (this: AMP, args: unknown, amp: AMP) => unknown).call(amp, args, amp);
}

function makeResponse(result: unknown, command: Command, amp: AMP): AmpBox {
  try {
    return command.makeResponse(result as ArgumentsIn<ArgumentSchema>, amp);
  } catch (error) {
    // A command's own refusal (StartTLS's TLS_ERROR) goes out as it is.
    if (error instanceof RemoteAmpError) throw error;
    throw new BadLocalReturn(
      `${command.name} responder returned a value that could not be serialized`,
      Failure.from(error),
    );
  }
}

/** A declared error becomes a RemoteAmpError with its code; others pass on (→ UNKNOWN). */
function checkKnownErrors(failure: Failure, command: Command): Failure {
  const found = command.errorCodeFor(failure.value);
  if (found === null) return failure;
  return new Failure(new RemoteAmpError(found.code, failure.value.message, found.fatal, failure));
}
