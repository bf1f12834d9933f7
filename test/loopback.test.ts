/**
 * The async loopback (`loopbackAsync` / `AsyncLoopback`): delivery on later
 * turns only, the Deferred firing once both sides lost the connection, and
 * each fault option (split, delay, drop, breakConnection) stepped with a
 * Clock; producers over it; and `drop` on the synchronous pump.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileSender, LineReceiver } from '../src/protocols/basic.js';
import { AsyncLoopback, loopbackAsync } from '../src/protocols/loopback.js';
import { Protocol } from '../src/protocols/protocol.js';
import { Clock } from '../src/reactor/clock.js';
import type { Deferred } from '../src/reactor/deferred.js';
import { ConnectionDone, ConnectionLost, InvalidArgumentError } from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IPullProducer, IPushProducer } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { connectedServerAndClient } from '../src/testing/pump.js';

/** Records everything that happens to it. */
class Recorder extends Protocol {
  received: Buffer[] = [];
  times: number[] = [];
  reasons: Failure[] = [];
  events: string[] = [];
  clock: Clock | null = null;
  greeting: string | null = null;

  override connectionMade(): void {
    this.events.push('made');
    if (this.greeting !== null) this.transport.write(this.greeting);
  }

  override dataReceived(data: Buffer): void {
    this.received.push(data);
    if (this.clock !== null) this.times.push(this.clock.seconds());
  }

  override connectionLost(reason: Failure): void {
    this.reasons.push(reason);
    this.events.push('lost');
  }

  text(): string {
    return Buffer.concat(this.received).toString();
  }
}

/** Runs the clock's zero-delay turns until `d` fires (bounded). */
function runUntil(clock: Clock, d: Deferred<unknown>, step = 0, maxTurns = 100_000): number {
  let turns = 0;
  while (!d.called && turns < maxTurns) {
    clock.advance(step);
    turns++;
  }
  assert.ok(d.called, `not done after ${turns} turns`);
  return turns;
}

describe('loopbackAsync', () => {
  test('delivers only on later turns; fires once both sides lost the connection', () => {
    const clock = new Clock();
    const server = new Recorder();
    server.greeting = 'hello';
    class Client extends Recorder {
      override dataReceived(data: Buffer): void {
        super.dataReceived(data);
        this.transport.write(`got ${data}`);
        this.transport.loseConnection();
      }
    }
    const client = new Client();
    const done = loopbackAsync(server, client, { reactor: clock });
    assert.deepEqual(client.received, [], 'nothing inside makeConnection');
    assert.equal(clock.getDelayedCalls().length, 1);
    runUntil(clock, done);
    assert.equal(client.text(), 'hello');
    assert.equal(server.text(), 'got hello');
    assert.ok(server.reasons[0].value instanceof ConnectionDone);
    assert.ok(client.reasons[0].value instanceof ConnectionDone);
    assert.equal(server.reasons.length, 1);
    assert.equal(clock.getDelayedCalls().length, 0, 'no turn left behind');
  });

  test('runs on the real reactor by default', async () => {
    const server = new Recorder();
    server.greeting = 'over the reactor';
    class Closer extends Recorder {
      override dataReceived(data: Buffer): void {
        super.dataReceived(data);
        this.transport.loseConnection();
      }
    }
    const client = new Closer();
    await loopbackAsync(server, client);
    assert.equal(client.text(), 'over the reactor');
  });

  test('split: 1 delivers one byte per direction per turn', () => {
    const clock = new Clock();
    const server = new Recorder();
    server.greeting = 'abcdef';
    const client = new Recorder();
    client.greeting = 'xyz';
    const loop = new AsyncLoopback(server, client, { reactor: clock, split: 1 });
    clock.advance(0);
    assert.equal(client.text(), 'a');
    assert.equal(server.text(), 'x');
    clock.advance(0);
    assert.equal(client.text(), 'ab');
    for (let i = 0; i < 10; i++) clock.advance(0);
    assert.deepEqual(client.received.map(String), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.deepEqual(server.received.map(String), ['x', 'y', 'z']);
    loop.breakConnection();
  });

  test('split with a LineReceiver: every line arrives though every byte comes alone', () => {
    const clock = new Clock();
    class Lines extends LineReceiver {
      lines: string[] = [];
      override lineReceived(line: Buffer): void {
        this.lines.push(line.toString());
        if (line.toString() === 'quit') this.transport.loseConnection();
      }
    }
    const server = new Lines();
    const client = new Recorder();
    client.greeting = 'one\r\ntwo\r\nquit\r\nignored\r\n';
    const done = loopbackAsync(server, client, { reactor: clock, split: 1 });
    const turns = runUntil(clock, done);
    assert.deepEqual(server.lines, ['one', 'two', 'quit']);
    assert.ok(turns >= 'one\r\ntwo\r\nquit\r\n'.length);
  });

  test('delay: each turn runs `delay` seconds after it was asked for', () => {
    const clock = new Clock();
    const server = new Recorder();
    server.greeting = 'ab';
    const client = new Recorder();
    client.clock = clock;
    const loop = new AsyncLoopback(server, client, { reactor: clock, delay: 0.5, split: 1 });
    clock.advance(0.4);
    assert.deepEqual(client.received, []);
    clock.advance(0.1);
    assert.deepEqual(client.received.map(String), ['a']);
    clock.advance(0.5);
    assert.deepEqual(client.received.map(String), ['a', 'b']);
    assert.deepEqual(client.times, [0.5, 1]);
    loop.breakConnection();
    assert.equal(clock.getDelayedCalls().length, 0);
  });

  test('drop with a predicate loses exactly the chosen writes', () => {
    const clock = new Clock();
    const server = new Recorder();
    const client = new Recorder();
    const seen: string[] = [];
    const loop = new AsyncLoopback(server, client, {
      reactor: clock,
      drop: (data, side, index) => {
        seen.push(`${side}#${index}:${data}`);
        return side === 'client' && index === 1;
      },
    });
    client.transport.write('one ');
    client.transport.write('two ');
    client.transport.write('three');
    server.transport.write('back');
    clock.advance(0);
    assert.equal(server.text(), 'one three');
    assert.equal(client.text(), 'back');
    assert.equal(loop.clientTransport.dropped, 1);
    assert.deepEqual(seen, ['client#0:one ', 'client#1:two ', 'client#2:three', 'server#0:back']);
    loop.breakConnection();
  });

  test('drop with a probability is reproducible for a seed', () => {
    const run = (seed: number, drop: number): string => {
      const clock = new Clock();
      const server = new Recorder();
      const client = new Recorder();
      const loop = new AsyncLoopback(server, client, { reactor: clock, drop, seed });
      for (let i = 0; i < 64; i++) client.transport.write(String.fromCharCode(65 + (i % 26)));
      clock.advance(0);
      loop.breakConnection();
      return server.text();
    };
    const a = run(7, 0.5);
    assert.equal(run(7, 0.5), a, 'same seed, same losses');
    assert.ok(a.length > 0 && a.length < 64, `kept ${a.length} of 64`);
    assert.notEqual(run(8, 0.5), a);
    assert.equal(run(7, 0).length, 64);
    assert.equal(run(7, 1).length, 0);
  });

  test('breakConnection: both sides get ConnectionLost, queued bytes are dropped, done fires', () => {
    const clock = new Clock();
    const server = new Recorder();
    const client = new Recorder();
    client.greeting = 'never delivered';
    const loop = new AsyncLoopback(server, client, { reactor: clock });
    const done = loop.whenDone();
    loop.breakConnection();
    assert.ok(done.called);
    assert.ok(loop.finished);
    assert.deepEqual(server.received, []);
    assert.ok(server.reasons[0].value instanceof ConnectionLost);
    assert.ok(client.reasons[0].value instanceof ConnectionLost);
    loop.breakConnection(); // once finished, nothing more
    assert.equal(server.reasons.length, 1);
    assert.equal(clock.getDelayedCalls().length, 0);
    assert.ok(loop.whenDone().called, 'a late whenDone fires at once');
  });

  test('a paused reader: no busy turns; resuming delivers', () => {
    const clock = new Clock();
    const server = new Recorder();
    const client = new Recorder();
    const loop = new AsyncLoopback(server, client, { reactor: clock });
    server.transport.pauseProducing();
    client.transport.write('held');
    clock.advance(0);
    assert.deepEqual(server.received, []);
    assert.equal(clock.getDelayedCalls().length, 0, 'idle while paused');
    server.transport.resumeProducing();
    clock.advance(0);
    assert.equal(server.text(), 'held');
    loop.breakConnection();
  });

  test('a streaming producer is paused above the high-water mark and resumed on drain', () => {
    const clock = new Clock();
    const server = new Recorder();
    const client = new Recorder();
    const loop = new AsyncLoopback(server, client, { reactor: clock, highWaterMark: 8 });
    const calls: string[] = [];
    const producer: IPushProducer = {
      pauseProducing: () => calls.push('pause'),
      resumeProducing: () => calls.push('resume'),
      stopProducing: () => calls.push('stop'),
    };
    client.transport.registerProducer(producer, true);
    client.transport.write('0123456789');
    assert.deepEqual(calls, ['pause']);
    clock.advance(0);
    assert.deepEqual(calls, ['pause', 'resume']);
    loop.breakConnection();
    assert.deepEqual(calls, ['pause', 'resume', 'stop']);
  });

  test('a pull producer is asked once per drain, not on every turn', () => {
    const clock = new Clock();
    const server = new Recorder();
    const client = new Recorder();
    const loop = new AsyncLoopback(server, client, { reactor: clock });
    let asked = 0;
    const producer: IPullProducer = {
      resumeProducing() {
        asked++;
        if (asked <= 3) client.transport.write(`c${asked};`);
      },
      stopProducing() {},
    };
    client.transport.registerProducer(producer, false);
    for (let i = 0; i < 20; i++) clock.advance(0);
    // Asked at registration, then after each of its 3 writes drained.
    assert.equal(asked, 4);
    assert.equal(server.text(), 'c1;c2;c3;');
    assert.equal(clock.getDelayedCalls().length, 0);
    loop.breakConnection();
  });

  test('FileSender through the loopback on the reactor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torsion-loopback-'));
    try {
      const data = randomBytes(300_000);
      const path = join(dir, 'f');
      writeFileSync(path, data);
      class Sending extends Protocol {
        override connectionMade(): void {
          new FileSender()
            .beginFileTransfer(path, this.transport)
            .addCallback(() => this.transport.loseConnection());
        }
      }
      const client = new Recorder();
      await loopbackAsync(new Sending(), client, { chunkSize: 4096 });
      assert.ok(Buffer.concat(client.received).equals(data));
      assert.ok(client.received.every((c) => c.length <= 4096));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('half-close carries over; the peer can still answer', () => {
    const clock = new Clock();
    class HalfServer extends Recorder {
      readConnectionLost(): void {
        this.events.push('readLost');
        this.transport.write('answer');
        this.transport.loseConnection();
      }
    }
    class HalfClient extends Recorder {
      writeConnectionLost(): void {
        this.events.push('writeLost');
      }
    }
    const server = new HalfServer();
    const client = new HalfClient();
    const done = loopbackAsync(server, client, { reactor: clock });
    client.transport.write('question');
    client.transport.loseWriteConnection();
    runUntil(clock, done);
    assert.equal(server.text(), 'question');
    assert.equal(client.text(), 'answer');
    assert.deepEqual(server.events, ['made', 'readLost', 'lost']);
    assert.deepEqual(client.events, ['made', 'writeLost', 'lost']);
  });

  test('an exception in a protocol is logged and breaks the connection', () => {
    const clock = new Clock();
    class Broken extends Recorder {
      override dataReceived(): void {
        throw new Error('boom');
      }
    }
    const server = new Broken();
    const client = new Recorder();
    client.greeting = 'x';
    const events: LogEvent[] = [];
    const remove = addObserver((e) => events.push(e));
    try {
      const done = loopbackAsync(server, client, { reactor: clock });
      runUntil(clock, done);
    } finally {
      remove();
    }
    assert.equal(events.length, 1);
    assert.match(events[0].message, /boom/);
    const reason = server.reasons[0].value as ConnectionLost;
    assert.ok(reason instanceof ConnectionLost);
    assert.match(String((reason.cause as Error).message), /boom/);
    assert.equal(client.reasons.length, 1);
  });

  test('bad options throw InvalidArgumentError before anything is connected', () => {
    const clock = new Clock();
    const bad = [
      { split: -1 },
      { split: 1.5 },
      { delay: -1 },
      { delay: Number.NaN },
      { drop: 2 },
      { drop: 'often' as unknown as number },
      { drop: 0.5, seed: 0.5 },
      { chunkSize: -3 },
    ];
    for (const options of bad) {
      const server = new Recorder();
      assert.throws(
        () => new AsyncLoopback(server, new Recorder(), { reactor: clock, ...options }),
        InvalidArgumentError,
        JSON.stringify(options),
      );
      assert.deepEqual(server.events, []);
    }
    assert.equal(clock.getDelayedCalls().length, 0);
  });
});

describe('connectedServerAndClient: drop', () => {
  test('drop applies to the synchronous pump too', () => {
    const { server, client, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
      { drop: (_data, side, index) => side === 'client' && index % 2 === 0 },
    );
    for (const word of ['a', 'b', 'c', 'd']) client.transport.write(word);
    pump.flush();
    assert.equal(server.text(), 'bd');
    assert.equal(pump.clientTransport.dropped, 2);
  });
});
