/**
 * System event triggers (Twisted's `_ThreePhaseEvent`), shared by every
 * reactor: the real one and the test doubles.
 *
 * @module
 */

import { Deferred, isThenable } from './deferred.js';
import { InvalidArgumentError } from './errors.js';
import type { SystemEvent, TriggerId, TriggerPhase } from './interfaces.js';
import { err } from './log.js';

const PHASES: readonly TriggerPhase[] = ['before', 'during', 'after'];

/** A system event trigger; the object is its own {@link TriggerId}. */
class Trigger {
  constructor(
    readonly phase: TriggerPhase,
    readonly fn: (...args: never[]) => unknown,
    readonly args: unknown[],
  ) {}
}

/** The pending triggers of one system event, by phase. */
interface EventTriggers {
  before: Trigger[];
  during: Trigger[];
  after: Trigger[];
}

/**
 * Called at the start of each phase of a firing, before its triggers: it may
 * push Deferreds/thenables that the phase then waits for too (the reactor
 * stops its ports this way in `during shutdown`).
 */
export type PhaseHook = (phase: TriggerPhase, waits: PromiseLike<unknown>[]) => void;

/**
 * The triggers of every system event. Triggers are one-shot, as in Twisted: a
 * trigger runs once, the next time its event fires, and is then gone.
 */
export class SystemEventTriggers {
  readonly #events = new Map<SystemEvent, EventTriggers>();

  /**
   * Adds a one-shot trigger: `fn(...args)` runs in `phase` of the next firing
   * of `event`, after the triggers already added to that phase. A trigger added
   * to a phase that is running runs in that same phase.
   * @throws InvalidArgumentError for an unknown phase or a non-function `fn`.
   */
  add<A extends unknown[]>(
    phase: TriggerPhase,
    event: SystemEvent,
    fn: (...args: A) => unknown,
    args: A,
  ): TriggerId {
    if (!PHASES.includes(phase)) {
      throw new InvalidArgumentError(`unknown trigger phase ${JSON.stringify(phase)}`);
    }
    if (typeof fn !== 'function') {
      throw new InvalidArgumentError('a system event trigger must be a function');
    }
    const trigger = new Trigger(phase, fn as (...args: never[]) => unknown, args);
    this.#triggersOf(event)[phase].push(trigger);
    return trigger;
  }

  /**
   * Removes a trigger that has not run yet.
   * @throws InvalidArgumentError if `id` is unknown, already removed, or its
   *   trigger has run.
   */
  remove(id: TriggerId): void {
    if (id instanceof Trigger) {
      for (const triggers of this.#events.values()) {
        const list = triggers[id.phase];
        const index = list.indexOf(id);
        if (index !== -1) {
          list.splice(index, 1);
          return;
        }
      }
    }
    throw new InvalidArgumentError('unknown system event trigger (removed, or already run)');
  }

  /**
   * Fires `event`: runs and consumes its `before` triggers in order, waits for
   * the Deferreds/thenables they returned, then the same for `during` and
   * `after`. Failures are logged (with `err()`) and never stop the event.
   * @returns a Deferred that fires (never fails) when the `after` phase is
   *   done; already fired if nothing had to be waited for.
   */
  fire(event: SystemEvent, hook?: PhaseHook): Deferred<void> {
    const done = new Deferred<void>();
    this.#runPhase(event, this.#triggersOf(event), 0, done, hook);
    return done;
  }

  #triggersOf(event: SystemEvent): EventTriggers {
    let triggers = this.#events.get(event);
    if (triggers === undefined) {
      triggers = { before: [], during: [], after: [] };
      this.#events.set(event, triggers);
    }
    return triggers;
  }

  #runPhase(
    event: SystemEvent,
    triggers: EventTriggers,
    phaseIndex: number,
    done: Deferred<void>,
    hook: PhaseHook | undefined,
  ): void {
    for (; phaseIndex < PHASES.length; phaseIndex++) {
      const phase = PHASES[phaseIndex];
      const waits: PromiseLike<unknown>[] = [];
      hook?.(phase, waits);
      const list = triggers[phase];
      while (list.length > 0) {
        const trigger = list.shift()!;
        try {
          const result = trigger.fn(...(trigger.args as never[]));
          if (isThenable(result)) waits.push(result);
        } catch (error) {
          err(error, `Error in '${phase} ${event}' system event trigger`);
        }
      }
      if (waits.length > 0) {
        const next = phaseIndex + 1;
        let pending = waits.length;
        const settle = () => {
          if (--pending === 0) this.#runPhase(event, triggers, next, done, hook);
        };
        for (const wait of waits) {
          const d = wait instanceof Deferred ? wait : Deferred.fromPromise(wait);
          d.addCallbacks(settle, (failure) => {
            err(failure, `Error in '${phase} ${event}' system event trigger`);
            settle();
          });
        }
        return;
      }
    }
    done.callback(undefined);
  }
}
