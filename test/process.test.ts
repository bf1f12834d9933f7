/**
 * Child processes: spawnProcess / Process / ProcessProtocol with real
 * `node -e` children: output, exit codes, signals, stdin with flow control,
 * extra fds, spawn failures, environment and working directory.
 */

import assert from 'node:assert/strict';
import { realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ProcessProtocol } from '../src/protocols/process-protocol.js';
import {
  ConnectionDone,
  ConnectionLost,
  InvalidArgumentError,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IPushProducer } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import {
  type Process,
  ProcessDone,
  ProcessExitedAlready,
  type ProcessOptions,
  ProcessSpawnError,
  ProcessTerminated,
  PTYNotSupportedError,
  spawnProcess,
} from '../src/reactor/process.js';
import { reactor } from '../src/reactor/reactor.js';

const NODE = process.execPath;

/** Records every call in order; `ended` fires with processEnded's reason. */
class Recorder extends ProcessProtocol {
  readonly events: string[] = [];
  readonly out: Buffer[] = [];
  readonly err: Buffer[] = [];
  readonly fds = new Map<number, Buffer[]>();
  // Promises, not Deferreds: a Deferred fired with a Failure fails.
  readonly exited: Promise<Failure>;
  readonly ended: Promise<Failure>;
  #exited!: (reason: Failure) => void;
  #ended!: (reason: Failure) => void;
  exitedReason: Failure | null = null;
  endedCount = 0;
  pidAtStart: number | null = null;

  constructor() {
    super();
    this.exited = new Promise((resolve) => {
      this.#exited = resolve;
    });
    this.ended = new Promise((resolve) => {
      this.#ended = resolve;
    });
  }

  override connectionMade(): void {
    this.events.push('made');
    this.pidAtStart = this.transport.pid;
  }

  override childDataReceived(childFD: number, data: Buffer): void {
    if (childFD > 2) {
      const list = this.fds.get(childFD) ?? [];
      list.push(data);
      this.fds.set(childFD, list);
    }
    super.childDataReceived(childFD, data);
  }

  override outReceived(data: Buffer): void {
    this.out.push(data);
  }

  override errReceived(data: Buffer): void {
    this.err.push(data);
  }

  override childConnectionLost(childFD: number): void {
    this.events.push(`lost:${childFD}`);
    super.childConnectionLost(childFD);
  }

  override processExited(reason: Failure): void {
    this.events.push('exited');
    this.exitedReason = reason;
    this.#exited(reason);
  }

  override processEnded(reason: Failure): void {
    this.events.push('ended');
    this.endedCount++;
    this.#ended(reason);
  }

  stdout(): string {
    return Buffer.concat(this.out).toString();
  }

  stderr(): string {
    return Buffer.concat(this.err).toString();
  }
}

/** Runs `node -e code ...extra` (argv[0] 'node') with `proto`. */
function node(
  proto: ProcessProtocol,
  code: string,
  extra: string[] = [],
  options: ProcessOptions = {},
): Process {
  return spawnProcess(reactor, proto, NODE, ['node', '-e', code, ...extra], options);
}

/**
 * `assert.ok(value instanceof type)` with a message: a failing `assert.ok`
 * without one makes Node re-parse the (tsx-compiled) source, which can hang.
 */
function isA<T>(value: unknown, type: abstract new (...args: never[]) => T): asserts value is T {
  const got = value as { constructor?: { name?: string }; message?: string } | null;
  assert.ok(
    value instanceof type,
    `expected a ${type.name}, got ${got?.constructor?.name}: ${got?.message ?? String(value)}`,
  );
}

/** Waits a few turns of the loop (I/O included), for "nothing else happened" checks. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

function assertEndedLast(proto: Recorder, fds: number[]): void {
  assert.equal(proto.endedCount, 1);
  assert.equal(proto.events[0], 'made');
  assert.equal(proto.events.at(-1), 'ended');
  assert.equal(proto.events.filter((e) => e === 'exited').length, 1);
  assert.deepEqual(
    proto.events.filter((e) => e.startsWith('lost:')).sort(),
    fds.map((fd) => `lost:${fd}`),
  );
}

// ---------------------------------------------------------------------- tests

describe('spawnProcess: output and exit status', () => {
  test('stdout and stderr; exit 0 is ProcessDone; processEnded last and once', async () => {
    const proto = new Recorder();
    const transport = node(proto, "process.stdout.write('out!'); process.stderr.write('err!')");
    assert.deepEqual(proto.events, ['made']);
    assert.equal(typeof proto.pidAtStart, 'number');
    assert.equal(transport.pid, proto.pidAtStart);
    const reason = await proto.ended;
    isA(reason.value, ProcessDone);
    isA(reason.value, ConnectionDone);
    assert.equal(reason.value.code, 'TORSION_ERR_PROCESS_DONE');
    assert.equal(reason.value.exitCode, 0);
    assert.equal(reason.value.signal, null);
    isA(proto.exitedReason?.value, ProcessDone);
    assert.equal(proto.stdout(), 'out!');
    assert.equal(proto.stderr(), 'err!');
    assertEndedLast(proto, [0, 1, 2]);
    assert.equal(transport.pid, null);
    await turns(5);
    assert.equal(proto.endedCount, 1);
  });

  test('a non-zero exit code is ProcessTerminated(exitCode)', async () => {
    const proto = new Recorder();
    node(proto, 'process.exit(3)');
    const reason = await proto.ended;
    isA(reason.value, ProcessTerminated);
    isA(reason.value, ConnectionLost);
    assert.equal(reason.value.code, 'TORSION_ERR_PROCESS_TERMINATED');
    assert.equal(reason.value.exitCode, 3);
    assert.equal(reason.value.signal, null);
    assert.equal(reason.value.signalNumber, null);
    assert.match(reason.value.message, /exit code 3/);
    assertEndedLast(proto, [0, 1, 2]);
  });

  for (const [signal, name, number] of [
    ['KILL', 'SIGKILL', 9],
    ['SIGTERM', 'SIGTERM', 15],
    [2, 'SIGINT', 2],
  ] as const) {
    test(`signalProcess(${JSON.stringify(signal)}) ends the child: ProcessTerminated(signal ${name})`, async () => {
      class KillOnReady extends Recorder {
        override outReceived(data: Buffer): void {
          super.outReceived(data);
          if (this.stdout().includes('ready')) this.transport.signalProcess(signal);
        }
      }
      const proto = new KillOnReady();
      const transport = node(
        proto,
        "process.on('SIGINT', () => process.kill(process.pid, 'SIGKILL')); " +
          "setInterval(() => {}, 1000); process.stdout.write('ready')",
      );
      const reason = await proto.ended;
      isA(reason.value, ProcessTerminated);
      // The SIGINT child re-kills itself with SIGKILL (node traps SIGINT otherwise).
      const expected = name === 'SIGINT' ? 'SIGKILL' : name;
      assert.equal(reason.value.signal, expected);
      assert.equal(reason.value.signalNumber, expected === 'SIGKILL' ? 9 : number);
      assert.equal(reason.value.exitCode, null);
      assert.match(reason.value.message, new RegExp(`signal ${expected}`));
      assert.throws(
        () => transport.signalProcess('TERM'),
        (e: unknown) =>
          e instanceof ProcessExitedAlready && e.code === 'TORSION_ERR_PROCESS_EXITED_ALREADY',
      );
    });
  }

  test('an unknown signal is InvalidArgumentError; the child is untouched', async () => {
    const proto = new Recorder();
    const transport = node(
      proto,
      "process.stdin.on('end', () => process.exit(0)); process.stdin.resume()",
    );
    assert.throws(() => transport.signalProcess('NOPE' as 'TERM'), InvalidArgumentError);
    assert.throws(() => transport.signalProcess(12345), InvalidArgumentError);
    transport.closeStdin();
    isA((await proto.ended).value, ProcessDone);
  });

  test('args[0] is argv[0]; the rest are the arguments', async () => {
    const proto = new Recorder();
    spawnProcess(reactor, proto, NODE, [
      'my-node',
      '-e',
      'process.stdout.write(process.argv0 + " " + JSON.stringify(process.argv.slice(1)))',
      'a b',
      'c',
    ]);
    await proto.ended;
    assert.equal(proto.stdout(), 'my-node ["a b","c"]');
  });

  test('env is the whole environment; path is the working directory', async () => {
    const proto = new Recorder();
    const dir = realpathSync(tmpdir());
    node(
      proto,
      'process.stdout.write(JSON.stringify({ env: process.env, cwd: process.cwd() }))',
      [],
      {
        env: { FOO: 'bar baz', EMPTY: '' },
        path: dir,
      },
    );
    await proto.ended;
    const seen = JSON.parse(proto.stdout()) as { env: Record<string, string>; cwd: string };
    assert.equal(seen.cwd, dir);
    assert.equal(seen.env.FOO, 'bar baz');
    assert.equal(seen.env.EMPTY, '');
    assert.equal(seen.env.HOME, undefined);
    assert.equal(seen.env.PATH, undefined);
  });

  test('without env the parent environment is inherited', async () => {
    const proto = new Recorder();
    process.env.TORSION_PROCESS_TEST = 'inherited';
    try {
      node(proto, 'process.stdout.write(process.env.TORSION_PROCESS_TEST ?? "missing")');
    } finally {
      delete process.env.TORSION_PROCESS_TEST;
    }
    await proto.ended;
    assert.equal(proto.stdout(), 'inherited');
  });
});

describe('spawnProcess: failures', () => {
  test('no such executable: makeConnection, then processExited/processEnded with ProcessSpawnError', async () => {
    const proto = new Recorder();
    const transport = spawnProcess(reactor, proto, '/nonexistent/torsion-no-such-binary', [
      'x',
      '--flag',
    ]);
    assert.deepEqual(proto.events, ['made']);
    assert.equal(transport.pid, null);
    const reason = await proto.ended;
    isA(reason.value, ProcessSpawnError);
    assert.equal(reason.value.code, 'TORSION_ERR_PROCESS_SPAWN');
    assert.equal(reason.value.errorCode, 'ENOENT');
    assert.equal(reason.value.executable, '/nonexistent/torsion-no-such-binary');
    assert.match(reason.value.message, /no such executable/);
    assert.equal(proto.exitedReason, reason);
    assert.equal(proto.endedCount, 1);
    assert.equal(proto.events.at(-1), 'ended');
    assert.throws(() => transport.signalProcess('KILL'), ProcessExitedAlready);
  });

  test('a missing working directory is named in the ProcessSpawnError', async () => {
    const proto = new Recorder();
    node(proto, '0', [], { path: '/nonexistent/torsion-no-such-dir' });
    const reason = await proto.ended;
    isA(reason.value, ProcessSpawnError);
    assert.equal(reason.value.errorCode, 'ENOENT');
    assert.match(reason.value.message, /working directory \/nonexistent\/torsion-no-such-dir/);
  });

  test('a file without execute permission: ProcessSpawnError EACCES', async () => {
    const proto = new Recorder();
    const file = join(tmpdir(), `torsion-process-test-${process.pid}.txt`);
    writeFileSync(file, 'not a program', { mode: 0o644 });
    try {
      spawnProcess(reactor, proto, file);
    } finally {
      unlinkSync(file);
    }
    const reason = await proto.ended;
    isA(reason.value, ProcessSpawnError);
    assert.equal(reason.value.errorCode, 'EACCES');
  });

  test('bad arguments throw InvalidArgumentError; usePTY throws PTYNotSupportedError', () => {
    const proto = new Recorder();
    assert.throws(() => spawnProcess(reactor, proto, ''), InvalidArgumentError);
    assert.throws(
      () => spawnProcess(reactor, proto, NODE, ['node', 1 as unknown as string]),
      InvalidArgumentError,
    );
    assert.throws(() => spawnProcess(reactor, proto, NODE, ['node', 'a\0b']), InvalidArgumentError);
    assert.throws(
      () => spawnProcess(reactor, proto, NODE, ['node'], { env: { A: 1 as unknown as string } }),
      InvalidArgumentError,
    );
    assert.throws(
      () => spawnProcess(reactor, proto, NODE, ['node'], { childFDs: { 0: 'r' } }),
      InvalidArgumentError,
    );
    assert.throws(
      () => spawnProcess(reactor, proto, NODE, ['node'], { childFDs: { 1: 'x' as 'r' } }),
      InvalidArgumentError,
    );
    assert.throws(
      () => spawnProcess(reactor, proto, NODE, ['node'], { usePTY: true }),
      (e: unknown) =>
        e instanceof PTYNotSupportedError && e.code === 'TORSION_ERR_PTY_NOT_SUPPORTED',
    );
    assert.deepEqual(proto.events, []);
  });
});

describe('stdin', () => {
  const CAT = 'process.stdin.pipe(process.stdout)';

  test('write, writeSequence, closeStdin: the child echoes and sees EOF', async () => {
    const proto = new Recorder();
    const transport = node(proto, CAT);
    transport.write('hello ');
    transport.write(new Uint8Array([0x61]));
    transport.write('');
    transport.writeSequence(['b', Buffer.from('c')]);
    transport.closeStdin();
    assert.throws(() => transport.write('late'), TransportClosedError);
    transport.closeStdin(); // idempotent
    const reason = await proto.ended;
    isA(reason.value, ProcessDone);
    assert.equal(proto.stdout(), 'hello abc');
    assertEndedLast(proto, [0, 1, 2]);
    assert.throws(() => transport.write('later'), TransportClosedError);
  });

  test('8 MiB through a push producer to a slow reader: paused and resumed, all delivered', async () => {
    const total = 8 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    const proto = new Recorder();
    const transport = node(
      proto,
      'let n = 0; process.stdin.on("data", (d) => { n += d.length; process.stdin.pause(); ' +
        'setTimeout(() => process.stdin.resume(), 1); }); ' +
        'process.stdin.on("end", () => process.stdout.write(String(n)));',
    );
    let sent = 0;
    let pauses = 0;
    let resumes = 0;
    let maxBuffered = 0;
    let paused = false;
    const producer: IPushProducer = {
      pauseProducing() {
        pauses++;
        paused = true;
      },
      resumeProducing() {
        resumes++;
        paused = false;
        pump();
      },
      stopProducing() {
        assert.fail('stopProducing');
      },
    };
    function pump(): void {
      // Bounded: at most total/chunk writes over the whole test.
      while (!paused && sent < total) {
        transport.write(chunk);
        sent += chunk.length;
        maxBuffered = Math.max(maxBuffered, transport.bufferedAmount);
      }
      if (sent >= total) {
        transport.unregisterProducer();
        transport.closeStdin();
      }
    }
    transport.registerProducer(producer, true);
    pump();
    const reason = await proto.ended;
    isA(reason.value, ProcessDone);
    assert.equal(proto.stdout(), String(total));
    assert.ok(pauses >= 1, 'paused at least once');
    assert.ok(resumes >= 1, 'resumed at least once');
    assert.ok(maxBuffered <= 64 * 1024 + chunk.length, `buffered at most ${maxBuffered}`);
  });

  test('a pull producer is asked for more after each flush', async () => {
    const chunks = 32;
    const proto = new Recorder();
    const transport = node(
      proto,
      'let n = 0; process.stdin.on("data", (d) => { n += d.length; }); ' +
        'process.stdin.on("end", () => process.stdout.write(String(n)));',
    );
    let asked = 0;
    transport.registerProducer(
      {
        resumeProducing() {
          asked++;
          if (asked <= chunks) {
            transport.write(Buffer.alloc(16 * 1024));
          } else {
            transport.unregisterProducer();
          }
        },
        stopProducing() {
          assert.fail('stopProducing');
        },
      },
      false,
    );
    // closeStdin waits for the producer to unregister.
    transport.closeStdin();
    await proto.ended;
    assert.equal(proto.stdout(), String(chunks * 16 * 1024));
    assert.equal(asked, chunks + 1);
  });

  test('registering twice throws; a producer on a closed stdin is stopped at once', async () => {
    const proto = new Recorder();
    const transport = node(proto, CAT);
    const noop = { pauseProducing() {}, resumeProducing() {}, stopProducing() {} };
    transport.registerProducer(noop, true);
    assert.throws(() => transport.registerProducer(noop, true), /producer is already registered/);
    transport.unregisterProducer();
    transport.closeStdin();
    await proto.ended;
    let stopped = 0;
    transport.registerProducer({ ...noop, stopProducing: () => stopped++ }, true);
    assert.equal(stopped, 1);
  });

  test('the child closing stdin stops the producer and refuses writes (no crash on EPIPE)', async () => {
    const proto = new Recorder();
    let stopped = 0;
    class StdinLost extends Recorder {
      override inConnectionLost(): void {
        super.inConnectionLost();
        assert.throws(() => this.transport.write('x'), TransportClosedError);
      }
    }
    const p = new StdinLost();
    const transport = node(p, 'process.stdin.destroy(); process.stdout.write("closed")');
    transport.registerProducer(
      {
        pauseProducing() {},
        resumeProducing() {},
        stopProducing() {
          stopped++;
        },
      },
      true,
    );
    transport.write(Buffer.alloc(1024 * 1024));
    await p.ended;
    assert.equal(stopped, 1);
    assert.ok(p.events.includes('lost:0'), 'stdin lost');
    void proto;
  });
});

describe('pipes and flow control of output', () => {
  test('pauseProducing holds output back, even past exit; resumeProducing delivers it', async () => {
    class PausedAtStart extends Recorder {
      override connectionMade(): void {
        super.connectionMade();
        this.transport.pauseProducing();
      }
    }
    const proto = new PausedAtStart();
    const transport = node(proto, 'process.stdout.write("held back")');
    await proto.exited;
    // Node resumes unread stdio when a child exits: give it the chance.
    await turns(20);
    assert.equal(proto.stdout(), '');
    assert.equal(proto.endedCount, 0);
    assert.ok(!proto.events.includes('lost:1'), 'stdout still open');
    transport.resumeProducing();
    await proto.ended;
    assert.equal(proto.stdout(), 'held back');
    assertEndedLast(proto, [0, 1, 2]);
  });

  test('closeStdout: outConnectionLost, the child goes on; loseConnection closes the rest', async () => {
    const proto = new Recorder();
    const transport = node(
      proto,
      'process.stdin.on("end", () => process.exit(0)); process.stdin.resume();',
    );
    transport.closeStdout();
    // Bounded by the test's own timeout; the close is reported within a few turns.
    while (!proto.events.includes('lost:1')) await turns(1);
    assert.equal(proto.exitedReason, null);
    transport.loseConnection();
    const reason = await proto.ended;
    isA(reason.value, ProcessDone);
    assertEndedLast(proto, [0, 1, 2]);
  });

  test('childFDs: an extra pipe the parent reads (fd 3) and one it writes (fd 4)', async () => {
    const proto = new Recorder();
    const transport = node(
      proto,
      'const fs = require("fs"); fs.writeSync(3, "via fd3"); fs.closeSync(3); ' +
        'const b = Buffer.alloc(100); let s = ""; let n; ' +
        'while ((n = fs.readSync(4, b)) > 0) s += b.subarray(0, n); ' +
        'process.stdout.write("fd4 said " + s);',
      [],
      { childFDs: { 0: 'w', 1: 'r', 2: 'r', 3: 'r', 4: 'w' } },
    );
    assert.throws(() => transport.writeToChild(3, 'x'), InvalidArgumentError);
    assert.throws(() => transport.writeToChild(7, 'x'), TransportClosedError);
    transport.writeToChild(4, 'hello');
    transport.closeChildFD(4);
    assert.throws(() => transport.writeToChild(4, 'x'), TransportClosedError);
    const reason = await proto.ended;
    isA(reason.value, ProcessDone);
    assert.equal(Buffer.concat(proto.fds.get(3) ?? []).toString(), 'via fd3');
    assert.equal(proto.stdout(), 'fd4 said hello');
    assertEndedLast(proto, [0, 1, 2, 3, 4]);
  });

  test('childFDs without stdin: write throws, stdout still read', async () => {
    const proto = new Recorder();
    const transport = node(proto, 'process.stdout.write("no stdin")', [], { childFDs: { 1: 'r' } });
    assert.throws(() => transport.write('x'), TransportClosedError);
    await proto.ended;
    assert.equal(proto.stdout(), 'no stdin');
    assertEndedLast(proto, [1]);
  });

  test('an exception in childDataReceived is logged and closes that pipe', async () => {
    const events: LogEvent[] = [];
    const remove = addObserver((e) => events.push(e));
    try {
      class Throws extends Recorder {
        override outReceived(_data: Buffer): void {
          throw new Error('bad output');
        }
      }
      const proto = new Throws();
      node(proto, 'process.stdout.write("x"); process.stdout.on("error", () => {})');
      const reason = await proto.ended;
      isA(reason.value, ProcessDone);
      assert.equal(events.length, 1);
      assert.match(events[0].message, /childDataReceived/);
      assertEndedLast(proto, [0, 1, 2]);
    } finally {
      remove();
    }
  });
});

describe('reactor.spawnProcess', () => {
  test('spawns through the reactor', async () => {
    const proto = new Recorder();
    reactor.spawnProcess(proto, NODE, ['node', '-e', 'process.stdout.write("via reactor")']);
    isA((await proto.ended).value, ProcessDone);
    assert.equal(proto.stdout(), 'via reactor');
  });
});
