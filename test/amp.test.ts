/**
 * AMP protocol semantics: the bytes a torsion AMP writes as client and as
 * server (checked against what Twisted 22.4 writes for the same calls, kept
 * as hex), request tags, answers and errors (declared, UNKNOWN, UNHANDLED,
 * fatal), requiresAnswer=false, bad input closing the connection with a
 * typed reason, connection loss, responder registration, byte-split input,
 * and 10,000 concurrent calls over a real TCP connection.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AMP,
  AmpBox,
  AmpDateTime,
  AmpList,
  BadLocalReturn,
  BigInteger,
  Bool,
  Bytes,
  type CommandResponse,
  command,
  DateTime,
  Decimal,
  DecimalValue,
  Float,
  Integer,
  InvalidSignature,
  ListOf,
  MalformedAmpBox,
  NoEmptyBoxes,
  NotConnectedError,
  optional,
  Path,
  RemoteAmpError,
  type ResponderArguments,
  ResponderTable,
  TooLong,
  UnhandledCommand,
  Unicode,
  UnknownRemoteError,
} from '../src/protocols/amp.js';
import { ClientCreator, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import { ConnectionDone, ConnectionLost, InvalidArgumentError } from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import { StringTransport } from '../src/testing/string-transport.js';

// ---------------------------------------------------------------------- commands

class ZeroDivision extends Error {}
class Overheated extends Error {}

const Sum = command('Sum', {
  arguments: { a: Integer, b: Integer },
  response: { total: Integer },
});
const Divide = command('Divide', {
  arguments: { numerator: Integer, denominator: Integer },
  response: { result: Float },
  errors: { ZERO_DIVISION: ZeroDivision },
});
const Boom = command('Boom', { response: { x: Integer } });
const Melt = command('Melt', { fatalErrors: { OVERHEATED: Overheated } });
const Notify = command('Notify', { arguments: { message: Unicode }, requiresAnswer: false });
const Nope = command('Nope');
/** Every argument type, as arguments and (the same) as the response. */
const ALL_TYPES = {
  i: Integer,
  big: BigInteger,
  s: Bytes,
  u: Unicode,
  b: Bool,
  f: Float,
  d: Decimal,
  t: DateTime,
  p: Path,
  l: ListOf(Unicode),
  al: AmpList({ x: Integer, y: optional(Unicode) }),
  opt: optional(Integer),
};
const Everything = command('Everything', { arguments: ALL_TYPES, response: ALL_TYPES });

/** Wire bytes Twisted 22.4 writes (captured once from amp.AMP over a StringTransport). */
const TWISTED = {
  sumRequest: '00045f61736b00013100085f636f6d6d616e64000353756d00016100023133000162000238310000',
  sumReply: '00075f616e737765720001310005746f74616c000239340000',
  divideRequest:
    '00045f61736b00013200085f636f6d6d616e640006446976696465000b64656e6f6d696e61746f72' +
    '00013000096e756d657261746f720001310000',
  divideReply:
    '00065f6572726f72000132000b5f6572726f725f636f6465000d5a45524f5f4449564953494f4e' +
    '00125f6572726f725f6465736372697074696f6e00106469766973696f6e206279207a65726f0000',
  notifyRequest: '00085f636f6d6d616e6400064e6f7469667900076d657373616765000268690000',
  // The 15th Sum(a=1, b=2) on a connection: tag 'f'.
  sumRequestTagF: '00045f61736b00016600085f636f6d6d616e64000353756d0001610001310001620001320000',
  // Answers to {_command: Nope, _ask: 7} and {_command: Boom, _ask: 8}.
  unhandledReply:
    '00065f6572726f72000137000b5f6572726f725f636f64650009554e48414e444c4544' +
    '00125f6572726f725f6465736372697074696f6e001a556e68616e646c656420436f6d6d616e643a2062274e6f7065270000',
  boomReply:
    '00065f6572726f72000138000b5f6572726f725f636f64650007554e4b4e4f574e' +
    '00125f6572726f725f6465736372697074696f6e000d556e6b6e6f776e204572726f720000',
};

const bytes = (h: string): Buffer => Buffer.from(h, 'hex');

/** The calculator the server-side tests run. */
class Calculator extends AMP {
  static override responders = new ResponderTable<Calculator>()
    .on(Sum, (args, self) => self.sum(args))
    .on(Divide, ({ numerator, denominator }) => {
      if (denominator === 0) throw new ZeroDivision('division by zero');
      return { result: numerator / denominator };
    })
    .on(Boom, () => {
      throw new Error('kaboom');
    })
    .on(Melt, () => {
      throw new Overheated('too hot');
    })
    .on(Notify, function ({ message }) {
      this.notes.push(message);
      return {};
    });

  readonly notes: string[] = [];

  sum({ a, b }: ResponderArguments<typeof Sum>): CommandResponse<typeof Sum> {
    return { total: a + b };
  }
}

function connect<P extends AMP>(amp: P): { amp: P; transport: StringTransport } {
  const transport = new StringTransport();
  amp.makeConnection(transport);
  return { amp, transport };
}

/** Captures log events while `fn` runs (and until the returned stop is called). */
function captureLog(): { events: LogEvent[]; stop: () => void } {
  const events: LogEvent[] = [];
  const stop = addObserver((event) => events.push(event));
  return { events, stop };
}

function failureOf(d: Deferred<unknown>): Failure {
  let failure: Failure | null = null;
  d.addErrback((f) => {
    failure = f;
  });
  assert.ok(failure !== null, 'the Deferred has not failed');
  return failure;
}

function resultOf<T>(d: Deferred<T>): T {
  let got: { value: T } | null = null;
  d.addCallback((value) => {
    got = { value };
    return value;
  });
  assert.ok(got !== null, 'the Deferred has not succeeded');
  return (got as { value: T }).value;
}

// ---------------------------------------------------------------------- client side

describe('AMP as the asking side', () => {
  test("callRemote writes exactly Twisted's request and fires with the decoded answer", () => {
    const { amp, transport } = connect(new AMP());
    const d = amp.callRemote(Sum, { a: 13, b: 81 });
    assert.equal(transport.value().toString('hex'), TWISTED.sumRequest);
    assert.equal(d.called, false);
    assert.equal(amp.dispatcher.outstandingCount, 1);
    amp.dataReceived(bytes(TWISTED.sumReply));
    assert.deepEqual(resultOf(d), { total: 94 });
    assert.equal(amp.dispatcher.outstandingCount, 0);
  });

  test('tags are the lowercase hex of a counter from 1 (the 16th is "10")', () => {
    const { amp, transport } = connect(new AMP());
    amp.callRemote(Sum, { a: 13, b: 81 });
    amp.callRemote(Divide, { numerator: 1, denominator: 0 });
    assert.equal(transport.value().toString('hex'), TWISTED.sumRequest + TWISTED.divideRequest);
    for (let i = 3; i <= 15; i++) amp.callRemote(Sum, { a: 1, b: 2 });
    assert.ok(transport.value().toString('hex').endsWith(TWISTED.sumRequestTagF));
    transport.clear();
    amp.callRemote(Sum, { a: 1, b: 2 });
    assert.equal(AmpBox.parseAll(transport.value())[0].getString('_ask'), '10');
  });

  test('requiresAnswer=false: no _ask, returns undefined, still uses up a tag', () => {
    const { amp, transport } = connect(new AMP());
    const ret: undefined = amp.callRemote(Notify, { message: 'hi' });
    assert.equal(ret, undefined);
    assert.equal(transport.value().toString('hex'), TWISTED.notifyRequest);
    assert.equal(amp.dispatcher.outstandingCount, 0);
    transport.clear();
    amp.callRemote(Sum, { a: 1, b: 2 });
    assert.equal(AmpBox.parseAll(transport.value())[0].getString('_ask'), '2');
  });

  test('a declared error code fails with the declared class and description', () => {
    const { amp } = connect(new AMP());
    amp.callRemote(Sum, { a: 13, b: 81 });
    const d = amp.callRemote(Divide, { numerator: 1, denominator: 0 });
    amp.dataReceived(bytes(TWISTED.divideReply));
    const failure = failureOf(d);
    assert.ok(failure.value instanceof ZeroDivision);
    assert.equal(failure.value.message, 'division by zero');
  });

  test('UNHANDLED fails with UnhandledCommand; the connection stays open', () => {
    const { amp, transport } = connect(new AMP());
    for (let i = 1; i < 7; i++) amp.callRemote(Sum, { a: 1, b: 2 });
    const d = amp.callRemote(Nope);
    amp.dataReceived(bytes(TWISTED.unhandledReply));
    const failure = failureOf(d);
    assert.ok(failure.value instanceof UnhandledCommand);
    assert.equal(failure.value.errorCode, 'UNHANDLED');
    assert.equal(failure.value.description, "Unhandled Command: b'Nope'");
    assert.equal(transport.disconnecting, false);
  });

  test('UNKNOWN, or any code the command does not declare, fails with UnknownRemoteError', () => {
    const { amp } = connect(new AMP());
    for (let i = 1; i < 8; i++) amp.callRemote(Sum, { a: 1, b: 2 });
    const boom = amp.callRemote(Boom);
    amp.dataReceived(bytes(TWISTED.boomReply));
    const failure = failureOf(boom);
    assert.ok(failure.value instanceof UnknownRemoteError);
    assert.ok(failure.value instanceof RemoteAmpError);
    assert.equal(failure.value.errorCode, 'UNKNOWN');
    assert.equal(failure.value.description, 'Unknown Error');
    assert.equal(failure.value.code, 'TORSION_ERR_AMP_UNKNOWN_REMOTE');

    const other = amp.callRemote(Divide, { numerator: 1, denominator: 2 });
    amp.dataReceived(
      AmpBox.of({
        _error: '9',
        _error_code: 'SOMETHING_ELSE',
        _error_description: 'caf\u00e9',
      }).serialize(),
    );
    const f2 = failureOf(other);
    assert.ok(f2.value instanceof UnknownRemoteError);
    assert.equal(f2.value.errorCode, 'SOMETHING_ELSE');
    assert.equal(f2.value.description, 'caf\u00e9');
  });

  test('callRemoteString: raw boxes both ways; errors as RemoteAmpError', () => {
    const { amp, transport } = connect(new AMP());
    const d = amp.callRemoteString('Sum', AmpBox.of({ a: '13', b: '81' }));
    assert.equal(transport.value().toString('hex'), TWISTED.sumRequest);
    amp.dataReceived(bytes(TWISTED.sumReply));
    assert.equal(resultOf(d).getString('total'), '94');
    const e = amp.callRemoteString('Divide');
    amp.dataReceived(
      AmpBox.of({ _error: '2', _error_code: 'ZERO_DIVISION', _error_description: 'x' }).serialize(),
    );
    const failure = failureOf(e);
    assert.ok(failure.value instanceof RemoteAmpError);
    assert.equal(failure.value.errorCode, 'ZERO_DIVISION');
    assert.equal(amp.callRemoteString('Notify', AmpBox.of({ message: 'hi' }), false), undefined);
  });

  test('an answer that does not decode fails that call only', () => {
    const { amp, transport } = connect(new AMP());
    const d = amp.callRemote(Sum, { a: 1, b: 2 });
    amp.dataReceived(AmpBox.of({ _answer: '1', total: 'many' }).serialize());
    assert.ok(failureOf(d).value instanceof MalformedAmpBox);
    const e = amp.callRemote(Sum, { a: 1, b: 2 });
    amp.dataReceived(AmpBox.of({ _answer: '2' }).serialize());
    assert.ok(failureOf(e).value instanceof MalformedAmpBox);
    assert.equal(transport.disconnecting, false);
  });

  test('bad arguments fail the Deferred and send nothing', () => {
    const { amp, transport } = connect(new AMP());
    const call = amp.callRemote.bind(amp) as (
      c: unknown,
      a?: unknown,
    ) => Deferred<unknown> | undefined;
    const cases: Array<[unknown, unknown, new (...args: never[]) => Error]> = [
      [Sum, { a: 1 }, InvalidSignature],
      [Sum, { a: 1, b: 2, c: 3 }, InvalidSignature],
      [Sum, { a: 1, b: 'x' }, InvalidArgumentError],
      [Sum, { a: 1.5, b: 2 }, InvalidArgumentError],
      [Divide, null, InvalidSignature],
    ];
    for (const [cmd, args, type] of cases) {
      const failure = failureOf(call(cmd, args) as Deferred<unknown>);
      assert.ok(failure.value instanceof type, `${JSON.stringify(args)}: ${failure.value.name}`);
    }
    const Big = command('Big', { arguments: { s: Bytes } });
    assert.ok(failureOf(amp.callRemote(Big, { s: Buffer.alloc(65536) })).value instanceof TooLong);
    assert.throws(() => amp.callRemote(Notify, {} as { message: string }), InvalidSignature);
    assert.equal(transport.value().length, 0);
  });

  test('callRemote before the connection is made fails with NotConnectedError', () => {
    const amp = new AMP();
    assert.ok(failureOf(amp.callRemote(Sum, { a: 1, b: 2 })).value instanceof NotConnectedError);
    assert.throws(() => amp.callRemote(Notify, { message: 'x' }), NotConnectedError);
  });

  test('pending calls fail with ConnectionLost when the connection drops; later calls too', () => {
    const { client, pump } = connectedServerAndClient<AMP, AMP>(
      () => new AMP().responder(Sum, () => new Deferred()),
      () => new AMP(),
    );
    const pending = [
      client.callRemote(Sum, { a: 1, b: 2 }),
      client.callRemote(Sum, { a: 3, b: 4 }),
    ];
    pump.flush();
    pump.breakConnection();
    for (const d of pending) assert.ok(failureOf(d).value instanceof ConnectionLost);
    const later = failureOf(client.callRemote(Sum, { a: 5, b: 6 }));
    assert.ok(later.value instanceof ConnectionLost);
    assert.equal(client.callRemote(Notify, { message: 'x' }), undefined);
  });

  test('after a clean close, pending calls fail with ConnectionLost caused by ConnectionDone', () => {
    const { client, server, pump } = connectedServerAndClient<AMP, AMP>(
      () => new AMP().responder(Sum, () => new Deferred()),
      () => new AMP(),
    );
    const d = client.callRemote(Sum, { a: 1, b: 2 });
    pump.flush();
    server.transport.loseConnection();
    pump.flush();
    const failure = failureOf(d);
    assert.ok(failure.value instanceof ConnectionLost);
    assert.ok(failure.value.cause instanceof ConnectionDone);
  });

  test('cancelling a call fails it with CancelledError; its late answer is ignored', () => {
    const { amp, transport } = connect(new AMP());
    const d = amp.callRemote(Sum, { a: 1, b: 2 });
    d.cancel();
    assert.equal(failureOf(d).value.name, 'CancelledError');
    amp.dataReceived(bytes(TWISTED.sumReply));
    assert.equal(transport.disconnecting, false);
  });
});

// ---------------------------------------------------------------------- bad input

describe('bad input closes the connection with a typed reason', () => {
  function badInput(
    wire: Buffer,
    check: (error: Error) => boolean,
  ): { transport: StringTransport; pending: Failure } {
    const log = captureLog();
    try {
      const { amp, transport } = connect(new AMP());
      const d = amp.callRemote(Sum, { a: 1, b: 2 });
      amp.dataReceived(wire);
      assert.equal(transport.disconnecting, true, 'closed');
      assert.equal(transport.aborted, false, 'closed with loseConnection (writes still flushed)');
      assert.equal(log.events.filter((e) => e.isError).length, 1);
      // Further input is ignored, not parsed.
      amp.dataReceived(bytes(TWISTED.sumReply));
      assert.equal(d.called, false);
      amp.connectionLost(new Failure(new ConnectionDone()));
      const pending = failureOf(d);
      assert.ok(check(pending.value), pending.value.name);
      return { transport, pending };
    } finally {
      log.stop();
    }
  }

  test('a key length over 255: TooLong (remote key)', () => {
    badInput(bytes('0100'), (e) => e instanceof TooLong && e.isKey && !e.isLocal);
  });

  test('an empty box: NoEmptyBoxes', () => {
    badInput(
      bytes('0000'),
      (e) => e instanceof NoEmptyBoxes && e.code === 'TORSION_ERR_AMP_NO_EMPTY_BOXES',
    );
  });

  test('a box with no _command, _answer or _error: NoEmptyBoxes', () => {
    badInput(AmpBox.of({ hello: 'world' }).serialize(), (e) => e instanceof NoEmptyBoxes);
  });

  test('an answer to a request never asked: MalformedAmpBox', () => {
    badInput(AmpBox.of({ _answer: '99' }).serialize(), (e) => e instanceof MalformedAmpBox);
  });

  test('an error box without _error_code: MalformedAmpBox', () => {
    badInput(AmpBox.of({ _error: '1' }).serialize(), (e) => e instanceof MalformedAmpBox);
  });

  test('boxes before the bad one in the same read are still handled', () => {
    const log = captureLog();
    try {
      const { amp, transport } = connect(new AMP());
      const d = amp.callRemote(Sum, { a: 1, b: 2 });
      amp.dataReceived(Buffer.concat([bytes(TWISTED.sumReply), bytes('0000')]));
      assert.deepEqual(resultOf(d), { total: 94 });
      assert.equal(transport.disconnecting, true);
    } finally {
      log.stop();
    }
  });
});

// ---------------------------------------------------------------------- server side

describe('AMP as the answering side', () => {
  function serve(...requests: string[]): { amp: Calculator; transport: StringTransport } {
    const { amp, transport } = connect(new Calculator());
    for (const request of requests) amp.dataReceived(bytes(request));
    return { amp, transport };
  }

  test('answers exactly as Twisted: Sum, declared error, UNHANDLED, UNKNOWN (then closes)', () => {
    const log = captureLog();
    try {
      const { transport } = serve(TWISTED.sumRequest, TWISTED.divideRequest);
      assert.equal(transport.value().toString('hex'), TWISTED.sumReply + TWISTED.divideReply);
      assert.equal(transport.disconnecting, false);

      const unhandled = serve(
        AmpBox.of({ _command: 'Nope', _ask: '7' }).serialize().toString('hex'),
      );
      assert.equal(unhandled.transport.value().toString('hex'), TWISTED.unhandledReply);
      assert.equal(unhandled.transport.disconnecting, false);
      assert.equal(log.events.length, 0);

      const boom = serve(AmpBox.of({ _command: 'Boom', _ask: '8' }).serialize().toString('hex'));
      assert.equal(boom.transport.value().toString('hex'), TWISTED.boomReply);
      assert.equal(boom.transport.disconnecting, true);
      assert.equal(log.events.length, 1);
      assert.match(log.events[0].message, /kaboom/);
    } finally {
      log.stop();
    }
  });

  test('the same requests fed one byte at a time, and split at every point, get the same bytes', () => {
    const stream = bytes(TWISTED.sumRequest + TWISTED.divideRequest + TWISTED.notifyRequest);
    const expected = TWISTED.sumReply + TWISTED.divideReply;
    const { amp, transport } = connect(new Calculator());
    for (let i = 0; i < stream.length; i++) amp.dataReceived(stream.subarray(i, i + 1));
    assert.equal(transport.value().toString('hex'), expected);
    assert.deepEqual(amp.notes, ['hi']);
    for (let i = 0; i <= stream.length; i++) {
      const { amp: a, transport: t } = connect(new Calculator());
      a.dataReceived(stream.subarray(0, i));
      a.dataReceived(stream.subarray(i));
      assert.equal(t.value().toString('hex'), expected, `split at ${i}`);
    }
  });

  test('a request without _ask runs the responder and writes nothing', () => {
    const { amp, transport } = serve(TWISTED.notifyRequest);
    assert.deepEqual(amp.notes, ['hi']);
    assert.equal(transport.value().length, 0);
  });

  test('a failing responder for a request without _ask: logged, connection dropped', () => {
    const log = captureLog();
    try {
      const { amp, transport } = connect(
        new AMP().responder(Notify, () => {
          throw new ZeroDivision('no');
        }),
      );
      amp.dataReceived(bytes(TWISTED.notifyRequest));
      assert.equal(transport.value().length, 0);
      assert.equal(transport.disconnecting, true);
      assert.equal(log.events.filter((e) => e.isError).length, 1);
    } finally {
      log.stop();
    }
  });

  test('a fatal error is answered with its code, then the connection closes', () => {
    const { transport } = serve(
      AmpBox.of({ _command: 'Melt', _ask: '1' }).serialize().toString('hex'),
    );
    const [box] = AmpBox.parseAll(transport.value());
    assert.equal(box.getString('_error_code'), 'OVERHEATED');
    assert.equal(box.getString('_error_description'), 'too hot');
    assert.equal(transport.disconnecting, true);
  });

  test('a responder may throw a RemoteAmpError with any code', () => {
    const { amp, transport } = connect(
      new AMP().responder(Sum, () => {
        throw new RemoteAmpError('CUSTOM', 'd\u00e9tail');
      }),
    );
    amp.dataReceived(bytes(TWISTED.sumRequest));
    const [box] = AmpBox.parseAll(transport.value());
    assert.equal(box.getString('_error_code'), 'CUSTOM');
    assert.equal(box.getString('_error_description'), 'd\u00e9tail');
    assert.equal(transport.disconnecting, false);
  });

  test('a result that does not encode (BadLocalReturn) or arguments that do not decode: UNKNOWN and close', () => {
    const log = captureLog();
    try {
      const bad = connect(new AMP().responder(Sum, () => ({}) as { total: number }));
      bad.amp.dataReceived(bytes(TWISTED.sumRequest));
      const [box] = AmpBox.parseAll(bad.transport.value());
      assert.equal(box.getString('_error_code'), 'UNKNOWN');
      assert.equal(bad.transport.disconnecting, true);
      assert.ok(log.events[0].failure?.value instanceof BadLocalReturn);

      const undecodable = connect(new Calculator());
      undecodable.amp.dataReceived(
        AmpBox.of({ _command: 'Sum', _ask: '1', a: 'x', b: '2' }).serialize(),
      );
      assert.equal(
        AmpBox.parseAll(undecodable.transport.value())[0].getString('_error_code'),
        'UNKNOWN',
      );
      assert.ok(log.events[1].failure?.value instanceof MalformedAmpBox);
    } finally {
      log.stop();
    }
  });

  test('async responders answer when they settle, in whatever order', async () => {
    const gates: Array<Deferred<void>> = [];
    const { amp, transport } = connect(
      new AMP().responder(Sum, async ({ a, b }) => {
        const gate = new Deferred<void>();
        gates.push(gate);
        await gate;
        return { total: a + b };
      }),
    );
    amp.dataReceived(
      Buffer.concat([
        AmpBox.of({ _command: 'Sum', _ask: '1', a: '1', b: '1' }).serialize(),
        AmpBox.of({ _command: 'Sum', _ask: '2', a: '2', b: '2' }).serialize(),
      ]),
    );
    await new Promise((resolve) => setImmediate(resolve));
    gates[1].callback();
    await new Promise((resolve) => setImmediate(resolve));
    gates[0].callback();
    await new Promise((resolve) => setImmediate(resolve));
    const answers = AmpBox.parseAll(transport.value()).map((b) => [
      b.getString('_answer'),
      b.getString('total'),
    ]);
    assert.deepEqual(answers, [
      ['2', '4'],
      ['1', '2'],
    ]);
  });

  test('an answer ready after the connection is gone is dropped quietly', () => {
    const gate = new Deferred<{ total: number }>();
    const { amp } = connect(new AMP().responder(Sum, () => gate));
    amp.dataReceived(bytes(TWISTED.sumRequest));
    amp.connectionLost(new Failure(new ConnectionDone()));
    const log = captureLog();
    try {
      gate.callback({ total: 3 });
      assert.equal(log.events.length, 0);
    } finally {
      log.stop();
    }
  });
});

// ---------------------------------------------------------------------- responders

describe('responder registration', () => {
  const Echo = command('Echo', { arguments: { v: Unicode }, response: { v: Unicode } });

  test('class tables are inherited and overridden by name; instance responders come first', () => {
    class Base extends AMP {
      static override responders = new ResponderTable<Base>()
        .on(Echo, ({ v }) => ({ v: `base:${v}` }))
        .on(Sum, ({ a, b }) => ({ total: a + b }));
    }
    class Derived extends Base {
      static override responders = new ResponderTable<Derived>().on(Echo, function (args) {
        return this.echo(args);
      });
      prefix = 'derived';
      echo({ v }: ResponderArguments<typeof Echo>): { v: string } {
        return { v: `${this.prefix}:${v}` };
      }
    }
    class Plain extends Derived {}

    const run = (amp: AMP, name: string, args: Record<string, string>): AmpBox => {
      const t = new StringTransport();
      amp.makeConnection(t);
      amp.dataReceived(AmpBox.of({ _command: name, _ask: '1', ...args }).serialize());
      return AmpBox.parseAll(t.value())[0];
    };
    assert.equal(run(new Base(), 'Echo', { v: 'x' }).getString('v'), 'base:x');
    assert.equal(run(new Derived(), 'Echo', { v: 'x' }).getString('v'), 'derived:x');
    assert.equal(run(new Plain(), 'Echo', { v: 'x' }).getString('v'), 'derived:x');
    assert.equal(run(new Plain(), 'Sum', { a: '1', b: '2' }).getString('total'), '3');
    const own = new Plain().responder(Echo, function ({ v }, amp) {
      assert.equal(this, amp);
      return { v: `own:${v}` };
    });
    assert.equal(run(own, 'Echo', { v: 'x' }).getString('v'), 'own:x');
    assert.equal(run(new AMP(), 'Echo', { v: 'x' }).getString('_error_code'), 'UNHANDLED');
  });

  test('raw box responders (boxResponder) answer with boxes', () => {
    const amp = new AMP().boxResponder('Raw', (box) => AmpBox.of({ got: box.get('x') ?? '' }));
    const t = new StringTransport();
    amp.makeConnection(t);
    amp.dataReceived(AmpBox.of({ _command: 'Raw', _ask: '1', x: 'y' }).serialize());
    assert.equal(AmpBox.parseAll(t.value())[0].getString('got'), 'y');
  });

  test('registering twice, bad names and bad definitions are refused', () => {
    const amp = new AMP().responder(Sum, ({ a, b }) => ({ total: a + b }));
    assert.throws(() => amp.responder(Sum, ({ a, b }) => ({ total: a - b })), InvalidArgumentError);
    assert.throws(
      () => new ResponderTable().on(Sum, () => ({ total: 1 })).on(Sum, () => ({ total: 2 })),
      InvalidArgumentError,
    );
    assert.throws(() => command(''), InvalidArgumentError);
    assert.throws(() => command('x'.repeat(256)), InvalidArgumentError);
    assert.throws(() => command('Caf\u00e9'), InvalidArgumentError);
    assert.throws(
      () => command('X', { arguments: { a: 5 as unknown as typeof Integer } }),
      InvalidArgumentError,
    );
    assert.throws(() => command('X', { errors: { '': Error } }), InvalidArgumentError);
    assert.throws(
      () => command('X', { errors: { E: 'nope' as unknown as typeof Error } }),
      InvalidArgumentError,
    );
  });
});

// ---------------------------------------------------------------------- in memory, every type

describe('a full conversation in memory, delivered one byte at a time', () => {
  test('every argument type round-trips through callRemote and a responder', () => {
    const { client, pump } = connectedServerAndClient<AMP, AMP>(
      () => new AMP().responder(Everything, (args) => args),
      () => new AMP(),
      { chunkSize: 1 },
    );
    const when = new AmpDateTime({
      year: 2024,
      month: 2,
      day: 29,
      hour: 23,
      minute: 59,
      second: 58,
      microsecond: 123456,
      offsetMinutes: -330,
    });
    const d = client.callRemote(Everything, {
      i: -42,
      big: 2n ** 80n,
      s: Buffer.from([0, 1, 255]),
      u: 'snow \u2603',
      b: true,
      f: -1.5e-7,
      d: '3.1400',
      t: when,
      p: '/tmp/some where',
      l: ['a', '', '\u00e9'],
      al: [{ x: 1 }, { x: 2, y: 'two' }],
    });
    pump.flush();
    const r = resultOf(d);
    assert.equal(r.i, -42);
    assert.equal(r.big, 2n ** 80n);
    assert.deepEqual([...r.s], [0, 1, 255]);
    assert.equal(r.u, 'snow \u2603');
    assert.equal(r.b, true);
    assert.equal(r.f, -1.5e-7);
    assert.ok(r.d instanceof DecimalValue && r.d.toString() === '3.1400');
    assert.ok(r.t.equals(when));
    assert.equal(r.p, '/tmp/some where');
    assert.deepEqual(r.l, ['a', '', '\u00e9']);
    assert.deepEqual(r.al, [{ x: 1 }, { x: 2, y: 'two' }]);
    assert.equal('opt' in r, false);
  });
});

// ---------------------------------------------------------------------- TCP

describe('AMP over TCP on 127.0.0.1', () => {
  const CALLS = 10_000;

  /** Holds every Sum until all CALLS have arrived, then answers them in a scrambled order. */
  class Scrambler extends AMP {
    readonly held: Array<{ d: Deferred<{ total: number }>; total: number }> = [];
    constructor() {
      super();
      this.responder(Sum, ({ a, b }) => {
        const d = new Deferred<{ total: number }>();
        this.held.push({ d, total: a + b });
        if (this.held.length === CALLS) this.release();
        return d;
      });
    }

    release(): void {
      // A fixed permutation: odd positions backwards, then even ones forwards.
      const order: number[] = [];
      for (let i = CALLS - 1; i >= 0; i--) if (i % 2 === 1) order.push(i);
      for (let i = 0; i < CALLS; i += 2) order.push(i);
      for (const i of order) this.held[i].d.callback({ total: this.held[i].total });
    }
  }

  let port: ReturnType<typeof reactor.listenTCP>;
  before(async () => {
    port = reactor.listenTCP(0, Factory.forProtocol(Scrambler), { interface: '127.0.0.1' });
    await port.whenListening();
  });
  after(async () => {
    for (const t of [
      ...((port as unknown as { connections: Iterable<{ loseConnection(): void }> }).connections ??
        []),
    ]) {
      t.loseConnection();
    }
    await port.stopListening();
  });

  test(`${CALLS} concurrent callRemotes over one connection all get their own answer`, async () => {
    const amp = await new ClientCreator(reactor, AMP).connectTCP(
      '127.0.0.1',
      (port.getHost() as IPv4Address).port,
    );
    const lost = new Deferred<void>();
    const originalLost = amp.connectionLost.bind(amp);
    amp.connectionLost = (reason) => {
      originalLost(reason);
      lost.callback();
    };
    const order: number[] = [];
    const calls: Array<Promise<void>> = [];
    for (let i = 0; i < CALLS; i++) {
      const a = i * 7;
      const b = CALLS - i;
      calls.push(
        amp
          .callRemote(Sum, { a, b })
          .asPromise()
          .then(({ total }) => {
            assert.equal(total, a + b);
            order.push(i);
          }),
      );
    }
    assert.equal(amp.dispatcher.outstandingCount, CALLS);
    await Promise.all(calls);
    assert.equal(order.length, CALLS);
    assert.notDeepEqual(
      order.slice(0, 10),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'answers came out of order',
    );
    assert.equal(amp.dispatcher.outstandingCount, 0);
    amp.transport.loseConnection();
    await lost;
  });
});

// ---------------------------------------------------------------------- types

/** Compile-time checks (tsc runs over tests); never called. */
export function typeChecks(amp: AMP): void {
  const d: Deferred<{ total: number }> = amp.callRemote(Sum, { a: 1, b: 2 });
  void d;
  const r: Deferred<{ result: number }> = amp.callRemote(Divide, { numerator: 1, denominator: 2 });
  void r;
  const none: undefined = amp.callRemote(Notify, { message: 'x' });
  void none;
  amp.callRemote(Nope);
  // @ts-expect-error: b is missing
  amp.callRemote(Sum, { a: 1 });
  // @ts-expect-error: wrong type
  amp.callRemote(Sum, { a: 1, b: 'x' });
  // @ts-expect-error: arguments are required
  amp.callRemote(Sum);
  // @ts-expect-error: the response must have total: number
  amp.responder(Sum, () => ({ total: 'x' }));
  amp.responder(Everything, (args) => {
    const maybe: number | undefined = args.opt;
    const dt: AmpDateTime = args.t;
    void maybe;
    void dt;
    return { ...args, t: new Date(), d: '1.5' };
  });
  // @ts-expect-error: no such method on AMP
  new ResponderTable<AMP>().on(Sum, (args, self) => self.sum(args));
}
