/**
 * AMP's wire encodings, byte for byte against what Twisted 22.4 (Debian's
 * python3-twisted) emits: boxes (sorted keys, length prefixes, TooLong),
 * the incremental parser (whole, byte by byte, every split), and every
 * argument type. The hex literals were captured once from Twisted
 * (`amp.AmpBox.serialize`, `Argument.toString`) and are kept here.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Boolean as AmpBoolean,
  AmpBox,
  AmpDateTime,
  AmpList,
  String as AmpString,
  BigInteger,
  Bool,
  BoxParser,
  Bytes,
  DateTime,
  Decimal,
  DecimalValue,
  Float,
  Integer,
  ListOf,
  MalformedAmpBox,
  optional,
  Path,
  pythonBytesRepr,
  pythonFloatRepr,
  TooLong,
  Unicode,
} from '../src/protocols/amp.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';

const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex');
const bytes = (h: string): Buffer => Buffer.from(h, 'hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

// ---------------------------------------------------------------------- boxes

describe('AmpBox.serialize', () => {
  test('sorts keys bytewise and length-prefixes keys and values, as Twisted', () => {
    // amp.AmpBox({b'_command': b'Sum', b'_ask': b'a', b'b': b'81', b'a': b'13',
    //             b'Z': b'', b'_answer': b'1'}).serialize()
    const box = AmpBox.of({ _command: 'Sum', _ask: 'a', b: '81', a: '13', Z: '', _answer: '1' });
    assert.equal(
      hex(box.serialize()),
      '00015a000000075f616e7377657200013100045f61736b00016100085f636f6d6d616e64' +
        '000353756d00016100023133000162000238310000',
    );
  });

  test('an empty box is just the terminator', () => {
    assert.equal(hex(new AmpBox().serialize()), '0000');
  });

  test('a key of 255 bytes and a value of 65,535 bytes are allowed', () => {
    const box = new AmpBox([['k'.repeat(255), Buffer.alloc(65535, 1)]]);
    const wire = box.serialize();
    assert.equal(wire.length, 2 + 255 + 2 + 65535 + 2);
    assert.equal(wire.readUInt16BE(0), 255);
    assert.equal(wire.readUInt16BE(257), 65535);
  });

  test('a key over 255 bytes is TooLong (local, key)', () => {
    const box = new AmpBox([['k'.repeat(256), Buffer.alloc(0)]]);
    assert.throws(
      () => box.serialize(),
      (e: unknown) => e instanceof TooLong && e.isKey && e.isLocal && e.length === 256,
    );
  });

  test('a value over 65,535 bytes is TooLong (local, value, with its key)', () => {
    const box = new AmpBox([['big', Buffer.alloc(65536)]]);
    assert.throws(
      () => box.serialize(),
      (e: unknown) =>
        e instanceof TooLong &&
        !e.isKey &&
        e.isLocal &&
        e.keyName === 'big' &&
        e.code === 'TORSION_ERR_AMP_TOO_LONG',
    );
  });

  test('empty keys and keys that are not byte strings are refused', () => {
    assert.throws(() => new AmpBox([['', Buffer.alloc(0)]]).serialize(), InvalidArgumentError);
    assert.throws(
      () => new AmpBox([['\u2603', Buffer.alloc(0)]]).serialize(),
      InvalidArgumentError,
    );
  });

  test('keys are byte strings: latin1 keys round-trip exactly', () => {
    const box = new AmpBox([['\xe9\x00\xff', ascii('v')]]);
    const [back] = AmpBox.parseAll(box.serialize());
    assert.deepEqual([...back.keys()], ['\xe9\x00\xff']);
  });
});

describe('pythonBytesRepr', () => {
  test("matches Python's repr(bytes)", () => {
    assert.equal(pythonBytesRepr(ascii('Foo')), "b'Foo'");
    // repr(b"it'x\x80\n\\") == 'b"it\'x\\x80\\n\\\\"'
    assert.equal(
      pythonBytesRepr(Buffer.from([0x69, 0x74, 0x27, 0x78, 0x80, 0x0a, 0x5c])),
      'b"it\'x\\x80\\n\\\\"',
    );
    assert.equal(pythonBytesRepr(ascii('a\'b"c')), "b'a\\'b\"c'");
    assert.equal(pythonBytesRepr(Buffer.from([0, 9, 13, 0x7f])), "b'\\x00\\t\\r\\x7f'");
  });
});

// ---------------------------------------------------------------------- parser

/** Three boxes as Twisted writes them: a Sum request, its answer, an error. */
const STREAM = bytes(
  '00045f61736b00013100085f636f6d6d616e64000353756d00016100023133000162000238310000' +
    '00075f616e737765720001310005746f74616c000239340000' +
    '00065f6572726f72000132000b5f6572726f725f636f6465000d5a45524f5f4449564953494f4e' +
    '00125f6572726f725f6465736372697074696f6e00106469766973696f6e206279207a65726f0000',
);

function parseChunks(chunks: Buffer[]): Array<Record<string, string>> {
  const parser = new BoxParser();
  const out: Array<Record<string, string>> = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let box = parser.next(); box !== null; box = parser.next()) {
      out.push(Object.fromEntries([...box].map(([k, v]) => [k, v.toString('latin1')])));
    }
  }
  assert.equal(parser.bufferedBytes, 0);
  assert.equal(parser.inBox, false);
  return out;
}

const EXPECTED_BOXES = [
  { _ask: '1', _command: 'Sum', a: '13', b: '81' },
  { _answer: '1', total: '94' },
  { _error: '2', _error_code: 'ZERO_DIVISION', _error_description: 'division by zero' },
];

describe('BoxParser', () => {
  test('parses a stream fed whole', () => {
    assert.deepEqual(parseChunks([STREAM]), EXPECTED_BOXES);
  });

  test('parses a stream fed one byte at a time', () => {
    const chunks = Array.from({ length: STREAM.length }, (_, i) => STREAM.subarray(i, i + 1));
    assert.deepEqual(parseChunks(chunks), EXPECTED_BOXES);
  });

  test('parses a stream split at every point', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      assert.deepEqual(
        parseChunks([STREAM.subarray(0, i), STREAM.subarray(i)]),
        EXPECTED_BOXES,
        `split at ${i}`,
      );
    }
  });

  test('parses a stream in packets of 1 to 9 bytes', () => {
    for (let size = 1; size <= 9; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < STREAM.length; i += size) chunks.push(STREAM.subarray(i, i + size));
      assert.deepEqual(parseChunks(chunks), EXPECTED_BOXES, `packet size ${size}`);
    }
  });

  test('a 65,535-byte value fed one byte at a time comes out whole', () => {
    const value = Buffer.alloc(65535);
    for (let i = 0; i < value.length; i++) value[i] = i & 0xff;
    const wire = new AmpBox([['v', value]]).serialize();
    const parser = new BoxParser();
    let got: AmpBox | null = null;
    for (let i = 0; i < wire.length; i++) {
      parser.push(wire.subarray(i, i + 1));
      const box = parser.next();
      if (box !== null) got = box;
    }
    assert.ok(got !== null);
    assert.ok(got.get('v')?.equals(value));
  });

  test('values within one chunk are views, not copies', () => {
    const parser = new BoxParser();
    parser.push(STREAM);
    const box = parser.next() as AmpBox;
    assert.equal((box.get('a') as Buffer).buffer, STREAM.buffer);
  });

  test('an empty box (a bare terminator) parses as an empty AmpBox', () => {
    const parser = new BoxParser();
    parser.push(bytes('0000'));
    assert.equal(parser.next()?.size, 0);
  });

  test('a key length over 255 is TooLong (remote, key)', () => {
    const parser = new BoxParser();
    parser.push(bytes('0100'));
    assert.throws(
      () => parser.next(),
      (e: unknown) => e instanceof TooLong && e.isKey && !e.isLocal && e.length === 256,
    );
  });

  test('AmpBox.parseAll refuses data ending inside a box', () => {
    assert.throws(() => AmpBox.parseAll(STREAM.subarray(0, 10)), MalformedAmpBox);
    assert.throws(() => AmpBox.parseAll(STREAM.subarray(0, STREAM.length - 2)), MalformedAmpBox);
    assert.equal(AmpBox.parseAll(STREAM).length, 3);
  });
});

// ---------------------------------------------------------------------- arguments

describe('argument encodings (as Twisted)', () => {
  const enc = <I>(arg: { toBytes(v: I, p: null): Buffer }, v: I): string =>
    arg.toBytes(v, null).toString('latin1');
  const dec = <O>(arg: { fromBytes(b: Buffer, p: null): O }, s: string | Buffer): O =>
    arg.fromBytes(typeof s === 'string' ? ascii(s) : s, null);

  test('Integer: decimal ASCII', () => {
    assert.equal(enc(Integer, 0), '0');
    assert.equal(enc(Integer, -123), '-123');
    assert.equal(enc(Integer, -0), '0');
    assert.equal(enc(Integer, 2n ** 70n), '1180591620717411303424');
    assert.equal(dec(Integer, '94'), 94);
    assert.equal(dec(Integer, '-0'), 0);
    // What Python's int() also accepts.
    assert.equal(dec(Integer, ' +1_000\n'), 1000);
    assert.equal(dec(Integer, '007'), 7);
    assert.throws(() => enc(Integer, 1.5), InvalidArgumentError);
    assert.throws(() => enc(Integer, Number.MAX_SAFE_INTEGER + 1), InvalidArgumentError);
    assert.throws(() => dec(Integer, '1180591620717411303424'), InvalidArgumentError);
    for (const bad of ['', '1.0', '0x10', '1e3', '1__0', '_1', 'abc', '١']) {
      assert.throws(() => dec(Integer, bad), InvalidArgumentError, bad);
    }
  });

  test('BigInteger: the same wire, as bigint', () => {
    assert.equal(enc(BigInteger, 2n ** 70n), '1180591620717411303424');
    assert.equal(enc(BigInteger, 42), '42');
    assert.equal(dec(BigInteger, '-1180591620717411303424'), -(2n ** 70n));
  });

  test("Float: Python's repr", () => {
    const cases: Array<[number, string]> = [
      [1.0, '1.0'],
      [0.1, '0.1'],
      [-0.0, '-0.0'],
      [0, '0.0'],
      [1e16, '1e+16'],
      [1e15, '1000000000000000.0'],
      [1.2345678901234568e17, '1.2345678901234568e+17'],
      [1e-5, '1e-05'],
      [0.0001, '0.0001'],
      [1.5e300, '1.5e+300'],
      [5e-324, '5e-324'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
      [Number.NaN, 'nan'],
      [2.5, '2.5'],
      [1e22, '1e+22'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [123.456, '123.456'],
      [1 / 3, '0.3333333333333333'],
    ];
    for (const [value, wire] of cases) {
      assert.equal(enc(Float, value), wire);
      assert.equal(pythonFloatRepr(value), wire);
      const back = dec(Float, wire);
      assert.ok(Object.is(back, value) || (Number.isNaN(back) && Number.isNaN(value)), wire);
    }
    // What Python's float() also accepts.
    assert.equal(dec(Float, ' 1_0.5 '), 10.5);
    assert.equal(dec(Float, 'Infinity'), Infinity);
    assert.equal(dec(Float, '-INF'), -Infinity);
    assert.ok(Number.isNaN(dec(Float, '-nan')));
    assert.equal(dec(Float, '.5'), 0.5);
    assert.equal(dec(Float, '5.'), 5);
    assert.equal(dec(Float, '1E3'), 1000);
    for (const bad of ['', '0x10', 'in', '1e', '.', '1..2', 'Infinityy']) {
      assert.throws(() => dec(Float, bad), InvalidArgumentError, bad);
    }
  });

  test('Boolean: True / False exactly', () => {
    assert.equal(Bool, AmpBoolean);
    assert.equal(enc(Bool, true), 'True');
    assert.equal(enc(Bool, false), 'False');
    assert.equal(dec(Bool, 'True'), true);
    assert.equal(dec(Bool, 'False'), false);
    for (const bad of ['true', 'TRUE', '1', '', 'False ']) {
      assert.throws(() => dec(Bool, bad), InvalidArgumentError, bad);
    }
  });

  test('Unicode: UTF-8, strict', () => {
    const text = 'h\u00e9llo \u2603 \u{1f600}';
    assert.equal(hex(Unicode.toBytes(text)), '68c3a96c6c6f20e2988320f09f9880');
    assert.equal(Unicode.fromBytes(bytes('68c3a96c6c6f20e2988320f09f9880')), text);
    assert.equal(Unicode.fromBytes(bytes('efbbbf41')), '\ufeffA'); // a BOM is kept
    assert.throws(() => Unicode.fromBytes(bytes('c3')), TypeError);
    assert.throws(() => Unicode.toBytes('\ud800'), InvalidArgumentError);
  });

  test('String (Bytes): the bytes, unchanged; decoded values are copies', () => {
    assert.equal(Bytes, AmpString);
    const data = bytes('00ff10');
    assert.equal(hex(Bytes.toBytes(data)), '00ff10');
    assert.equal(hex(Bytes.toBytes(new Uint8Array([1, 2]))), '0102');
    const out = Bytes.fromBytes(data);
    assert.ok(out.equals(data));
    data[0] = 0x99;
    assert.equal(out[0], 0);
  });

  test('Path: an absolute path as UTF-8', () => {
    assert.equal(enc(Path, '/tmp/x y'), '/tmp/x y');
    assert.equal(enc(Path, '/tmp/a/../b'), '/tmp/b');
    assert.equal(enc(Path, 'rel'), `${process.cwd()}/rel`);
    assert.equal(dec(Path, '/tmp/x y'), '/tmp/x y');
  });

  test("Decimal: Python's str(Decimal)", () => {
    // Decimal(input) -> str(...) as Twisted's Decimal.toString writes it.
    const cases: Array<[string, string]> = [
      ['1', '1'],
      ['-1', '-1'],
      ['1.0', '1.0'],
      ['10', '10'],
      ['1E+2', '1E+2'],
      ['1E-1', '0.1'],
      ['1.5E+2', '1.5E+2'],
      ['0.000001', '0.000001'],
      ['0.0000001', '1E-7'],
      ['123.4500', '123.4500'],
      ['-0', '-0'],
      ['Infinity', 'Infinity'],
      ['-Infinity', '-Infinity'],
      ['NaN', 'NaN'],
      ['-NaN', '-NaN'],
      ['sNaN', 'sNaN'],
      ['NaN123', 'NaN123'],
      ['NaN0123', 'NaN123'],
      ['NaN0', 'NaN'],
      ['1e-7', '1E-7'],
      ['12345678901234567890.123', '12345678901234567890.123'],
      ['0E+3', '0E+3'],
      ['0.00', '0.00'],
      ['-0.000', '-0.000'],
      ['-1.23E-10', '-1.23E-10'],
      ['1_000.5', '1000.5'],
      [' 7 ', '7'],
      ['inf', 'Infinity'],
      ['1E+999999', '1E+999999'],
      ['0000', '0'],
      ['001.0', '1.0'],
      ['1.', '1'],
      ['.5', '0.5'],
    ];
    for (const [input, wire] of cases) {
      assert.equal(enc(Decimal, input), wire, input);
      assert.equal(enc(Decimal, DecimalValue.parse(input)), wire, input);
      assert.equal(dec(Decimal, wire).toString(), wire, wire);
    }
    assert.ok(dec(Decimal, '1.50').equals(DecimalValue.parse('1.50')));
    assert.ok(!dec(Decimal, '1.50').equals(DecimalValue.parse('1.5')));
    assert.equal(dec(Decimal, '1.5E+2').toNumber(), 150);
    assert.equal(DecimalValue.from(0.1).toString(), '0.1');
    assert.equal(DecimalValue.from(-0).toString(), '-0');
    assert.equal(DecimalValue.from(12345678901234567890n).toString(), '12345678901234567890');
    assert.equal(DecimalValue.from(1e21).toString(), '1E+21');
    for (const bad of ['', '.', '1..0', 'e5', '1e', 'abc', '0x10', 'Infinit']) {
      assert.throws(() => dec(Decimal, bad), InvalidArgumentError, bad);
    }
  });

  test('DateTime: YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM, a zero offset as -00:00', () => {
    const cases: Array<[AmpDateTime, string]> = [
      [
        new AmpDateTime({
          year: 2012,
          month: 1,
          day: 23,
          hour: 12,
          minute: 34,
          second: 56,
          microsecond: 54321,
        }),
        '2012-01-23T12:34:56.054321-00:00',
      ],
      [
        new AmpDateTime({
          year: 1,
          month: 2,
          day: 3,
          hour: 4,
          minute: 5,
          second: 6,
          microsecond: 7,
          offsetMinutes: 330,
        }),
        '0001-02-03T04:05:06.000007+05:30',
      ],
      [
        new AmpDateTime({
          year: 9999,
          month: 12,
          day: 31,
          hour: 23,
          minute: 59,
          second: 59,
          microsecond: 999999,
          offsetMinutes: -(23 * 60 + 59),
        }),
        '9999-12-31T23:59:59.999999-23:59',
      ],
    ];
    for (const [value, wire] of cases) {
      assert.equal(enc(DateTime, value), wire);
      assert.ok(dec(DateTime, wire).equals(value), wire);
    }
    // A Date is sent as UTC, milliseconds as microseconds.
    assert.equal(
      enc(DateTime, new Date('2012-01-23T12:34:56.054Z')),
      '2012-01-23T12:34:56.054000-00:00',
    );
    assert.equal(
      dec(DateTime, '2012-01-23T18:04:56.054999+05:30').toDate().toISOString(),
      '2012-01-23T12:34:56.054Z',
    );
    assert.equal(dec(DateTime, '0001-01-01T00:00:00.000000+00:00').toDate().getUTCFullYear(), 1);
    // +00:00 is read (Twisted would write it back as -00:00).
    assert.equal(
      dec(DateTime, '2000-01-01T00:00:00.000000+00:00').toString(),
      '2000-01-01T00:00:00.000000-00:00',
    );
    assert.equal(
      AmpDateTime.fromDate(new Date('2000-01-01T00:00:00Z'), -480).toString(),
      '1999-12-31T16:00:00.000000-08:00',
    );
    for (const bad of [
      '2012-01-23T12:34:56.054321',
      '2012-01-23 12:34:56.054321-00:00',
      '2012-02-30T12:34:56.054321-00:00',
      '2012-13-01T12:34:56.054321-00:00',
      '2012-01-23T24:00:00.000000-00:00',
      '0000-01-01T00:00:00.000000-00:00',
      '2012-01-23T12:34:56.054321*00:00',
      '2012-01-23T12:34:56.054321+24:00',
    ]) {
      assert.throws(() => dec(DateTime, bad), InvalidArgumentError, bad);
    }
    assert.ok(dec(DateTime, '2012-02-29T00:00:00.000000-00:00'));
    assert.throws(() => dec(DateTime, '2100-02-29T00:00:00.000000-00:00'), InvalidArgumentError);
  });

  test('ListOf: each element 2-byte-length-prefixed', () => {
    assert.equal(hex(ListOf(Integer).toBytes([1, 20, 300], null)), '000131000232300003333030');
    assert.equal(hex(ListOf(Unicode).toBytes([], null)), '');
    assert.equal(
      hex(ListOf(ListOf(Integer)).toBytes([[1], [2, 3]], null)),
      '00030001310006000132000133',
    );
    assert.deepEqual(
      ListOf(Integer).fromBytes(bytes('000131000232300003333030'), null),
      [1, 20, 300],
    );
    assert.deepEqual(ListOf(ListOf(Integer)).fromBytes(bytes('00030001310006000132000133'), null), [
      [1],
      [2, 3],
    ]);
    assert.deepEqual(ListOf(Unicode).fromBytes(Buffer.alloc(0), null), []);
    assert.throws(() => ListOf(Integer).fromBytes(bytes('0001'), null), InvalidArgumentError);
    assert.throws(() => ListOf(Integer).fromBytes(bytes('00'), null), InvalidArgumentError);
    assert.throws(() => ListOf(Bytes).toBytes([Buffer.alloc(65536)], null), TooLong);
  });

  test('AmpList: each element a serialized box', () => {
    const list = AmpList({ a: Integer, b: Unicode, c: optional(Integer) });
    const wire =
      '000161000137000162000568656c6c6f0000' +
      '0001610001390001620007676f6f646279650001630001330000';
    assert.equal(
      hex(
        list.toBytes(
          [
            { a: 7, b: 'hello' },
            { a: 9, b: 'goodbye', c: 3 },
          ],
          null,
        ),
      ),
      wire,
    );
    assert.deepEqual(list.fromBytes(bytes(wire), null), [
      { a: 7, b: 'hello' },
      { a: 9, b: 'goodbye', c: 3 },
    ]);
    assert.equal(hex(list.toBytes([], null)), '');
    assert.deepEqual(AmpList({ c: optional(Integer) }).fromBytes(bytes('00000000'), null), [
      {},
      {},
    ]);
    assert.throws(() => list.fromBytes(bytes(wire.slice(0, 20)), null), MalformedAmpBox);
  });

  test('optional: left out when undefined or null, absent when missing', () => {
    const box = new AmpBox();
    optional(Integer).toBox('x', box, { x: undefined }, null);
    optional(Integer).toBox('y', box, { y: null }, null);
    assert.equal(box.size, 0);
    const out: Record<string, unknown> = {};
    optional(Integer).fromBox('x', box, out, null);
    assert.deepEqual(out, {});
    assert.equal(optional(optional(Integer)).inner, Integer);
  });

  test('fromBox wraps decode errors in MalformedAmpBox naming the key', () => {
    const box = AmpBox.of({ n: 'twelve' });
    assert.throws(
      () => Integer.fromBox('n', box, {}, null),
      (e: unknown) =>
        e instanceof MalformedAmpBox &&
        /"n"/.test(e.message) &&
        e.code === 'TORSION_ERR_AMP_MALFORMED_BOX',
    );
    assert.throws(() => Integer.fromBox('missing', box, {}, null), MalformedAmpBox);
  });
});
