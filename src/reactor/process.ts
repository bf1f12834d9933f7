/**
 * Child processes: `spawnProcess` and {@link Process}, the transport a
 * process protocol controls its child through (Twisted's
 * `twisted.internet.process.Process`), over `child_process.spawn` (never a
 * shell).
 *
 * As in Twisted, `args[0]` is the child's `argv[0]` (its name), not its
 * first argument: `spawnProcess(p, 'ls', ['ls', '-la'])`.
 *
 * Starting can fail in two ways. Arguments Node rejects before trying (a
 * non-string, a NUL byte…) throw `InvalidArgumentError` from `spawnProcess`.
 * A failure of the start itself (`ENOENT`: no such executable *or* working
 * directory; `EACCES`; `EAGAIN`…) is asynchronous in Node, and so always
 * here: the protocol is connected as usual, then on a later turn gets
 * `processExited` and `processEnded` with {@link ProcessSpawnError}. (Twisted
 * forks first, so its child fails to `exec` and ends with exit code 1.)
 *
 * @module
 */

import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { InvalidArgumentError, ProducerAlreadyRegistered, TransportClosedError } from './errors.js';
import { Failure } from './failure.js';
import type {
  ChildFD,
  IProcessProtocol,
  IProcessTransport,
  IPullProducer,
  IPushProducer,
  IReactorTime,
  ProcessSignal,
  SpawnProcessOptions,
} from './interfaces.js';
import { err } from './log.js';
import {
  ProcessDone,
  ProcessExitedAlready,
  ProcessSignalError,
  ProcessSpawnError,
  ProcessTerminated,
  PTYNotSupportedError,
} from './process-errors.js';
import { ProducerSlot } from './producer-slot.js';
import { DEFAULT_HIGH_WATER_MARK } from './stream.js';

export {
  ProcessDone,
  ProcessExitedAlready,
  ProcessSignalError,
  ProcessSpawnError,
  ProcessTerminated,
  PTYNotSupportedError,
} from './process-errors.js';

const SIGNAL_NUMBERS = osConstants.signals as Readonly<Record<string, number>>;

// ====================================================================== pipes

const kPipe = Symbol('torsion.pipe');
type PipeSocket = Socket & { [kPipe]: Pipe };

/** The parent's end of one of the child's file descriptors. */
class Pipe {
  /** `write()` is allowed ('w' pipes, until closed). */
  writable: boolean;
  /** `closeChildFD` was called: a stdin with a producer closes once it unregisters. */
  closing = false;
  /** `end()`/`destroy()` was called. */
  ended = false;

  constructor(
    readonly process: Process,
    readonly fd: number,
    readonly kind: 'r' | 'w',
    readonly socket: PipeSocket,
  ) {
    this.writable = kind === 'w';
  }
}

let pipeOnData: (this: PipeSocket, chunk: Buffer) => void;
let pipeOnError: (this: PipeSocket, error: Error) => void;
let pipeOnClose: (this: PipeSocket) => void;
let pipeOnDrain: (this: PipeSocket) => void;
let childOnExit: (this: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => void;
let childOnError: (this: ChildProcess, error: NodeJS.ErrnoException) => void;

function discard(): void {}

const kProcess = Symbol('torsion.process');
type OwnedChild = ChildProcess & { [kProcess]: Process };

const NULL_PROTOCOL: IProcessProtocol = {
  makeConnection() {},
  childDataReceived() {},
  childConnectionLost() {},
  processExited() {},
  processEnded() {},
};

// ====================================================================== Process

/** Options of `spawnProcess` beyond {@link SpawnProcessOptions}. */
export interface ProcessOptions extends SpawnProcessOptions {
  /**
   * Unflushed stdin bytes above which a streaming producer is paused
   * (default 64 KiB).
   */
  highWaterMark?: number;
}

/**
 * A child process as its protocol's transport. See {@link IProcessTransport}
 * for the contract and {@link IProcessProtocol} for the order of calls.
 *
 * Stdin flow control works as a TCP transport's writes: a streaming producer
 * registered with `registerProducer` is paused when the unflushed bytes pass
 * the high-water mark and resumed when they have drained; a pull producer
 * gets `resumeProducing()` at once and after each flush. When stdin closes
 * (the child exited, or closed it) the producer gets `stopProducing()`.
 *
 * `pauseProducing()` stops reading every pipe the parent reads; output then
 * waits in the pipes (and a child writing more blocks). A paused pipe with
 * data in it keeps `processEnded` waiting until it is resumed and drained.
 * (One leak in the pause: Node resumes unread stdio when the child exits,
 * so a paused pipe that reaches end-of-file with nothing unread reports its
 * `childConnectionLost` without waiting for `resumeProducing()`; data is
 * always held back.)
 */
export class Process implements IProcessTransport {
  readonly #reactor: IReactorTime;
  #protocol: IProcessProtocol;
  readonly #child: OwnedChild | null;
  readonly #executable: string;
  readonly #cwd: string | undefined;
  readonly #highWaterMark: number;
  readonly #pipes = new Map<number, Pipe>();
  #pid: number | null;

  /** The child exited (or failed to start): the reason, given to processExited/processEnded. */
  #reason: Failure | null = null;
  #ended = false;
  #readPaused = false;

  /** The producer feeding stdin and its flow control. */
  readonly #slot = new ProducerSlot();

  /** Set by a synchronous `'error'` from `child.kill()`. */
  #killError: Error | null = null;

  /**
   * Wraps `child`'s pipes and connects `protocol` (its `makeConnection`
   * runs here). `spawnProcess` is the way to make one. With `child` null,
   * the start failed inside `spawn()` with `spawnError`, which is delivered
   * on the next reactor turn as Node's asynchronous failures are.
   */
  constructor(
    reactor: IReactorTime,
    protocol: IProcessProtocol,
    child: ChildProcess | null,
    executable: string,
    setup: {
      cwd: string | undefined;
      highWaterMark: number;
      pipes: ReadonlyMap<number, 'r' | 'w'>;
      spawnError: NodeJS.ErrnoException | null;
    },
  ) {
    this.#reactor = reactor;
    this.#protocol = protocol;
    this.#executable = executable;
    this.#cwd = setup.cwd;
    this.#highWaterMark = setup.highWaterMark;
    this.#child = child as OwnedChild | null;
    this.#pid = child?.pid ?? null;
    if (child !== null) {
      const owned = child as OwnedChild;
      owned[kProcess] = this;
      owned.on('exit', childOnExit);
      owned.on('error', childOnError);
      this.#attachPipes(setup.pipes);
    }
    try {
      protocol.makeConnection(this);
    } catch (e) {
      err(e, 'Unhandled error in protocol.makeConnection()');
    }
    if (child === null) {
      const error =
        setup.spawnError ?? Object.assign(new Error('spawn failed'), { code: 'UNKNOWN' });
      this.#reactor.callLater(0, Process.#spawnFailedLater, this, error);
    }
  }

  static {
    pipeOnData = function pipeOnData(this: PipeSocket, chunk: Buffer): void {
      const pipe = this[kPipe];
      const p = pipe.process;
      if (p.#readPaused) {
        // Node resumes unread stdio when the child exits; hold the bytes back.
        this.pause();
        this.unshift(chunk);
        return;
      }
      try {
        p.#protocol.childDataReceived(pipe.fd, chunk);
      } catch (e) {
        err(e, 'Unhandled error in protocol.childDataReceived()');
        p.closeChildFD(pipe.fd);
      }
    };

    pipeOnError = function pipeOnError(this: PipeSocket): void {
      // EPIPE and friends: the pipe is gone; 'close' follows and reports it.
    };

    pipeOnClose = function pipeOnClose(this: PipeSocket): void {
      const pipe = this[kPipe];
      pipe.process.#pipeClosed(pipe);
    };

    pipeOnDrain = function pipeOnDrain(this: PipeSocket): void {
      this[kPipe].process.#slot.drained();
    };

    childOnExit = function childOnExit(
      this: ChildProcess,
      code: number | null,
      signal: NodeJS.Signals | null,
    ): void {
      const reason =
        code === 0 && signal === null ? new ProcessDone() : new ProcessTerminated(code, signal);
      (this as OwnedChild)[kProcess].#exited(new Failure(reason));
    };

    childOnError = function childOnError(this: ChildProcess, error: NodeJS.ErrnoException): void {
      const p = (this as OwnedChild)[kProcess];
      if (error.syscall?.startsWith('spawn')) {
        p.#exited(new Failure(new ProcessSpawnError(p.#executable, error, p.#cwd)));
      } else if (error.syscall === 'kill') {
        p.#killError = error;
      } else {
        err(error, `Error from child process ${p.#executable}`);
      }
    };
  }

  /** Wraps the child's stdio streams; called once by `spawnProcess`. */
  #attachPipes(fds: ReadonlyMap<number, 'r' | 'w'>): void {
    const stdio = this.#child?.stdio ?? [];
    for (const [fd, kind] of fds) {
      const socket = stdio[fd] as PipeSocket | null | undefined;
      if (socket === null || socket === undefined) continue;
      const pipe = new Pipe(this, fd, kind, socket);
      socket[kPipe] = pipe;
      socket.on('error', pipeOnError);
      socket.on('close', pipeOnClose);
      if (kind === 'r') {
        socket.on('data', pipeOnData);
      } else {
        socket.on('drain', pipeOnDrain);
        // A write pipe past fd 0 is a socket pair: read (and drop) so its end is seen.
        if (fd !== 0) socket.on('data', discard);
      }
      this.#pipes.set(fd, pipe);
    }
  }

  // ------------------------------------------------------------------ IProcessTransport

  /** The child's pid while it runs; `null` once it exited, or if it never started. */
  get pid(): number | null {
    return this.#pid;
  }

  /** Unflushed bytes written to stdin (0 once stdin is closed). */
  get bufferedAmount(): number {
    return this.#pipes.get(0)?.socket.writableLength ?? 0;
  }

  /**
   * Writes to the child's stdin; empty data is ignored. With a streaming
   * producer registered, pauses it when the unflushed bytes pass the
   * high-water mark.
   * @throws TransportClosedError once stdin is closed (see {@link IProcessTransport.write}).
   */
  write(data: Uint8Array | string): void {
    const pipe = this.#pipes.get(0);
    if (pipe === undefined || !pipe.writable) throw new TransportClosedError('stdin is closed');
    if (data.length === 0) return;
    const socket = pipe.socket;
    this.#slot.send(socket, data);
    if (this.#slot.pausable && socket.writableLength > this.#highWaterMark) {
      this.#slot.pause(socket);
    }
  }

  /**
   * Writes the buffers to stdin in order, corked into one `writev`.
   * @throws TransportClosedError once stdin is closed.
   */
  writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    const pipe = this.#pipes.get(0);
    if (pipe === undefined || !pipe.writable) throw new TransportClosedError('stdin is closed');
    pipe.socket.cork();
    try {
      for (const chunk of data) this.write(chunk);
    } finally {
      pipe.socket.uncork();
    }
  }

  /**
   * Writes to the child's fd `childFD` (0 is the same as `write`).
   * @throws InvalidArgumentError if `childFD` is not a `'w'` pipe.
   * @throws TransportClosedError once that pipe is closed.
   */
  writeToChild(childFD: number, data: Uint8Array | string): void {
    if (childFD === 0) {
      this.write(data);
      return;
    }
    const pipe = this.#pipes.get(childFD);
    if (pipe === undefined) {
      throw new TransportClosedError(`child fd ${childFD} is not an open pipe`);
    }
    if (pipe.kind !== 'w') {
      throw new InvalidArgumentError(`child fd ${childFD} is a pipe the parent reads, not writes`);
    }
    if (!pipe.writable) throw new TransportClosedError(`child fd ${childFD} is closed`);
    if (data.length > 0) pipe.socket.write(data);
  }

  /**
   * Closes the parent's end of the pipe at `childFD`: a write pipe once its
   * buffered data has flushed (stdin: and once a registered producer has
   * unregistered), a read pipe at once. `childConnectionLost(childFD)`
   * follows. Does nothing for an fd that is not an open pipe.
   */
  closeChildFD(childFD: number): void {
    const pipe = this.#pipes.get(childFD);
    if (pipe === undefined || pipe.closing) return;
    pipe.closing = true;
    if (pipe.kind === 'r') {
      pipe.ended = true;
      pipe.socket.destroy();
    } else if (childFD !== 0 || this.#slot.producer === null) {
      this.#endPipe(pipe);
    }
  }

  /** Closes stdin once what was written has been flushed. */
  closeStdin(): void {
    this.closeChildFD(0);
  }

  /** Closes the stdout pipe at once (unread output is dropped). */
  closeStdout(): void {
    this.closeChildFD(1);
  }

  /** Closes the stderr pipe at once (unread output is dropped). */
  closeStderr(): void {
    this.closeChildFD(2);
  }

  /** Closes stdin, stderr and stdout, as Twisted. The child is not signalled. */
  loseConnection(): void {
    this.closeStdin();
    this.closeStderr();
    this.closeStdout();
  }

  /**
   * Sends `signal` (`'TERM'`, `'SIGTERM'`, 15…) to the child.
   * @throws ProcessExitedAlready if it has exited or never started.
   * @throws InvalidArgumentError for an unknown signal.
   * @throws ProcessSignalError if the kernel refused (`EPERM`).
   */
  signalProcess(signal: ProcessSignal): void {
    const sig = toSignal(signal);
    const child = this.#child;
    if (child === null || this.#reason !== null) throw new ProcessExitedAlready();
    this.#killError = null;
    if (child.kill(sig)) return;
    const error = this.#killError;
    this.#killError = null;
    if (error !== null) throw new ProcessSignalError(signal, error);
    throw new ProcessExitedAlready();
  }

  // ------------------------------------------------------------------ IConsumer (stdin)

  /**
   * Registers the producer feeding stdin. A streaming producer is paused
   * above the high-water mark (checked on each write and at once here) and
   * resumed when stdin has drained; a pull producer gets `resumeProducing()`
   * at once and again each time what was written since has been flushed.
   * Without an open stdin, the producer gets `stopProducing()` at once.
   * @throws ProducerAlreadyRegistered if a producer is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.#slot.producer !== null) throw new ProducerAlreadyRegistered();
    const pipe = this.#pipes.get(0);
    if (pipe === undefined || !pipe.writable) {
      stopProducer(producer);
      return;
    }
    this.#slot.register(
      producer,
      streaming,
      pipe.socket.writableLength > this.#highWaterMark,
      pipe.socket,
    );
  }

  /**
   * Forgets the producer (it is not stopped). If `closeStdin()` was waiting
   * for it, stdin now closes once flushed.
   */
  unregisterProducer(): void {
    if (this.#slot.release() === null) return;
    const pipe = this.#pipes.get(0);
    if (pipe?.closing && !pipe.ended) this.#endPipe(pipe);
  }

  // ------------------------------------------------------------------ IPushProducer (output)

  /** Stops reading the child's output pipes until `resumeProducing()`. */
  pauseProducing(): void {
    if (this.#ended) return;
    this.#readPaused = true;
    for (const pipe of this.#pipes.values()) if (pipe.kind === 'r') pipe.socket.pause();
  }

  /** Reads the child's output again. */
  resumeProducing(): void {
    if (this.#ended) return;
    this.#readPaused = false;
    for (const pipe of this.#pipes.values()) if (pipe.kind === 'r') pipe.socket.resume();
  }

  /** Same as `loseConnection()`. */
  stopProducing(): void {
    this.loseConnection();
  }

  /** `<Process pid=N executable>`, for logs. */
  toString(): string {
    return `<Process pid=${this.#pid} ${this.#executable}>`;
  }

  // ------------------------------------------------------------------ internals

  #endPipe(pipe: Pipe): void {
    pipe.writable = false;
    pipe.ended = true;
    pipe.socket.end();
  }

  #pipeClosed(pipe: Pipe): void {
    if (this.#pipes.get(pipe.fd) !== pipe) return;
    this.#pipes.delete(pipe.fd);
    pipe.writable = false;
    if (pipe.fd === 0) {
      const producer = this.#slot.release();
      if (producer !== null) stopProducer(producer);
    }
    try {
      this.#protocol.childConnectionLost(pipe.fd);
    } catch (e) {
      err(e, 'Unhandled error in protocol.childConnectionLost()');
    }
    this.#maybeEnded();
  }

  #exited(reason: Failure): void {
    if (this.#reason !== null) return;
    this.#reason = reason;
    this.#pid = null;
    try {
      this.#protocol.processExited(reason);
    } catch (e) {
      err(e, 'Unhandled error in protocol.processExited()');
    }
    this.#maybeEnded();
  }

  #maybeEnded(): void {
    const reason = this.#reason;
    if (this.#ended || reason === null || this.#pipes.size > 0) return;
    this.#ended = true;
    const protocol = this.#protocol;
    this.#protocol = NULL_PROTOCOL;
    try {
      protocol.processEnded(reason);
    } catch (e) {
      err(e, 'Unhandled error in protocol.processEnded()');
    }
  }

  /** A start that failed inside `spawn()` itself, delivered as Node's async failures are. */
  static #spawnFailedLater(process: Process, error: NodeJS.ErrnoException): void {
    process.#exited(new Failure(new ProcessSpawnError(process.#executable, error, process.#cwd)));
  }
}

function stopProducer(producer: IPushProducer | IPullProducer): void {
  try {
    producer.stopProducing();
  } catch (e) {
    err(e, 'Unhandled error in producer.stopProducing()');
  }
}

function toSignal(signal: ProcessSignal): NodeJS.Signals | number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && Object.values(SIGNAL_NUMBERS).includes(signal)) return signal;
  } else if (typeof signal === 'string') {
    const name = signal.startsWith('SIG') ? signal : `SIG${signal}`;
    if (Object.hasOwn(SIGNAL_NUMBERS, name)) return name as NodeJS.Signals;
  }
  throw new InvalidArgumentError(`unknown signal: ${String(signal)}`);
}

// ====================================================================== spawnProcess

const DEFAULT_CHILD_FDS: Readonly<Record<number, ChildFD>> = { 0: 'w', 1: 'r', 2: 'r' };

function checkOptions(
  executable: string,
  args: readonly string[],
  options: ProcessOptions,
): { stdio: StdioOptions; pipes: Map<number, 'r' | 'w'>; highWaterMark: number } {
  if (typeof executable !== 'string' || executable === '') {
    throw new InvalidArgumentError('executable must be a non-empty string');
  }
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
    throw new InvalidArgumentError('args must be an array of strings');
  }
  if (options.usePTY) throw new PTYNotSupportedError();
  const { env, path } = options;
  if (env !== undefined) {
    if (env === null || typeof env !== 'object') {
      throw new InvalidArgumentError('env must be an object of strings');
    }
    for (const [key, value] of Object.entries(env)) {
      if (typeof value !== 'string') {
        throw new InvalidArgumentError(`env.${key} must be a string, not ${typeof value}`);
      }
    }
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw new InvalidArgumentError('path must be a non-empty string');
  }
  const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  if (!(highWaterMark >= 0) || !Number.isFinite(highWaterMark)) {
    throw new InvalidArgumentError(`highWaterMark must be a non-negative number: ${highWaterMark}`);
  }
  const stdio: Array<'pipe' | 'ignore' | number> = [];
  const pipes = new Map<number, 'r' | 'w'>();
  for (const [key, spec] of Object.entries(options.childFDs ?? DEFAULT_CHILD_FDS)) {
    const fd = Number(key);
    if (!Number.isInteger(fd) || fd < 0 || fd > 1023) {
      throw new InvalidArgumentError(`childFDs: bad child fd ${key}`);
    }
    if (spec === 'r' || spec === 'w') {
      if (fd === 0 && spec === 'r') {
        throw new InvalidArgumentError(
          "childFDs: fd 0 can only be 'w' (the child reads it) or a parent fd",
        );
      }
      stdio[fd] = 'pipe';
      pipes.set(fd, spec);
    } else if (Number.isInteger(spec) && (spec as number) >= 0) {
      stdio[fd] = spec as number;
    } else {
      throw new InvalidArgumentError(
        `childFDs[${fd}] must be 'r', 'w' or a parent file descriptor, not ${String(spec)}`,
      );
    }
  }
  for (let fd = 0; fd < stdio.length; fd++) stdio[fd] ??= 'ignore';
  while (stdio.length < 3) stdio.push('ignore');
  return { stdio, pipes, highWaterMark };
}

/**
 * Starts `executable` (looked up in `PATH` when it has no slash) with
 * `args` and connects `protocol` to it before returning; no shell is
 * involved. As in Twisted, `args[0]` is the child's `argv[0]` and the real
 * arguments follow (default `[executable]`).
 *
 * The child's environment is exactly `options.env` when given, else the
 * parent's; `options.path` is its working directory. Pipes follow
 * `options.childFDs` (default stdin written by the parent, stdout and stderr
 * read). See {@link IProcessProtocol} for the calls the protocol gets.
 *
 * @throws InvalidArgumentError for bad arguments or options (including
 *   those Node rejects before trying, such as a NUL byte in an argument).
 * @throws PTYNotSupportedError for `usePTY: true`.
 * @returns the child's transport. A child that cannot be started (no such
 *   executable or working directory, no permission…) still gets its
 *   protocol connected; `processExited` and `processEnded` follow on a later
 *   turn with {@link ProcessSpawnError} (and `pid` is `null`).
 */
export function spawnProcess(
  reactor: IReactorTime,
  protocol: IProcessProtocol,
  executable: string,
  args: readonly string[] = [executable],
  options: ProcessOptions = {},
): Process {
  const { stdio, pipes, highWaterMark } = checkOptions(executable, args, options);
  let child: ChildProcess | null = null;
  let syncError: NodeJS.ErrnoException | null = null;
  try {
    child = spawn(executable, args.slice(1), {
      argv0: args[0] ?? executable,
      cwd: options.path,
      env: options.env,
      stdio,
      uid: options.uid,
      gid: options.gid,
      windowsHide: true,
    });
  } catch (e) {
    const error = e as NodeJS.ErrnoException;
    if (typeof error.code === 'string' && error.code.startsWith('ERR_')) {
      throw new InvalidArgumentError(error.message);
    }
    syncError = error;
  }
  return new Process(reactor, protocol, child, executable, {
    cwd: options.path,
    highWaterMark,
    pipes,
    spawnError: syncError,
  });
}
