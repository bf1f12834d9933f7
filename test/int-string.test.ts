/**
 * Int8/16/32StringReceiver: strings fed whole, byte by byte, in packets of
 * 1–9 bytes and split at every point; MAX_LENGTH and lengthLimitExceeded;
 * sendString and StringTooLongError; pause/resume mid-buffer; big strings
 * spanning many chunks.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Int8StringReceiver,
  Int16StringReceiver,
  Int32StringReceiver,
  type IntNStringReceiver,
  StringTooLongError,
} from '../src/protocols/basic.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import { StringTransport } from '../src/testing/string-transport.js';
import { cuts } from './receiver-helpers.js';

/** Records strings and refused lengths; `pauseOn` pauses after that string. */
function recorder<B extends abstract new () => IntNStringReceiver>(Base: B) {
  abstract class Recorder extends (Base as abstract new () => IntNStringReceiver) {
    received: Buffer[] = [];
    limits: number[] = [];
    pauseOn: string | null = null;
    override stringReceived(data: Buffer): void {
      this.received.push(data);
      if (data.toString() === this.pauseOn) this.pauseProducing();
    }
    override lengthLimitExceeded(length: number): void {
      this.limits.push(length);
      super.lengthLimitExceeded(length);
    }
  }
  return Recorder;
}

class Int8Recorder extends recorder(Int8StringReceiver) {
  readonly prefixLength = 1;
}
class Int16Recorder extends recorder(Int16StringReceiver) {
  readonly prefixLength = 2;
}
class Int32Recorder extends recorder(Int32StringReceiver) {
  readonly prefixLength = 4;
}

const KINDS = [
  { name: 'Int8StringReceiver', P: 1, Class: Int8Recorder },
  { name: 'Int16StringReceiver', P: 2, Class: Int16Recorder },
  { name: 'Int32StringReceiver', P: 4, Class: Int32Recorder },
];

function frame(P: number, data: Buffer): Buffer {
  const out = Buffer.alloc(P + data.length);
  out.writeUIntBE(data.length, 0, P);
  data.copy(out, P);
  return out;
}

const strings = ['hello', 'world', 'how', 'are', 'you123', ':today', 'a'.repeat(100), ''].map((s) =>
  Buffer.from(s),
);

for (const { name, P, Class } of KINDS) {
  describe(name, () => {
    const connected = () => {
      const p = new Class();
      const t = new StringTransport();
      p.makeConnection(t);
      return { p, t };
    };

    test('strings at every cut', () => {
      const stream = Buffer.concat(strings.map((s) => frame(P, s)));
      for (const [cut, parts] of cuts(stream)) {
        const { p } = connected();
        for (const part of parts) p.dataReceived(part);
        assert.deepEqual(p.received.map(String), strings.map(String), cut);
      }
    });

    test('a partial string is not delivered', () => {
      const partials = [frame(P, Buffer.from('hello')).subarray(0, P + 3), Buffer.alloc(P - 1)];
      for (const partial of partials) {
        const { p } = connected();
        for (const byte of partial) p.dataReceived(Buffer.from([byte]));
        assert.deepEqual(p.received, []);
      }
    });

    test('sendString writes the prefix and the data in one write', () => {
      const { p, t } = connected();
      p.sendString(Buffer.from('b'.repeat(16)));
      p.sendString('é');
      assert.equal(t.written.length, 2);
      assert.deepEqual(
        t.value(),
        Buffer.concat([frame(P, Buffer.from('b'.repeat(16))), frame(P, Buffer.from('é'))]),
      );
    });

    test('a prefix over MAX_LENGTH calls lengthLimitExceeded (closing) and delivers nothing', () => {
      const { p, t } = connected();
      p.MAX_LENGTH = 10;
      p.dataReceived(frame(P, Buffer.from('x'.repeat(11))));
      assert.deepEqual(p.limits, [11]);
      assert.deepEqual(p.received, []);
      assert.ok(t.disconnecting);
      // Just the prefix is enough to refuse it.
      const { p: q } = connected();
      q.MAX_LENGTH = 10;
      q.dataReceived(frame(P, Buffer.from('x'.repeat(11))).subarray(0, P));
      assert.deepEqual(q.limits, [11]);
    });

    test('strings before an oversize prefix are delivered', () => {
      const { p } = connected();
      p.MAX_LENGTH = 10;
      p.dataReceived(Buffer.concat([frame(P, Buffer.from('ok')), frame(P, Buffer.alloc(11))]));
      assert.deepEqual(p.received.map(String), ['ok']);
      assert.deepEqual(p.limits, [11]);
    });

    test('sendString of a string too long for the prefix throws StringTooLongError', () => {
      const { p, t } = connected();
      const max = 2 ** (8 * P);
      if (P === 4) {
        // 4 GiB cannot be allocated here; check the error itself.
        const e = new StringTooLongError(max, max);
        assert.equal(e.code, 'TORSION_ERR_STRING_TOO_LONG');
        return;
      }
      assert.throws(() => p.sendString(Buffer.alloc(max)), StringTooLongError);
      assert.equal(t.value().length, 0);
      p.sendString(Buffer.alloc(max - 1));
      assert.equal(t.value().length, P + max - 1);
    });

    test('pause inside stringReceived holds the rest; resume delivers it', () => {
      const stream = Buffer.concat(['a', 'pause', 'b', 'c'].map((s) => frame(P, Buffer.from(s))));
      for (const [cut, parts] of cuts(stream)) {
        const p = new Class();
        p.pauseOn = 'pause';
        const t = new StringTransport();
        p.makeConnection(t);
        for (const part of parts) p.dataReceived(part);
        assert.deepEqual(p.received.map(String), ['a', 'pause'], cut);
        assert.equal(t.producerState, 'paused');
        p.resumeProducing();
        assert.deepEqual(p.received.map(String), ['a', 'pause', 'b', 'c'], cut);
      }
    });

    test('after loseConnection nothing more is delivered, and late data is harmless', () => {
      const { p, t } = connected();
      p.dataReceived(frame(P, Buffer.from('a')));
      t.loseConnection();
      p.dataReceived(Buffer.concat([frame(P, Buffer.from('b')), frame(P, Buffer.from('c'))]));
      p.dataReceived(frame(P, Buffer.from('d')));
      assert.deepEqual(p.received.map(String), ['a']);
    });

    test('strings are views that stay valid while more data arrives', () => {
      const { p } = connected();
      const max = P === 1 ? 255 : 3000;
      const sent: Buffer[] = [];
      for (let i = 0; i < 300; i++) {
        sent.push(Buffer.alloc((i * 37) % max, String.fromCharCode(65 + (i % 26))));
      }
      const stream = Buffer.concat(sent.map((s) => frame(P, s)));
      for (let i = 0, size = 1; i < stream.length; i += size, size = (size * 13 + 5) % 700 || 1) {
        p.dataReceived(stream.subarray(i, i + size));
      }
      assert.equal(p.received.length, sent.length);
      for (let i = 0; i < sent.length; i++) assert.ok(p.received[i].equals(sent[i]), `#${i}`);
    });

    if (P > 1) {
      test('a 4 MiB string in 1 KiB pieces, over the in-memory pump', () => {
        const big = Buffer.alloc(4 * 1024 * 1024);
        for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
        const { server, client, pump } = connectedServerAndClient<
          InstanceType<typeof Class>,
          InstanceType<typeof Class>
        >(
          () => {
            const p = new Class();
            p.MAX_LENGTH = big.length;
            return p;
          },
          () => new Class(),
          { chunkSize: 1024 },
        );
        if (P === 2) {
          assert.throws(() => client.sendString(big), StringTooLongError);
          return;
        }
        client.sendString(big);
        pump.flush(100_000);
        assert.equal(server.received.length, 1);
        assert.ok(server.received[0].equals(big));
      });
    }
  });
}
