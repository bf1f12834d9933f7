/**
 * The errors of child processes: how a child ended (`ProcessDone`,
 * `ProcessTerminated`), why it could not start (`ProcessSpawnError`), and
 * what the process transport refuses.
 *
 * @module
 */

import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { ConnectionDone, ConnectionLost, TorsionError } from './errors.js';

const SIGNAL_NUMBERS = osConstants.signals as Readonly<Record<string, number>>;

/** The child exited with code 0 (Twisted's `ProcessDone`). */
export class ProcessDone extends ConnectionDone {
  override readonly code: string = 'TORSION_ERR_PROCESS_DONE';
  /** Always 0. */
  readonly exitCode = 0;
  /** Always `null`. */
  readonly signal = null;

  constructor() {
    super('A process has ended without apparent errors: process finished with exit code 0.');
  }
}

/**
 * The child exited with a non-zero code, or was killed by a signal
 * (Twisted's `ProcessTerminated`). Exactly one of `exitCode` and `signal`
 * is set.
 */
export class ProcessTerminated extends ConnectionLost {
  /** The exit code, or `null` when a signal ended the child. */
  readonly exitCode: number | null;
  /** The signal's name (`'SIGKILL'`), or `null` when the child exited. */
  readonly signal: NodeJS.Signals | null;
  /** The signal's number (9 for `SIGKILL`), or `null`. */
  readonly signalNumber: number | null;

  constructor(exitCode: number | null, signal: NodeJS.Signals | null) {
    const how =
      signal === null
        ? `with exit code ${exitCode}`
        : `by signal ${signal} (${SIGNAL_NUMBERS[signal]})`;
    super(
      `A process has ended with a probable error condition: process ended ${how}.`,
      undefined,
      'TORSION_ERR_PROCESS_TERMINATED',
    );
    this.exitCode = signal === null ? exitCode : null;
    this.signal = signal;
    this.signalNumber = signal === null ? null : (SIGNAL_NUMBERS[signal] ?? null);
  }
}

/**
 * The child could not be started. `errorCode` is the system's code
 * (`'ENOENT'`…); `cause` is Node's error.
 */
export class ProcessSpawnError extends ConnectionLost {
  /** The system error code: `'ENOENT'`, `'EACCES'`, `'EAGAIN'`… */
  readonly errorCode: string;
  /** The executable that was to be run. */
  readonly executable: string;

  constructor(executable: string, cause: NodeJS.ErrnoException, cwd: string | undefined) {
    const code = cause.code ?? 'UNKNOWN';
    let why = cause.message;
    if (code === 'ENOENT') {
      why =
        cwd !== undefined && !existsSync(cwd)
          ? `the working directory ${cwd} does not exist (ENOENT)`
          : `no such executable (ENOENT)`;
    }
    super(`Could not start ${executable}: ${why}`, { cause }, 'TORSION_ERR_PROCESS_SPAWN');
    this.errorCode = code;
    this.executable = executable;
  }
}

/** The process has already exited, and the operation can no longer be performed. */
export class ProcessExitedAlready extends TorsionError {
  constructor(
    message = 'The process has already exited, and the operation requested can no longer be performed.',
  ) {
    super(message, 'TORSION_ERR_PROCESS_EXITED_ALREADY');
  }
}

/** Sending a signal failed for another reason than the child being gone (`EPERM`…). */
export class ProcessSignalError extends TorsionError {
  constructor(signal: string | number, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`Could not send signal ${signal}: ${why}`, 'TORSION_ERR_PROCESS_SIGNAL', { cause });
  }
}

/** `usePTY: true`: torsion has no pseudo-terminal support (Node has none built in). */
export class PTYNotSupportedError extends TorsionError {
  constructor(
    message = 'usePTY is not supported: Node has no built-in pseudo-terminals (use a pty package)',
  ) {
    super(message, 'TORSION_ERR_PTY_NOT_SUPPORTED');
  }
}
