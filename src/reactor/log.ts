/**
 * A minimal pluggable log, in the spirit of `twisted.python.log`: `msg` for
 * information, `err` for failures nobody handled. Observers can be added (a
 * test captures errors with one); with none, output goes to the console.
 *
 * @module
 */

import { Failure } from './failure.js';

/** One log event. `failure` is set for errors. */
export interface LogEvent {
  readonly isError: boolean;
  readonly message: string;
  readonly failure?: Failure;
}

/** Receives every log event. */
export type LogObserver = (event: LogEvent) => void;

const observers: LogObserver[] = [];

function emit(event: LogEvent): void {
  if (observers.length === 0) {
    if (event.isError) {
      console.error(event.message);
      if (event.failure) console.error(event.failure.getTraceback());
    } else {
      console.log(event.message);
    }
    return;
  }
  for (const observer of observers.slice()) observer(event);
}

/** Logs an informational message. */
export function msg(message: string): void {
  emit({ isError: false, message });
}

/**
 * Logs an error that nobody handled. `error` may be a Failure or any thrown
 * value; `why` says what was going on.
 */
export function err(error: unknown, why = 'Unhandled error'): void {
  const failure = Failure.from(error);
  emit({ isError: true, message: `${why}: ${failure.getErrorMessage()}`, failure });
}

/**
 * Adds an observer; while any observer is present, console output stops.
 * Returns a function that removes it.
 */
export function addObserver(observer: LogObserver): () => void {
  observers.push(observer);
  return () => removeObserver(observer);
}

/** Removes an observer added with {@link addObserver}. */
export function removeObserver(observer: LogObserver): void {
  const index = observers.indexOf(observer);
  if (index !== -1) observers.splice(index, 1);
}
