/**
 * AMP against real Twisted (Debian's python3-twisted, run with
 * /usr/bin/python3), both ways, over TCP on 127.0.0.1:
 *
 * 1. torsion client → Twisted server (test/interop/amp_server.py): every
 *    command, declared/undeclared/fatal errors, an unknown command, and the
 *    server calling back a command torsion does not know.
 * 2. Twisted client (test/interop/amp_client.py) → torsion server: the
 *    client calls every command and prints what it got as JSON.
 *
 * These tests fail (they do not skip) when /usr/bin/python3 or Twisted is
 * missing: CI installs it with `apt-get install -y python3-twisted`.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AMP,
  AmpDateTime,
  AmpList,
  Bool,
  Bytes,
  command,
  DateTime,
  Decimal,
  DecimalValue,
  Float,
  Integer,
  ListOf,
  optional,
  Path,
  StartTLS,
  UnhandledCommand,
  Unicode,
  UnknownRemoteError,
} from '../src/protocols/amp.js';
import { ClientCreator, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import type { Failure } from '../src/reactor/failure.js';
import type { ITLSTransport } from '../src/reactor/interfaces.js';
import { addObserver } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';

const PYTHON = '/usr/bin/python3';
const INTEROP = fileURLToPath(new URL('./interop/', import.meta.url));
const PY_ENV = { ...process.env, PYTHONPATH: '', PYTHONHOME: '', PYTHONDONTWRITEBYTECODE: '1' };
delete (PY_ENV as Record<string, string | undefined>).PYTHONHOME;

/** Fails loudly when Twisted is not there: these tests must not silently skip. */
function requireTwisted(): void {
  const hint = "AMP interop tests need Debian's Twisted: apt-get install -y python3-twisted";
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found. ${hint}`);
  const probe = spawnSync(PYTHON, ['-c', 'import twisted.protocols.amp'], {
    env: PY_ENV,
    encoding: 'utf8',
  });
  if (probe.status !== 0)
    throw new Error(
      `${PYTHON} cannot import twisted.protocols.amp (${probe.stderr.trim()}). ${hint}`,
    );
}

// ---------------------------------------------------------------------- the commands (as amp_commands.py)

class ZeroDivision extends Error {}
class Overheated extends Error {}

const ITEM = { name: Unicode, count: Integer, note: optional(Unicode) };
const ALL = {
  i: Integer,
  s: Bytes,
  u: Unicode,
  b: Bool,
  x: Float,
  d: Decimal,
  t: DateTime,
  p: Path,
  nested: ListOf(ListOf(Integer)),
  opt: optional(Integer),
};

const Sum = command('Sum', { arguments: { a: Integer, b: Integer }, response: { total: Integer } });
const Divide = command('Divide', {
  arguments: { numerator: Integer, denominator: Integer },
  response: { result: Float },
  errors: { ZERO_DIVISION: ZeroDivision },
});
const LISTS = { numbers: ListOf(Integer), words: ListOf(Unicode), items: AmpList(ITEM) };
const EchoLists = command('EchoLists', { arguments: LISTS, response: LISTS });
const EchoDateTime = command('EchoDateTime', {
  arguments: { when: DateTime },
  response: { when: DateTime },
});
const EchoAll = command('EchoAll', { arguments: ALL, response: ALL });
const Boom = command('Boom', { response: { x: Integer } });
const Melt = command('Melt', { fatalErrors: { OVERHEATED: Overheated } });
const Notify = command('Notify', { arguments: { message: Unicode }, requiresAnswer: false });
const GetNotes = command('GetNotes', { response: { notes: ListOf(Unicode) } });
const CallMeBack = command('CallMeBack', {
  arguments: { a: Integer, b: Integer },
  response: { total: Integer, mystery: Unicode },
});
const Mystery = command('Mystery', { response: { x: Integer } });
const Missing = command('Missing');

// ---------------------------------------------------------------------- helpers

/** An AMP client whose connection loss is awaitable; answers Sum call-backs. */
class Client extends AMP {
  /** Fires with the reason's error (not the Failure: that would errback). */
  readonly lost = new Deferred<Error>();
  constructor() {
    super();
    this.responder(Sum, ({ a, b }) => ({ total: a + b }));
  }
  override connectionLost(reason: Failure): void {
    super.connectionLost(reason);
    this.lost.callback(reason.value);
  }
}

async function errorOf(d: PromiseLike<unknown>): Promise<Error> {
  try {
    await d;
  } catch (error) {
    return error as Error;
  }
  throw new assert.AssertionError({ message: 'expected the call to fail' });
}

/** Waits for the child to exit; resolves with its exit code. */
function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

// ---------------------------------------------------------------------- torsion client → Twisted server

describe('torsion AMP client against a Twisted AMP server', () => {
  let server: ChildProcess;
  let port = 0;
  let serverErr = '';
  const clients: Client[] = [];

  before(async () => {
    requireTwisted();
    // stderr is kept, not shown: the server logs the tracebacks of the errors
    // the tests provoke. It is printed if the server fails.
    server = spawn(PYTHON, [`${INTEROP}amp_server.py`], {
      env: PY_ENV,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    server.stderr?.on('data', (chunk: Buffer) => {
      serverErr += chunk.toString();
    });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      server.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const m = /PORT (\d+)/.exec(out);
        if (m !== null) resolve(Number(m[1]));
      });
      server.once('exit', (code) =>
        reject(new Error(`amp_server.py exited (${code}) before listening:\n${serverErr}`)),
      );
    });
  });

  after(async () => {
    for (const c of clients) if (!c.lost.called) c.transport.loseConnection();
    await Promise.all(clients.map((c) => c.lost.asPromise()));
    if (server !== undefined) {
      server.stdin?.end();
      assert.equal(await exited(server), 0, `amp_server.py failed:\n${serverErr}`);
    }
  });

  async function connect(): Promise<Client> {
    const c = await new ClientCreator(reactor, Client).connectTCP('127.0.0.1', port);
    clients.push(c);
    return c;
  }

  test('Sum, Divide and a declared error (ZeroDivisionError → ZERO_DIVISION)', async () => {
    const c = await connect();
    assert.deepEqual(await c.callRemote(Sum, { a: 13, b: 81 }), { total: 94 });
    assert.deepEqual(await c.callRemote(Divide, { numerator: 1, denominator: 3 }), {
      result: 1 / 3,
    });
    const error = await errorOf(c.callRemote(Divide, { numerator: 1, denominator: 0 }));
    assert.ok(error instanceof ZeroDivision);
    assert.equal(error.message, 'division by zero');
    // Still connected after a declared error.
    assert.deepEqual(await c.callRemote(Sum, { a: 1, b: 1 }), { total: 2 });
  });

  test('ListOf and AmpList echo', async () => {
    const c = await connect();
    const lists = {
      numbers: [1, -2, 3_000_000_000],
      words: ['a', '', 'caf\u00e9', '\u{1f600}'],
      items: [
        { name: 'x', count: 1 },
        { name: 'y', count: 2, note: 'n' },
      ],
    };
    assert.deepEqual(await c.callRemote(EchoLists, lists), lists);
    assert.deepEqual(await c.callRemote(EchoLists, { numbers: [], words: [], items: [] }), {
      numbers: [],
      words: [],
      items: [],
    });
  });

  test('DateTime echo keeps microseconds and the offset', async () => {
    const c = await connect();
    const when = AmpDateTime.parse('2024-02-29T23:59:58.123456+05:30');
    const { when: back } = await c.callRemote(EchoDateTime, { when });
    assert.equal(back.toString(), '2024-02-29T23:59:58.123456+05:30');
    const utc = await c.callRemote(EchoDateTime, { when: new Date('2001-02-03T04:05:06.789Z') });
    assert.equal(utc.when.toString(), '2001-02-03T04:05:06.789000-00:00');
  });

  test('every argument type round-trips through Twisted', async () => {
    const c = await connect();
    const sent = {
      i: -(2 ** 40),
      s: Buffer.from([0, 255, 0x62]),
      u: 'snow \u2603',
      b: true,
      x: 1e-5,
      d: '3.1400',
      t: AmpDateTime.parse('0001-01-01T00:00:00.000000-00:00'),
      p: '/tmp/some where',
      nested: [[1], [], [2, 3]],
      opt: 7,
    };
    const got = await c.callRemote(EchoAll, sent);
    assert.equal(got.i, sent.i);
    assert.ok(got.s.equals(sent.s));
    assert.equal(got.u, sent.u);
    assert.equal(got.b, true);
    assert.equal(got.x, 1e-5);
    assert.ok(got.d.equals(DecimalValue.parse('3.1400')));
    assert.ok(got.t.equals(sent.t));
    assert.equal(got.p, sent.p);
    assert.deepEqual(got.nested, sent.nested);
    assert.equal(got.opt, 7);
    const special = await c.callRemote(EchoAll, {
      ...sent,
      x: Number.NaN,
      d: '-Infinity',
      opt: null,
    });
    assert.ok(Number.isNaN(special.x));
    assert.equal(special.d.toString(), '-Infinity');
    assert.equal('opt' in special, false);
  });

  test('requiresAnswer=false commands arrive (no answer is sent)', async () => {
    const c = await connect();
    assert.equal(c.callRemote(Notify, { message: 'one' }), undefined);
    assert.equal(c.callRemote(Notify, { message: 'two' }), undefined);
    const { notes } = await c.callRemote(GetNotes);
    assert.deepEqual(notes.slice(-2), ['one', 'two']);
  });

  test('a command Twisted does not know: UNHANDLED, and the connection stays', async () => {
    const c = await connect();
    const error = await errorOf(c.callRemote(Missing));
    assert.ok(error instanceof UnhandledCommand);
    assert.equal(error.errorCode, 'UNHANDLED');
    assert.equal(error.description, "Unhandled Command: b'Missing'");
    assert.deepEqual(await c.callRemote(Sum, { a: 2, b: 2 }), { total: 4 });
  });

  test('Twisted calls back a command torsion knows (Sum) and one it does not (Mystery)', async () => {
    const c = await connect();
    const got = await c.callRemote(CallMeBack, { a: 20, b: 22 });
    assert.equal(got.total, 42);
    assert.equal(got.mystery, `UnhandledCommand: (b'UNHANDLED', "Unhandled Command: b'Mystery'")`);
  });

  test('an undeclared error: UnknownRemoteError, and Twisted closes the connection', async () => {
    const c = await connect();
    const error = await errorOf(c.callRemote(Boom));
    assert.ok(error instanceof UnknownRemoteError);
    assert.equal(error.errorCode, 'UNKNOWN');
    assert.equal(error.description, 'Unknown Error');
    await c.lost;
  });

  test('a declared fatal error: its class, and Twisted closes the connection', async () => {
    const c = await connect();
    const error = await errorOf(c.callRemote(Melt));
    assert.ok(error instanceof Overheated);
    assert.equal(error.message, 'too hot');
    await c.lost;
  });

  test("StartTLS with Twisted's default responder (a throwaway certificate), then calls over TLS", async () => {
    const c = await connect();
    const pending = c.callRemote(StartTLS, { tls: { rejectUnauthorized: false } });
    const held = c.callRemote(Sum, { a: 40, b: 2 });
    assert.deepEqual(await pending, {});
    assert.deepEqual(await held, { total: 42 });
    assert.equal(c.tlsState, 'started');
    const peer = (c.transport as unknown as ITLSTransport).getPeerCertificate();
    assert.equal(peer?.subject.CN, 'TEMPORARY CERTIFICATE');
    assert.deepEqual(await c.callRemote(EchoLists, { numbers: [1], words: ['tls'], items: [] }), {
      numbers: [1],
      words: ['tls'],
      items: [],
    });
  });

  test('10,000 calls in flight at once', async () => {
    const c = await connect();
    const calls = Array.from({ length: 10_000 }, (_, i) =>
      c
        .callRemote(Sum, { a: i, b: 1 })
        .asPromise()
        .then(({ total }) => total === i + 1),
    );
    assert.ok((await Promise.all(calls)).every(Boolean));
  });
});

// ---------------------------------------------------------------------- Twisted client → torsion server

describe('a Twisted AMP client against a torsion AMP server', () => {
  class Server extends AMP {
    static notes: string[] = [];
    static tls: { key: Buffer; cert: Buffer } | null = null;
    constructor() {
      super();
      this.responder(Sum, ({ a, b }) => ({ total: a + b }))
        .responder(StartTLS, () => ({ tls: Server.tls }))
        .responder(Divide, ({ numerator, denominator }) => {
          if (denominator === 0) throw new ZeroDivision('division by zero');
          return { result: numerator / denominator };
        })
        .responder(EchoLists, (args) => args)
        .responder(EchoDateTime, (args) => args)
        .responder(EchoAll, (args) => args)
        .responder(Boom, () => {
          throw new Error('kaboom');
        })
        .responder(Melt, () => {
          throw new Overheated('too hot');
        })
        .responder(Notify, ({ message }) => {
          Server.notes.push(message);
          return {};
        })
        .responder(GetNotes, () => ({ notes: Server.notes }))
        .responder(CallMeBack, async ({ a, b }, amp) => {
          const { total } = await amp.callRemote(Sum, { a, b });
          try {
            const r = await amp.callRemote(Mystery);
            return { total, mystery: `answered ${JSON.stringify(r)}` };
          } catch (error) {
            const e = error as Error;
            return { total, mystery: `${e.name}: ${e.message}` };
          }
        });
    }
  }

  let port: ReturnType<typeof reactor.listenTCP>;
  const logged: string[] = [];
  let stopLog: () => void = () => {};
  let cert: TestCert | null = null;

  before(async () => {
    requireTwisted();
    cert = makeCert();
    const tls = { key: cert.key, cert: cert.cert };
    Server.tls = tls;
    stopLog = addObserver((event) => {
      if (event.isError) logged.push(event.message);
    });
    port = reactor.listenTCP(0, Factory.forProtocol(Server), { interface: '127.0.0.1' });
    await port.whenListening();
  });

  after(async () => {
    stopLog();
    if (port !== undefined) await port.stopListening();
    cert?.remove();
  });

  test('the Twisted client gets the right answer for every command', async () => {
    const child = spawn(
      PYTHON,
      [
        `${INTEROP}amp_client.py`,
        String((port.getHost() as IPv4Address).port),
        (cert as TestCert).certPath,
      ],
      {
        env: PY_ENV,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    assert.equal(await exited(child), 0, 'amp_client.py failed (see its stderr above)');
    const got = JSON.parse(out);
    assert.equal(got.sum, 94);
    assert.equal(got.divide, '0.3333333333333333');
    assert.deepEqual(got.divide_zero, { error: 'ZeroDivisionError', message: 'division by zero' });
    assert.deepEqual(got.lists, {
      numbers: [1, -2, 3_000_000_000],
      words: ['a', '', 'caf\u00e9'],
      items: [
        { name: 'x', count: 1, note: null },
        { name: 'y', count: 2, note: 'n' },
      ],
    });
    assert.equal(got.datetime, '2024-02-29T23:59:58.123456-05:30');
    assert.deepEqual(got.all, {
      i: -(2 ** 40),
      s: '00ff6279746573',
      u: 'snow \u2603',
      b: false,
      x: '-inf',
      d: '3.1400',
      t: '0001-01-01T00:00:00.000000-00:00',
      p: '/tmp/some where',
      nested: [[1], [], [2, 3]],
      opt: null,
    });
    assert.deepEqual(got.notes, ['first', 'second']);
    assert.deepEqual(got.callback, {
      total: 42,
      mystery: "UnhandledCommand: Unhandled Command: b'Mystery'",
    });
    assert.equal(got.missing.error, 'UnhandledCommand');
    assert.match(got.missing.message, /Unhandled Command: b'Missing'/);
    assert.equal(got.concurrent_ok, true);
    assert.deepEqual(got.melt, { error: 'OverflowError', message: 'too hot' });
    assert.equal(got.melt_closed, 'ConnectionDone');
    assert.deepEqual(got.boom, {
      error: 'UnknownRemoteError',
      message: 'Code<UNKNOWN>: Unknown Error',
      errorCode: 'UNKNOWN',
      description: 'Unknown Error',
    });
    assert.equal(got.boom_closed, 'ConnectionDone');
    assert.deepEqual(got.starttls, { answer: [], sum: 42, peer_cn: 'localhost' });
    // The undeclared error was logged on the torsion side.
    assert.ok(
      logged.some((m) => m.includes('kaboom')),
      logged.join('\n'),
    );
  });
});
