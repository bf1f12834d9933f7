/**
 * NetstringReceiver: netstrings fed whole, byte by byte, in packets of 1–9
 * bytes and split at every point; every malformed case closes the connection
 * with a NetstringParseError saying why; MAX_LENGTH borders; pause/resume.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type NetstringParseError, NetstringReceiver } from '../src/protocols/basic.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import { StringTransport } from '../src/testing/string-transport.js';
import { cuts } from './receiver-helpers.js';

class TestNetstring extends NetstringReceiver {
  override MAX_LENGTH = 50;
  received: string[] = [];
  errors: NetstringParseError[] = [];
  override stringReceived(data: Buffer): void {
    this.received.push(data.toString());
    if (data.toString() === 'pause') this.pauseProducing();
  }
  protected override handleParseError(error: NetstringParseError): void {
    this.errors.push(error);
    super.handleParseError(error);
  }
}

/** Silences (and collects) log output for the duration of `fn`. */
function quietly<T>(fn: () => T): { result: T; events: LogEvent[] } {
  const events: LogEvent[] = [];
  const remove = addObserver((e) => events.push(e));
  try {
    return { result: fn(), events };
  } finally {
    remove();
  }
}

function connected(): { p: TestNetstring; t: StringTransport } {
  const p = new TestNetstring();
  const t = new StringTransport();
  p.makeConnection(t);
  return { p, t };
}

describe('NetstringReceiver', () => {
  const strings = ['hello', 'world', 'how', 'are', 'you123', ':today', 'a'.repeat(515), '', '1:a,'];

  test('netstrings at every cut', () => {
    const encoder = connected();
    for (const s of strings) encoder.p.sendString(s);
    const stream = encoder.t.value();
    assert.ok(stream.toString().startsWith('5:hello,5:world,'));
    for (const [cut, parts] of cuts(stream)) {
      const { p } = connected();
      p.MAX_LENGTH = 699;
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(p.received, strings, cut);
    }
  });

  test('empty, one- and two-character, and nested netstrings', () => {
    const { p } = connected();
    p.dataReceived(Buffer.from('0:,1:a,2:ab,4:1:a,,'));
    assert.deepEqual(p.received, ['', 'a', 'ab', '1:a,']);
  });

  test('portions: length split across packets, and two netstrings in two packets', () => {
    const { p } = connected();
    for (const part of ['1', '0:01234', '56789', ',']) p.dataReceived(Buffer.from(part));
    assert.deepEqual(p.received, ['0123456789']);
    const { p: q } = connected();
    q.dataReceived(Buffer.from('1:a,1'));
    assert.deepEqual(q.received, ['a']);
    q.dataReceived(Buffer.from(':b,'));
    assert.deepEqual(q.received, ['a', 'b']);
  });

  const illegal: [string, string, NetstringParseError['reason']][] = [
    ['a length too long for MAX_LENGTH in digits', '9999999999999999999999', 'too-long'],
    ['no length', 'abc', 'missing-length'],
    ['more data than announced', '4:abcde', 'missing-comma'],
    ['a length over MAX_LENGTH', `51:${'a'.repeat(50)}b,`, 'too-long'],
    ['a colon without digits', ':aaa,', 'missing-length'],
    ['digits without a colon', '3aaa,', 'missing-length'],
    ['only data', 'aaa', 'missing-length'],
    ['no comma after empty data', '0:a,', 'missing-comma'],
    ['a leading zero', '01:a,', 'missing-length'],
    ['a sign', '-1:a,', 'missing-length'],
    ['a space', ' 1:a,', 'missing-length'],
  ];

  for (const [what, input, reason] of illegal) {
    test(`malformed (${what}) closes the connection at every cut`, () => {
      for (const [cut, parts] of cuts(Buffer.from(input))) {
        const { p, t } = connected();
        const { events } = quietly(() => {
          for (const part of parts) p.dataReceived(part);
        });
        assert.ok(t.disconnecting, cut);
        assert.ok(p.brokenPeer, cut);
        assert.equal(p.errors.length, 1, cut);
        assert.equal(p.errors[0].reason, reason, cut);
        assert.equal(p.parseError, p.errors[0]);
        assert.equal(p.errors[0].code, 'TORSION_ERR_NETSTRING_PARSE');
        assert.deepEqual(p.received, [], cut);
        assert.equal(events.length, 1);
        assert.match(events[0].message, /closing the connection/);
      }
    });
  }

  test('strings before a malformed one are delivered; nothing after it', () => {
    const { p } = connected();
    quietly(() => {
      p.dataReceived(Buffer.from('2:ok,x:bad,3:abc,'));
      p.dataReceived(Buffer.from('3:abc,'));
    });
    assert.deepEqual(p.received, ['ok']);
  });

  test('MAX_LENGTH borders: equal is accepted, one more is refused', () => {
    const { p, t } = connected();
    p.MAX_LENGTH = 12;
    p.dataReceived(Buffer.from(`12:${'x'.repeat(12)},`));
    assert.deepEqual(p.received, ['x'.repeat(12)]);
    assert.ok(!t.disconnecting);
    const { p: q, t: u } = connected();
    q.MAX_LENGTH = 11;
    quietly(() => q.dataReceived(Buffer.from('12:')));
    assert.ok(u.disconnecting);
    assert.equal(q.errors[0].reason, 'too-long');
    const { p: r } = connected();
    r.MAX_LENGTH = 11;
    quietly(() => r.dataReceived(Buffer.from('1000:')));
    assert.equal(r.errors[0].reason, 'too-long');
  });

  test('an oversize length is refused before its data arrives', () => {
    const { p, t } = connected();
    quietly(() => p.dataReceived(Buffer.from('100')));
    assert.ok(t.disconnecting);
    assert.equal(p.errors[0].reason, 'too-long');
  });

  test('after loseConnection nothing more is delivered, and late data is harmless', () => {
    const { p, t } = connected();
    p.dataReceived(Buffer.from('1:a,'));
    t.loseConnection();
    p.dataReceived(Buffer.from('1:b,1:c,'));
    p.dataReceived(Buffer.from('1:d,'));
    assert.deepEqual(p.received, ['a']);
  });

  test('pause inside stringReceived holds the rest; resume delivers it', () => {
    const stream = Buffer.from('1:a,5:pause,1:b,1:c,');
    for (const [cut, parts] of cuts(stream)) {
      const { p, t } = connected();
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(p.received, ['a', 'pause'], cut);
      assert.equal(t.producerState, 'paused');
      p.resumeProducing();
      assert.deepEqual(p.received, ['a', 'pause', 'b', 'c'], cut);
    }
  });

  test('a large netstring byte by byte and in pieces over the pump', () => {
    const big = 'q'.repeat(90_000);
    for (const chunkSize of [1, 1000, 0]) {
      const { server, client, pump } = connectedServerAndClient<TestNetstring, TestNetstring>(
        () => {
          const p = new TestNetstring();
          p.MAX_LENGTH = 99_999;
          return p;
        },
        () => new TestNetstring(),
        { chunkSize },
      );
      client.sendString(big);
      client.sendString('tail');
      pump.flush(1_000_000);
      assert.deepEqual(server.received, [big, 'tail'], `chunkSize ${chunkSize}`);
    }
  });
});
