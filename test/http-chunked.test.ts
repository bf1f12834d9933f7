/**
 * The chunked transfer coding on its own: the decoder at every split, where
 * it stops, its errors and limits, reuse; the encoder, and encoder →
 * decoder round trips.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import {
  type BodySink,
  ChunkedDecoder,
  type ChunkedDecoderOptions,
  CRLF,
  chunkSizeLine,
  encodeChunk,
  encodeLastChunk,
  LAST_CHUNK,
  PartialLine,
} from '../src/web/http/chunked.js';
import { PARSE_ERRORS, type ParseErrorKind } from '../src/web/http/errors.js';
import { Headers } from '../src/web/http/headers.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

class Sink implements BodySink {
  pieces: Buffer[] = [];
  onBody(chunk: Buffer): void {
    assert.ok(chunk.length > 0);
    this.pieces.push(chunk);
  }
  get text(): string {
    return Buffer.concat(this.pieces).toString('latin1');
  }
}

interface Outcome {
  body: string;
  done: boolean;
  trailers: [string, string][] | null;
  error: string | null;
  /** Bytes of the input after where the decoder stopped (never read); -1 after an error. */
  left: number;
  bodyBytes: number;
}

/** Feeds `pieces` in order, calling `execute` again after each stop while it makes progress. */
function decode(pieces: Buffer[], options?: ChunkedDecoderOptions): Outcome {
  const sink = new Sink();
  const decoder = new ChunkedDecoder(sink, options);
  let left = 0;
  for (const piece of pieces) {
    let pos = 0;
    while (pos < piece.length && !decoder.done && decoder.error === null)
      pos = decoder.execute(piece, pos);
    left += piece.length - pos;
  }
  return {
    body: sink.text,
    done: decoder.done,
    trailers: decoder.trailers === null ? null : [...decoder.trailers],
    error: decoder.error?.code ?? null,
    left: decoder.error === null ? left : -1,
    bodyBytes: decoder.bodyBytes,
  };
}

function everySplit(input: Buffer, options?: ChunkedDecoderOptions): Outcome {
  const whole = decode([input], options);
  assert.deepEqual(
    decode(
      Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1)),
      options,
    ),
    whole,
    'byte by byte',
  );
  for (let i = 1; i < input.length; i++) {
    assert.deepEqual(
      decode([input.subarray(0, i), input.subarray(i)], options),
      whole,
      `split at ${i}`,
    );
  }
  return whole;
}

describe('ChunkedDecoder', () => {
  test('decodes at every split and stops right after the final CRLF', () => {
    const out = everySplit(
      bytes('4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-A: 1\r\n\r\nNEXT'),
    );
    assert.deepEqual(out, {
      body: 'Wikipedia in\r\n\r\nchunks.',
      done: true,
      trailers: [['X-A', '1']],
      error: null,
      left: 4,
      bodyBytes: 23,
    });
  });

  test('stops after each piece of data it delivers', () => {
    const sink = new Sink();
    const decoder = new ChunkedDecoder(sink);
    const input = bytes('3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    const stops: number[] = [];
    let pos = 0;
    while (!decoder.done) {
      pos = decoder.execute(input, pos);
      stops.push(pos);
    }
    assert.deepEqual(stops, [6, 13, input.length]);
    assert.equal(sink.pieces.length, 2);
    assert.equal(sink.pieces[0]!.buffer, input.buffer, 'data is a view of the input');
    assert.equal(decoder.trailers, null);
  });

  test('reads nothing after done or an error', () => {
    const decoder = new ChunkedDecoder(new Sink());
    const input = bytes('0\r\n\r\nmore');
    assert.equal(decoder.execute(input, 0), 5);
    assert.equal(decoder.execute(input, 5), 5);
    const bad = new ChunkedDecoder(new Sink());
    assert.equal(bad.execute(bytes('zz\r\n'), 0), 4);
    assert.equal(bad.error?.code, 'TORSION_ERR_HTTP_INVALID_CHUNK_SIZE');
    assert.equal(bad.execute(bytes('0\r\n\r\n'), 0), 0);
  });

  test('reset makes it ready for another body', () => {
    const sink = new Sink();
    const decoder = new ChunkedDecoder(sink);
    decoder.execute(bytes('0\r\nA: 1\r\n\r\n'), 0);
    assert.ok(decoder.done);
    decoder.reset();
    assert.ok(!decoder.done);
    assert.equal(decoder.trailers, null);
    const again = bytes('1\r\nz\r\n0\r\n\r\n');
    let pos = 0;
    for (let guard = 0; !decoder.done && guard < 10; guard++) pos = decoder.execute(again, pos);
    assert.ok(decoder.done);
    assert.equal(pos, again.length);
    assert.equal(sink.text, 'z');
    assert.equal(decoder.bodyBytes, 1);
    decoder.reset();
    decoder.execute(bytes('zz'), 0);
    decoder.execute(bytes('\r\n'), 0);
    assert.equal(decoder.error?.kind, 'INVALID_CHUNK_SIZE');
    decoder.reset();
    assert.equal(decoder.error, null);
  });

  test('the largest chunk size, 2^53 - 1 (14 hex digits), is accepted', () => {
    const out = decode([bytes('1fffffffffffff\r\nabc')]);
    assert.deepEqual(out, {
      body: 'abc',
      done: false,
      trailers: null,
      error: null,
      left: 0,
      bodyBytes: Number.MAX_SAFE_INTEGER,
    });
    assert.equal(
      decode([bytes('0000000000000001\r\na\r\n0\r\n\r\n')]).body,
      'a',
      '16 digits with zeros',
    );
  });

  const errors: [string, string, ParseErrorKind, ChunkedDecoderOptions?][] = [
    ['non-hex size', 'g\r\n', 'INVALID_CHUNK_SIZE'],
    ['empty size', '\r\n', 'INVALID_CHUNK_SIZE'],
    ['17 digits', '10000000000000000\r\n', 'CHUNK_SIZE_TOO_LARGE'],
    ['2^53', '20000000000000\r\n', 'CHUNK_SIZE_TOO_LARGE'],
    ['bare LF after the size', '1\na\r\n0\r\n\r\n', 'BARE_LF'],
    ['no CRLF after the data', '1\r\nab\r\n', 'MISSING_CHUNK_CRLF'],
    ['CR then not LF after the data', '1\r\na\rb', 'MISSING_CHUNK_CRLF'],
    [
      'extension over the limit',
      '1;abcd\r\na\r\n',
      'CHUNK_EXTENSION_TOO_LONG',
      { maxChunkExtensionLength: 4 },
    ],
    ['control byte in an extension', '1;a\x7f\r\na\r\n', 'INVALID_CHUNK_EXTENSION'],
    ['body over maxBodySize', '3\r\nabc\r\n1\r\n', 'BODY_TOO_LARGE', { maxBodySize: 3 }],
    [
      'trailers over maxTrailerSize',
      '0\r\nA: 1234\r\n\r\n',
      'TRAILERS_TOO_LARGE',
      { maxTrailerSize: 10 },
    ],
    [
      'more trailers than maxTrailerCount',
      '0\r\nA: 1\r\nB: 2\r\n\r\n',
      'TOO_MANY_TRAILERS',
      { maxTrailerCount: 1 },
    ],
    ['obs-fold in trailers', '0\r\nA: 1\r\n 2\r\n\r\n', 'OBS_FOLD'],
    ['a trailer without a colon', '0\r\nA\r\n\r\n', 'MISSING_COLON'],
  ];
  for (const [name, input, kind, options] of errors) {
    test(`${name} → ${kind}`, () => {
      const out = everySplit(bytes(input), options);
      assert.equal(out.error, PARSE_ERRORS[kind][1]);
      assert.ok(!out.done);
    });
  }

  test('exactly at the limits passes', () => {
    assert.ok(decode([bytes('1;abc\r\na\r\n0\r\n\r\n')], { maxChunkExtensionLength: 4 }).done);
    assert.ok(decode([bytes('3\r\nabc\r\n0\r\n\r\n')], { maxBodySize: 3 }).done);
    assert.ok(decode([bytes('0\r\nA: 12\r\n\r\n')], { maxTrailerSize: 11 }).done);
    assert.ok(decode([bytes('0\r\nA: 1\r\n\r\n')], { maxTrailerCount: 1 }).done);
  });

  test('options are checked', () => {
    for (const name of ['maxChunkExtensionLength', 'maxTrailerSize', 'maxTrailerCount']) {
      assert.throws(() => new ChunkedDecoder(new Sink(), { [name]: 0 }), InvalidArgumentError);
    }
    assert.throws(() => new ChunkedDecoder(new Sink(), { maxBodySize: -1 }), InvalidArgumentError);
  });
});

describe('chunked encoding', () => {
  test('encodeChunk returns the size line, the data itself and CRLF', () => {
    const data = bytes('hello world');
    const pieces = encodeChunk(data);
    assert.equal(pieces.length, 3);
    assert.equal(pieces[1], data, 'the data is not copied');
    assert.equal(Buffer.from(pieces[0]!).toString(), 'b\r\n');
    assert.equal(pieces[2], CRLF);
    assert.deepEqual(encodeChunk(Buffer.alloc(0)), []);
  });

  test('chunkSizeLine and the constants', () => {
    assert.equal(chunkSizeLine(255).toString(), 'ff\r\n');
    assert.equal(chunkSizeLine(Number.MAX_SAFE_INTEGER).toString(), '1fffffffffffff\r\n');
    for (const bad of [0, -1, 1.5, Number.NaN])
      assert.throws(() => chunkSizeLine(bad), InvalidArgumentError);
    assert.equal(LAST_CHUNK.toString(), '0\r\n\r\n');
    assert.equal(encodeLastChunk(), LAST_CHUNK);
    assert.equal(encodeLastChunk(new Headers()), LAST_CHUNK);
    assert.equal(
      encodeLastChunk(new Headers([['X-Checksum', 'abc']])).toString(),
      '0\r\nX-Checksum: abc\r\n\r\n',
    );
  });

  test('round trip: encoded chunks and trailers decode to the same data, at every split', () => {
    const datas = [
      bytes('a'),
      Buffer.alloc(300, 0x0d),
      bytes('\r\n0\r\n\r\n'),
      Buffer.from([0, 1, 2, 255]),
    ];
    const trailers = new Headers([
      ['X-A', '1'],
      ['X-B', 'two words'],
    ]);
    const wire = Buffer.concat([
      ...datas.flatMap((d) => encodeChunk(d)),
      encodeLastChunk(trailers),
    ]);
    const out = everySplit(wire);
    assert.equal(out.body, Buffer.concat(datas).toString('latin1'));
    assert.deepEqual(out.trailers, [...trailers]);
    assert.ok(out.done);
    assert.equal(out.left, 0);
  });
});

describe('PartialLine (a line cut across reads)', () => {
  test('keeps pieces in order, as views at first and in a growing buffer past a few', () => {
    for (const sizes of [
      [1],
      [3, 4],
      [1, 1, 1, 1],
      [1, 1, 1, 1, 1],
      [500, 600, 1, 2000, 7],
      Array(3000).fill(1),
    ]) {
      const line = new PartialLine();
      const pieces = sizes.map((n, i) => Buffer.alloc(n, 0x61 + (i % 26)));
      for (const piece of pieces) line.add(piece);
      line.add(Buffer.alloc(0));
      const expected = Buffer.concat(pieces);
      assert.equal(line.length, expected.length);
      assert.deepEqual(line.peek(), expected);
      assert.equal(line.length, expected.length, 'peek keeps the bytes');
      const tail = bytes('\r\n');
      assert.deepEqual(line.take(tail), Buffer.concat([expected, tail]));
      assert.equal(line.length, 0);
      line.add(bytes('again'));
      assert.equal(line.take(bytes('!')).toString(), 'again!');
      line.add(bytes('x'));
      line.clear();
      assert.equal(line.length, 0);
      assert.equal(line.take(bytes('y')).toString(), 'y');
    }
  });

  test('a view kept early is copied before it can be reused by the line', () => {
    const line = new PartialLine();
    for (let i = 0; i < 10; i++) line.add(bytes(String(i)));
    const first = line.take(bytes('|'));
    line.add(bytes('zz'));
    for (let i = 0; i < 10; i++) line.add(bytes('w'));
    assert.equal(first.toString(), '0123456789|', 'an earlier result is not overwritten');
    assert.equal(line.take(bytes('')).toString(), `zz${'w'.repeat(10)}`);
  });
});
