import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Deferred } from '../src/reactor/deferred.js';
import {
  AlreadyCalled,
  InvalidArgumentError,
  ReactorAlreadyRunning,
  ReactorNotRunning,
} from '../src/reactor/errors.js';
import type { IDelayedCall, IProtocolFactory } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor as defaultReactor, NodeReactor } from '../src/reactor/reactor.js';

const NO_SIGNALS = { installSignalHandlers: false };

/** How many Node timers (setTimeout) are alive in this process. */
function liveTimeouts(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

/** Collects logged errors while `fn` runs. */
async function captureErrors(fn: () => Promise<void> | void): Promise<LogEvent[]> {
  const events: LogEvent[] = [];
  const remove = addObserver((event) => {
    if (event.isError) events.push(event);
  });
  try {
    await fn();
  } finally {
    remove();
  }
  return events;
}

describe('NodeReactor: run and stop', () => {
  test('the default reactor is a NodeReactor, not running', () => {
    assert.ok(defaultReactor instanceof NodeReactor);
    assert.equal(defaultReactor.running, false);
  });

  test('run() starts it; stop() stops it; the run Deferred fires when stopped', async () => {
    const r = new NodeReactor();
    assert.equal(r.running, false);
    const stopped = r.run(NO_SIGNALS);
    assert.equal(r.running, true);
    assert.equal(stopped.called, false);
    r.stop();
    assert.equal(r.running, true, 'still running until the shutdown event completes');
    await stopped;
    assert.equal(r.running, false);
  });

  test('stop() when not running, or already stopping, throws ReactorNotRunning', async () => {
    const r = new NodeReactor();
    assert.throws(() => r.stop(), ReactorNotRunning);
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    assert.throws(() => r.stop(), ReactorNotRunning);
    await stopped;
    assert.throws(() => r.stop(), ReactorNotRunning);
  });

  test('run() while running (or stopping) throws ReactorAlreadyRunning', async () => {
    const r = new NodeReactor();
    const stopped = r.run(NO_SIGNALS);
    assert.throws(() => r.run(NO_SIGNALS), ReactorAlreadyRunning);
    r.stop();
    assert.throws(() => r.run(NO_SIGNALS), ReactorAlreadyRunning);
    await stopped;
  });

  test('the reactor can be run and stopped several times', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    for (let i = 0; i < 3; i++) {
      r.addSystemEventTrigger('after', 'shutdown', () => log.push(`stopped ${i}`));
      const stopped = r.run(NO_SIGNALS);
      r.callWhenRunning(() => r.stop());
      await stopped;
    }
    assert.deepEqual(log, ['stopped 0', 'stopped 1', 'stopped 2']);
  });

  test('stop() fires shutdown on a later turn, not in the caller', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.addSystemEventTrigger('before', 'shutdown', () => log.push('before shutdown'));
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    log.push('stop returned');
    await stopped;
    assert.deepEqual(log, ['stop returned', 'before shutdown']);
  });

  test('lifecycle events: startup, shutdown, stopped', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.on('startup', () => log.push(`startup running=${r.running}`));
    r.on('shutdown', () => log.push('shutdown'));
    r.on('stopped', () => log.push(`stopped running=${r.running}`));
    r.addSystemEventTrigger('after', 'startup', () => log.push('after startup'));
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    await stopped;
    assert.deepEqual(log, [
      'after startup',
      'startup running=true',
      'shutdown',
      'stopped running=false',
    ]);
  });

  test('delayed calls stay active and cancellable after shutdown', async () => {
    const r = new NodeReactor();
    const stopped = r.run(NO_SIGNALS);
    const call = r.callLater(60, () => {});
    r.stop();
    await stopped;
    assert.equal(call.active(), true);
    call.cancel();
    assert.deepEqual(r.getDelayedCalls(), []);
  });
});

describe('NodeReactor: system event triggers', () => {
  test('phases run before → during → after, in the order added', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.addSystemEventTrigger('after', 'shutdown', () => log.push('after 1'));
    r.addSystemEventTrigger('during', 'shutdown', () => log.push('during 1'));
    r.addSystemEventTrigger('before', 'shutdown', () => log.push('before 1'));
    r.addSystemEventTrigger('before', 'shutdown', (x: string) => log.push(x), 'before 2');
    r.addSystemEventTrigger('after', 'shutdown', () => log.push('after 2'));
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    await stopped;
    assert.deepEqual(log, ['before 1', 'before 2', 'during 1', 'after 1', 'after 2']);
  });

  test('startup triggers run inside run(), before callWhenRunning calls', () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.callWhenRunning((x: number) => log.push(`cwr ${x}`), 1);
    r.addSystemEventTrigger('before', 'startup', () => log.push(`before running=${r.running}`));
    r.addSystemEventTrigger('during', 'startup', () => log.push('during'));
    r.addSystemEventTrigger('after', 'startup', () => log.push('after'));
    r.callWhenRunning(() => log.push('cwr 2'));
    r.run(NO_SIGNALS);
    assert.deepEqual(log, ['before running=true', 'during', 'cwr 1', 'after', 'cwr 2']);
    const stopped = new Promise<void>((resolve) => r.once('stopped', resolve));
    r.stop();
    return stopped;
  });

  test('callWhenRunning on a running reactor calls at once and returns undefined', async () => {
    const r = new NodeReactor();
    const stopped = r.run(NO_SIGNALS);
    const log: number[] = [];
    const id = r.callWhenRunning((a: number, b: number) => log.push(a + b), 2, 3);
    assert.equal(id, undefined);
    assert.deepEqual(log, [5]);
    r.stop();
    await stopped;
  });

  test('a trigger returning a Deferred holds the next phase until it fires', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    const gate = new Deferred<string>();
    r.addSystemEventTrigger('before', 'shutdown', () => {
      log.push('before: waiting');
      return gate;
    });
    r.addSystemEventTrigger('before', 'shutdown', () => log.push('before 2'));
    r.addSystemEventTrigger('during', 'shutdown', () => log.push('during'));
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    while (!log.includes('before 2')) await new Promise((resolve) => setImmediate(resolve));
    // Several turns pass; the during phase must not start.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['before: waiting', 'before 2']);
    assert.equal(r.running, true);
    gate.callback('open');
    assert.deepEqual(log, ['before: waiting', 'before 2', 'during']);
    await stopped;
  });

  test('a trigger returning a Promise is waited for too', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.addSystemEventTrigger('during', 'custom', async () => {
      await null;
      await null;
      log.push('during (async) done');
    });
    r.addSystemEventTrigger('after', 'custom', () => log.push('after'));
    await r.fireSystemEvent('custom');
    assert.deepEqual(log, ['during (async) done', 'after']);
  });

  test('a throwing or failing trigger is logged and the event goes on', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    const errors = await captureErrors(async () => {
      r.addSystemEventTrigger('before', 'custom', () => {
        throw new Error('thrown');
      });
      r.addSystemEventTrigger('before', 'custom', () => Promise.reject(new Error('rejected')));
      r.addSystemEventTrigger('during', 'custom', () => log.push('during'));
      const done = r.fireSystemEvent('custom');
      await done;
    });
    assert.deepEqual(log, ['during']);
    assert.deepEqual(
      errors.map((e) => e.failure?.getErrorMessage()),
      ['thrown', 'rejected'],
    );
  });

  test('fireSystemEvent with only synchronous triggers completes at once', () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.addSystemEventTrigger('during', 'custom', () => log.push('ran'));
    const done = r.fireSystemEvent('custom');
    assert.equal(done.called, true);
    assert.deepEqual(log, ['ran']);
  });

  test('triggers are one-shot; one added to a running phase runs in it', () => {
    const r = new NodeReactor();
    const log: string[] = [];
    r.addSystemEventTrigger('before', 'custom', () => {
      log.push('first');
      r.addSystemEventTrigger('before', 'custom', () => log.push('added during before'));
    });
    r.fireSystemEvent('custom');
    r.fireSystemEvent('custom');
    assert.deepEqual(log, ['first', 'added during before']);
  });

  test('removeSystemEventTrigger removes; unknown, removed or run ids throw', () => {
    const r = new NodeReactor();
    const log: string[] = [];
    const keep = r.addSystemEventTrigger('during', 'custom', () => log.push('kept'));
    const drop = r.addSystemEventTrigger('during', 'custom', () => log.push('dropped'));
    const cwr = r.callWhenRunning(() => log.push('cwr'));
    assert.ok(cwr !== undefined);
    r.removeSystemEventTrigger(drop);
    r.removeSystemEventTrigger(cwr);
    assert.throws(() => r.removeSystemEventTrigger(drop), InvalidArgumentError);
    assert.throws(() => r.removeSystemEventTrigger({}), InvalidArgumentError);
    r.fireSystemEvent('custom');
    r.fireSystemEvent('startup');
    assert.deepEqual(log, ['kept']);
    assert.throws(() => r.removeSystemEventTrigger(keep), InvalidArgumentError);
  });

  test('addSystemEventTrigger rejects an unknown phase', () => {
    const r = new NodeReactor();
    assert.throws(
      () => r.addSystemEventTrigger('later' as 'after', 'shutdown', () => {}),
      InvalidArgumentError,
    );
  });
});

describe('NodeReactor: signals', () => {
  test('SIGINT stops a reactor run with signal handlers; they are removed on stop', async () => {
    const r = new NodeReactor();
    const before = process.listenerCount('SIGINT');
    const beforeTerm = process.listenerCount('SIGTERM');
    const stopped = r.run();
    assert.equal(process.listenerCount('SIGINT'), before + 1);
    assert.equal(process.listenerCount('SIGTERM'), beforeTerm + 1);
    process.emit('SIGINT', 'SIGINT');
    assert.equal(process.listenerCount('SIGINT'), before);
    assert.equal(process.listenerCount('SIGTERM'), beforeTerm);
    await stopped;
    assert.equal(r.running, false);
  });

  test('SIGTERM stops it too', async () => {
    const r = new NodeReactor();
    const stopped = r.run();
    process.emit('SIGTERM', 'SIGTERM');
    await stopped;
    assert.equal(r.running, false);
  });

  test('installSignalHandlers: false installs none; stop() removes them', async () => {
    const r = new NodeReactor();
    const before = process.listenerCount('SIGINT');
    let stopped = r.run(NO_SIGNALS);
    assert.equal(process.listenerCount('SIGINT'), before);
    r.stop();
    await stopped;
    stopped = r.run();
    assert.equal(process.listenerCount('SIGINT'), before + 1);
    r.stop();
    assert.equal(process.listenerCount('SIGINT'), before);
    await stopped;
  });
});

describe('NodeReactor: delayed calls', () => {
  test('10,000 calls, half cancelled, run in (time, scheduling) order', async () => {
    const r = new NodeReactor();
    const ran: number[] = [];
    const calls: IDelayedCall[] = [];
    for (let i = 0; i < 10_000; i++) {
      calls.push(r.callLater(((i * 7919) % 13) / 2000, (n: number) => ran.push(n), i));
    }
    const kept: number[] = [];
    for (let i = 0; i < calls.length; i++) {
      if ((i * 31) % 2 === 0) kept.push(i);
      else calls[i].cancel();
    }
    kept.sort((x, y) => calls[x].getTime() - calls[y].getTime() || x - y);
    const done = new Deferred<void>();
    r.callLater(0.01, () => done.callback(undefined));
    await done;
    while (ran.length < kept.length) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(ran, kept);
    assert.deepEqual(r.getDelayedCalls(), []);
  });

  test('one Node timer at most, and none once every call is cancelled', () => {
    const r = new NodeReactor();
    const base = liveTimeouts();
    const calls = [5, 3, 8, 1, 9].map((delay) => r.callLater(delay, () => {}));
    assert.equal(liveTimeouts(), base + 1);
    for (const call of calls.slice(0, 4)) call.cancel();
    assert.equal(liveTimeouts(), base + 1);
    calls[4].cancel();
    assert.equal(liveTimeouts(), base);
  });

  test('no timer is left once the last call has run', async () => {
    const r = new NodeReactor();
    const base = liveTimeouts();
    const done = new Deferred<void>();
    r.callLater(0.001, () => done.callback(undefined));
    await done;
    assert.equal(liveTimeouts(), base);
    assert.deepEqual(r.getDelayedCalls(), []);
  });

  test('an earlier call re-arms the timer; reset and delay still deliver in order', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    const later = r.callLater(30, () => log.push('later'));
    r.callLater(0.002, () => log.push('soon'));
    later.reset(0.003);
    const cancelled = r.callLater(0, () => log.push('never'));
    cancelled.cancel();
    assert.throws(() => cancelled.cancel());
    while (log.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(log, ['soon', 'later']);
    assert.throws(() => later.cancel(), AlreadyCalled);
  });

  test('callLater(0) runs on a later turn, not synchronously', async () => {
    const r = new NodeReactor();
    const log: string[] = [];
    const done = new Deferred<void>();
    r.callLater(0, () => {
      log.push('call');
      done.callback(undefined);
    });
    log.push('sync');
    await done;
    assert.deepEqual(log, ['sync', 'call']);
  });
});

describe('NodeReactor: listening ports and shutdown', () => {
  /** Refuses every connection: enough to bind a port. */
  const refuser = (): IProtocolFactory => ({
    buildProtocol: () => null,
    doStart: () => {},
    doStop: () => {},
  });

  test("shutdown's during phase stops TCP and UNIX ports before the after phase", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torsion-reactor-'));
    try {
      const r = new NodeReactor();
      const log: string[] = [];
      const tcp = r.listenTCP(0, refuser(), { interface: '127.0.0.1' });
      const unix = r.listenUNIX(join(dir, 'sock'), refuser());
      await tcp.whenListening();
      await unix.whenListening();
      tcp.on('close', () => log.push('tcp closed'));
      unix.on('close', () => log.push('unix closed'));
      r.addSystemEventTrigger('during', 'shutdown', () => log.push('during'));
      r.addSystemEventTrigger('after', 'shutdown', () => log.push('after'));
      const stopped = r.run(NO_SIGNALS);
      r.stop();
      await stopped;
      assert.deepEqual(log.slice(0, 1), ['during']);
      assert.deepEqual(new Set(log.slice(1, 3)), new Set(['tcp closed', 'unix closed']));
      assert.equal(log[3], 'after');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a port stopped before shutdown is forgotten', async () => {
    const r = new NodeReactor();
    const port = r.listenTCP(0, refuser(), { interface: '127.0.0.1' });
    await port.whenListening();
    await port.stopListening();
    let closes = 0;
    port.on('close', () => closes++);
    const stopped = r.run(NO_SIGNALS);
    r.stop();
    await stopped;
    assert.equal(closes, 0);
  });
});
