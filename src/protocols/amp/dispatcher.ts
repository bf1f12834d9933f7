/**
 * {@link BoxDispatcher}: AMP's request/response layer (Twisted's
 * `BoxDispatcher`). Outgoing requests get a `_ask` tag and a Deferred that
 * the matching `_answer` or `_error` box fires; incoming `_command` boxes go
 * to a responder found by an {@link IResponderLocator}, and their result goes
 * back as an `_answer` or `_error` box.
 *
 * @module
 */

import { Deferred, fail, maybeDeferred } from '../../reactor/deferred.js';
import { ConnectionDone, ConnectionLost, TransportClosedError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import { err } from '../../reactor/log.js';
import type { ArgumentSchema, ArgumentsIn, ArgumentsOut } from './arguments.js';
import { AmpBox, type IBoxReceiver, type IBoxSender, pythonBytesRepr, QuitBox } from './box.js';
import type { Command } from './command.js';
import {
  MalformedAmpBox,
  NoEmptyBoxes,
  NotConnectedError,
  RemoteAmpError,
  UnhandledCommand,
  UnknownRemoteError,
} from './errors.js';
import type { AMP } from './protocol.js';

/** Key of a request's tag (absent when no answer is wanted). */
export const ASK = '_ask';
/** Key of an answer: the tag of the request it answers. */
export const ANSWER = '_answer';
/** Key of a request's command name. */
export const COMMAND = '_command';
/** Key of an error answer: the tag of the request it answers. */
export const ERROR = '_error';
/** Key of an error answer's code. */
export const ERROR_CODE = '_error_code';
/** Key of an error answer's description (UTF-8). */
export const ERROR_DESCRIPTION = '_error_description';
/** The code of an error the responder did not declare. */
export const UNKNOWN_ERROR_CODE = 'UNKNOWN';
/** The code answering a command that has no responder. */
export const UNHANDLED_ERROR_CODE = 'UNHANDLED';

/**
 * Handles one request box: returns the answer box (without `_answer`), or a
 * Deferred/Promise of it; a throw or failure becomes an error answer (a
 * {@link RemoteAmpError} with its code, anything else `UNKNOWN`).
 */
export type Responder = (box: AmpBox) => AmpBox | Deferred<AmpBox> | PromiseLike<AmpBox>;

/** Finds the responder for a command name (Twisted's `IResponderLocator`). */
export interface IResponderLocator {
  /** The responder for `name` (a byte string), or `null` for an `UNHANDLED` answer. */
  locateResponder(name: string): Responder | null;
}

/** Arguments of `callRemote`: optional when the command has no required ones. */
export type CallArguments<A extends ArgumentSchema> =
  Record<never, never> extends ArgumentsIn<A> ? [args?: ArgumentsIn<A>] : [args: ArgumentsIn<A>];

/**
 * What `callRemote` returns for a command with response schema `R` whose
 * `requiresAnswer` is `RA`: a Deferred of the decoded response for `true`,
 * `undefined` for `false`, and either for `boolean` (not known statically).
 */
export type CallRemoteResult<R extends ArgumentSchema, RA extends boolean> = RA extends true
  ? Deferred<ArgumentsOut<R>>
  : undefined;

const NO_ARGUMENTS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * Dispatches boxes both ways; it is the {@link IBoxReceiver} of a
 * {@link BinaryBoxProtocol} and sends through it.
 *
 * Request tags are the lowercase hex of a per-connection counter starting at
 * 1 (`b'%x' % counter`, as Twisted); a request sent without `_ask` still
 * uses up a number.
 *
 * When the connection closes, every request still waiting fails: with the
 * protocol error that made this side close it (e.g. {@link TooLong}), with
 * the transport's `ConnectionLost` (or subclass), or, after a clean close,
 * with a `ConnectionLost` whose `cause` is the `ConnectionDone`. Later
 * `callRemote`s fail the same way at once.
 */
export class BoxDispatcher implements IBoxReceiver {
  /** Where incoming commands are looked up. */
  locator: IResponderLocator;
  /** Where boxes are sent; set by `startReceivingBoxes`. */
  boxSender: IBoxSender | null = null;
  /** The AMP handed to argument types when encoding and decoding, if any. */
  readonly proto: AMP | null;

  #outstanding = new Map<string, Deferred<AmpBox>>();
  #failAllReason: Failure | null = null;
  #counter = 0;

  constructor(locator: IResponderLocator, proto: AMP | null = null) {
    this.locator = locator;
    this.proto = proto;
  }

  /** How many requests wait for an answer. */
  get outstandingCount(): number {
    return this.#outstanding.size;
  }

  /** Boxes will come from (and answers go to) `sender`. */
  startReceivingBoxes(sender: IBoxSender): void {
    this.boxSender = sender;
  }

  /** The connection is gone: fails every waiting request (see the class documentation). */
  stopReceivingBoxes(reason: Failure): void {
    const why = reason.check(ConnectionDone)
      ? new Failure(
          new ConnectionLost('Connection closed before the answer arrived.', {
            cause: reason.value,
          }),
        )
      : reason;
    this.failAllOutgoing(why);
  }

  /**
   * Fails every waiting request with `reason`; from then on `callRemote`
   * fails at once with it too. Only the first call has an effect.
   */
  failAllOutgoing(reason: Failure): void {
    if (this.#failAllReason !== null) return;
    this.#failAllReason = reason;
    const waiting = Array.from(this.#outstanding.values());
    this.#outstanding.clear();
    for (const deferred of waiting) deferred.errback(reason);
  }

  // ------------------------------------------------------------------ sending

  /**
   * Sends `command` with the raw `box` (the low-level API, Twisted's
   * `callRemoteString`). The box is changed: `_command` and `_ask` are set.
   *
   * @returns a Deferred of the answer box (it fails with
   *   {@link RemoteAmpError}, or {@link UnhandledCommand} for `UNHANDLED`);
   *   `undefined` when `requiresAnswer` is false.
   * @throws (only when `requiresAnswer` is false) what sending throws:
   *   ConnectionLost, NotConnectedError, TooLong.
   */
  callRemoteString(command: string, box?: AmpBox, requiresAnswer?: true): Deferred<AmpBox>;
  callRemoteString(command: string, box: AmpBox | undefined, requiresAnswer: false): undefined;
  callRemoteString(
    command: string,
    box: AmpBox = new AmpBox(),
    requiresAnswer = true,
  ): Deferred<AmpBox> | undefined {
    return this.#sendBoxCommand(command, box, requiresAnswer);
  }

  /**
   * Sends a typed command (see `AMP.callRemote` for the contract).
   */
  callRemote<A extends ArgumentSchema, R extends ArgumentSchema, RA extends boolean>(
    command: Command<A, R, RA>,
    ...args: CallArguments<A>
  ): CallRemoteResult<R, RA> {
    const values = (args[0] ?? NO_ARGUMENTS) as ArgumentsIn<A>;
    if (!command.requiresAnswer) {
      this.#sendBoxCommand(command.name, command.makeArguments(values, this.proto), false);
      return undefined as CallRemoteResult<R, RA>;
    }
    let box: AmpBox;
    try {
      box = command.makeArguments(values, this.proto);
    } catch (error) {
      return fail(error) as CallRemoteResult<R, RA>;
    }
    const sent = this.#sendBoxCommand(command.name, box, true) as Deferred<AmpBox>;
    const erased = command as unknown as Command;
    return sent
      .addCallback(parseAnswer, erased, this.proto)
      .addErrback(massageError, erased) as CallRemoteResult<R, RA>;
  }

  #sendBoxCommand(
    name: string,
    box: AmpBox,
    requiresAnswer: boolean,
  ): Deferred<AmpBox> | undefined {
    if (this.#failAllReason !== null) {
      return requiresAnswer ? fail(this.#failAllReason) : undefined;
    }
    const sender = this.boxSender;
    if (sender === null) {
      const error = new NotConnectedError();
      if (requiresAnswer) return fail(error);
      throw error;
    }
    box.set(COMMAND, Buffer.from(name, 'latin1'));
    const tag = (++this.#counter).toString(16);
    if (requiresAnswer) box.set(ASK, Buffer.from(tag, 'latin1'));
    if (!requiresAnswer) {
      sender.sendBox(box);
      return undefined;
    }
    try {
      sender.sendBox(box);
    } catch (error) {
      return fail(error);
    }
    const deferred = new Deferred<AmpBox>();
    this.#outstanding.set(tag, deferred);
    return deferred;
  }

  // ------------------------------------------------------------------ receiving

  /**
   * Routes a received box: `_answer` and `_error` fire the waiting request,
   * `_command` runs a responder.
   * @throws NoEmptyBoxes for a box with none of those keys.
   * @throws MalformedAmpBox for an answer to no waiting request, or an error
   *   box without `_error_code`.
   */
  ampBoxReceived(box: AmpBox): void {
    const answer = box.get(ANSWER);
    if (answer !== undefined) {
      this.#take(answer).callback(box);
      return;
    }
    const error = box.get(ERROR);
    if (error !== undefined) {
      const code = box.get(ERROR_CODE);
      if (code === undefined) throw new MalformedAmpBox('error box without _error_code');
      const question = this.#take(error);
      const codeText = code.toString('latin1');
      const description = box.get(ERROR_DESCRIPTION)?.toString('utf8') ?? '';
      question.errback(
        new Failure(
          codeText === UNHANDLED_ERROR_CODE
            ? new UnhandledCommand(description, codeText)
            : new RemoteAmpError(codeText, description),
        ),
      );
      return;
    }
    if (box.has(COMMAND)) {
      this.#commandReceived(box);
      return;
    }
    throw new NoEmptyBoxes();
  }

  #take(tag: Buffer): Deferred<AmpBox> {
    const key = tag.toString('latin1');
    const question = this.#outstanding.get(key);
    if (question === undefined) {
      throw new MalformedAmpBox(`answer to a request never asked: ${pythonBytesRepr(tag)}`);
    }
    this.#outstanding.delete(key);
    return question;
  }

  #commandReceived(box: AmpBox): void {
    const ask = box.get(ASK);
    const deferred = this.dispatchCommand(box);
    if (ask !== undefined) {
      deferred.addCallbacks(formatAnswer, formatError, [ask], [ask]).addCallback(safeEmit, this);
    }
    deferred.addErrback(reportUnhandled, this);
  }

  /**
   * Runs the responder for a `_command` box and returns its outcome: the
   * answer box, or a failure (`UNHANDLED` {@link RemoteAmpError} when no
   * responder is found).
   */
  dispatchCommand(box: AmpBox): Deferred<AmpBox> {
    const name = (box.get(COMMAND) as Buffer).toString('latin1');
    const responder = this.locator.locateResponder(name);
    if (responder === null) {
      return fail(
        new RemoteAmpError(
          UNHANDLED_ERROR_CODE,
          `Unhandled Command: ${pythonBytesRepr(name)}`,
          false,
          new Failure(new UnhandledCommand()),
        ),
      );
    }
    return maybeDeferred(responder, box) as Deferred<AmpBox>;
  }

  /** Hands `failure` to the sender's `unhandledError` (log and drop the connection). */
  unhandledError(failure: Failure): void {
    if (this.boxSender !== null) this.boxSender.unhandledError(failure);
    else err(failure, 'AMP: unhandled error');
  }

  /** Sends an answer or error box, ignoring a connection that has gone meanwhile. */
  safeEmit(box: AmpBox): void {
    try {
      this.boxSender?.sendBox(box);
    } catch (error) {
      if (!(error instanceof ConnectionLost || error instanceof TransportClosedError)) throw error;
    }
  }
}

// Chain links as module functions with arguments, not per-request closures.

function parseAnswer(box: AmpBox, command: Command, proto: AMP | null): unknown {
  return command.parseResponse(box, proto);
}

/** An error answer becomes the command's declared class, else UnknownRemoteError. */
function massageError(failure: Failure, command: Command): Failure {
  const error = failure.value;
  if (!(error instanceof RemoteAmpError)) return failure;
  const ErrorClass = command.errorClassFor(error.errorCode);
  return new Failure(
    ErrorClass !== undefined
      ? new ErrorClass(error.description)
      : new UnknownRemoteError(error.description, error.errorCode),
  );
}

function formatAnswer(box: AmpBox, ask: Buffer): AmpBox {
  box.set(ANSWER, ask);
  return box;
}

/**
 * A responder's failure as an error box: a RemoteAmpError keeps its code
 * (fatal ones close the connection); anything else is logged and answered
 * `UNKNOWN` / `Unknown Error`, and the connection is closed, as Twisted.
 */
function formatError(failure: Failure, ask: Buffer): AmpBox {
  const error = failure.value;
  let box: AmpBox;
  let code: string;
  let description: string;
  if (error instanceof RemoteAmpError) {
    code = error.errorCode;
    description = error.description;
    box = error.fatal ? new QuitBox() : new AmpBox();
  } else {
    err(failure, 'AMP responder failed');
    code = UNKNOWN_ERROR_CODE;
    description = 'Unknown Error';
    box = new QuitBox();
  }
  box.set(ERROR, ask);
  box.set(ERROR_DESCRIPTION, Buffer.from(description, 'utf8'));
  box.set(ERROR_CODE, Buffer.from(code, 'latin1'));
  return box;
}

function safeEmit(box: AmpBox, dispatcher: BoxDispatcher): void {
  dispatcher.safeEmit(box);
}

function reportUnhandled(failure: Failure, dispatcher: BoxDispatcher): void {
  dispatcher.unhandledError(failure);
}
