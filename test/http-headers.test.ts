/**
 * `Headers` (case-insensitive, multi-valued, raw casing and order kept,
 * response-splitting protection) and the status-code helpers.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import { InvalidHeaderError } from '../src/web/http/errors.js';
import { Headers, isFieldValue, isToken } from '../src/web/http/headers.js';
import { type RequestHead, RequestParser } from '../src/web/http/parser.js';
import {
  reasonPhrase,
  STATUS_CODES,
  statusHasNoBody,
  statusLine,
  statusLineText,
} from '../src/web/http/status.js';

describe('Headers', () => {
  test('lookups ignore case; raw casing and order are kept', () => {
    const h = new Headers();
    h.add('Content-Type', 'text/plain')
      .add('X-Multi', 'a')
      .add('x-multi', 'b')
      .add('Set-Cookie', 'a=1');
    h.add('SET-COOKIE', 'b=2');
    assert.equal(h.get('content-type'), 'text/plain');
    assert.equal(h.get('CONTENT-TYPE'), 'text/plain');
    assert.equal(h.get('x-MULTI'), 'a, b');
    assert.deepEqual(h.getAll('X-Multi'), ['a', 'b']);
    assert.equal(h.get('set-cookie'), 'a=1', 'Set-Cookie values are never joined');
    assert.deepEqual(h.getAll('set-cookie'), ['a=1', 'b=2']);
    assert.ok(h.has('SET-cookie'));
    assert.ok(!h.has('absent'));
    assert.equal(h.get('absent'), null);
    assert.deepEqual(h.getAll('absent'), []);
    assert.equal(h.size, 5);
    assert.deepEqual(
      [...h],
      [
        ['Content-Type', 'text/plain'],
        ['X-Multi', 'a'],
        ['x-multi', 'b'],
        ['Set-Cookie', 'a=1'],
        ['SET-COOKIE', 'b=2'],
      ],
    );
    assert.equal(
      h.serialize(),
      'Content-Type: text/plain\r\nX-Multi: a\r\nx-multi: b\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\n',
    );
    assert.deepEqual(h.names(), ['content-type', 'x-multi', 'set-cookie']);
  });

  test('set replaces every entry of a name where the first one was, with the new casing', () => {
    const h = new Headers([
      ['A', '1'],
      ['B', '2'],
      ['a', '3'],
      ['C', '4'],
    ]);
    h.set('a', 'x');
    assert.deepEqual(
      [...h],
      [
        ['a', 'x'],
        ['B', '2'],
        ['C', '4'],
      ],
    );
    h.set('B', ['y', 'z']);
    assert.deepEqual(
      [...h],
      [
        ['a', 'x'],
        ['B', 'y'],
        ['B', 'z'],
        ['C', '4'],
      ],
    );
    h.set('b', []);
    assert.ok(!h.has('b'));
    assert.deepEqual(h.names(), ['a', 'c']);
    h.set('New', ['1', '2']).set('Last', 'l');
    assert.deepEqual(h.names(), ['a', 'c', 'new', 'last']);
  });

  test('delete removes every entry of a name and keeps the others in order', () => {
    const h = new Headers([
      ['X', '1'],
      ['Keep', 'k1'],
      ['x', '2'],
      ['Keep', 'k2'],
      ['X', '3'],
    ]);
    assert.equal(h.delete('x'), true);
    assert.equal(h.delete('x'), false);
    assert.deepEqual(
      [...h],
      [
        ['Keep', 'k1'],
        ['Keep', 'k2'],
      ],
    );
    h.clear();
    assert.equal(h.size, 0);
    assert.equal(h.serialize(), '');
  });

  test('constructors: another Headers (copied), pairs, an object with strings or arrays', () => {
    const a = new Headers({ Accept: 'text/html', 'Set-Cookie': ['a=1', 'b=2'] });
    assert.deepEqual(
      [...a],
      [
        ['Accept', 'text/html'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ],
    );
    const b = new Headers(a);
    b.add('X', 'y');
    assert.ok(!a.has('x'), 'a copy is independent');
    const c = a.clone();
    c.delete('accept');
    assert.ok(a.has('accept'));
    const seen: [string, string][] = [];
    a.forEach((value, name, self) => {
      assert.equal(self, a);
      seen.push([name, value]);
    });
    assert.deepEqual(seen, [...a]);
  });

  test('toJSON and toNodeHeaders', () => {
    const h = new Headers([
      ['Host', 'h'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['Set-Cookie', 's=1'],
      ['Accept', 'x'],
      ['ACCEPT', 'y'],
    ]);
    assert.deepEqual(JSON.parse(JSON.stringify(h)), {
      host: ['h'],
      cookie: ['a=1', 'b=2'],
      'set-cookie': ['s=1'],
      accept: ['x', 'y'],
    });
    assert.deepEqual(
      { ...h.toNodeHeaders() },
      { host: 'h', cookie: 'a=1; b=2', 'set-cookie': ['s=1'], accept: 'x, y' },
    );
  });

  test('names that are not tokens and values with CR, LF, NUL or controls are refused', () => {
    const h = new Headers([['Keep', 'v']]);
    const badNames = ['', 'a b', 'a:b', 'a\r\nb', 'é', 'a\u0100', 'a\x00', '(x)'];
    const badValues = [
      'a\r\nSet-Cookie: x',
      'a\nb',
      'a\rb',
      'a\x00b',
      '\x01',
      'a\x7fb',
      'a\u0100',
      '\u2028',
    ];
    for (const name of badNames) {
      assert.throws(() => h.add(name, 'v'), InvalidHeaderError, JSON.stringify(name));
      assert.throws(() => h.set(name, 'v'), InvalidHeaderError);
      assert.throws(() => new Headers([[name, 'v']]), InvalidHeaderError);
    }
    for (const value of badValues) {
      assert.throws(() => h.add('X', value), InvalidHeaderError, JSON.stringify(value));
      assert.throws(() => h.set('Keep', ['ok', value]), InvalidHeaderError);
      assert.throws(() => new Headers({ X: value }), InvalidHeaderError);
    }
    assert.deepEqual([...h], [['Keep', 'v']], 'a refused set changes nothing');
    assert.throws(() => h.add('X', 5 as unknown as string), InvalidHeaderError);
    h.add('X', 'tab\tand caf\xe9 and ~!');
    assert.equal(h.get('x'), 'tab\tand caf\xe9 and ~!');
  });

  test('isToken and isFieldValue', () => {
    assert.ok(isToken("!#$%&'*+-.^_`|~09AZaz"));
    assert.ok(!isToken(''));
    assert.ok(!isToken('a"b'));
    assert.ok(isFieldValue(''));
    assert.ok(isFieldValue(' \t\x80\xff'));
    assert.ok(!isFieldValue('\x1f'));
  });

  test('parsed headers (names lower-cased lazily) behave the same', () => {
    let head: RequestHead | null = null;
    const parser = new RequestParser({
      onRequest: (h) => {
        head = h;
      },
      onBody: () => {},
      onMessageComplete: () => {},
      onError: (e) => {
        throw e;
      },
    });
    parser.execute(
      Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nX-Y: 1\r\nACCEPT: a\r\nx-y: 2\r\n\r\n'),
    );
    const h = (head as RequestHead | null)!.headers;
    assert.deepEqual(h.names(), ['host', 'x-y', 'accept']);
    h.set('X-y', '3');
    assert.deepEqual(
      [...h],
      [
        ['Host', 'h'],
        ['X-y', '3'],
        ['ACCEPT', 'a'],
      ],
    );
    assert.equal(h.delete('accept'), true);
    assert.equal(h.get('HOST'), 'h');
  });
});

describe('parsed Headers: looked up in the source text, cut into strings when needed', () => {
  function parse(chunks: string[]): Headers {
    let head: RequestHead | null = null;
    const parser = new RequestParser({
      onRequest: (h) => {
        head = h;
      },
      onBody: () => {},
      onMessageComplete: () => {},
      onError: (e) => {
        throw e;
      },
    });
    for (const chunk of chunks) parser.execute(Buffer.from(chunk, 'latin1'));
    return (head as RequestHead | null)!.headers;
  }
  const text =
    'GET / HTTP/1.1\r\nHost: h\r\nSet-Cookie: a=1\r\nX-A^B: caret\r\nset-cookie: b=2\r\nX-V: 1\r\nx-v: 2\r\n\r\n';

  for (const [name, chunks] of [
    ['in one read', [text]],
    [
      'over several reads',
      [text.slice(0, 20), text.slice(20, 41), text.slice(41, 60), text.slice(60)],
    ],
  ] as const) {
    test(`reads before and after the strings are cut, ${name}`, () => {
      for (const cutFirst of [false, true]) {
        const h = parse([...chunks]);
        if (cutFirst) assert.equal([...h].length, 6);
        assert.equal(h.size, 6);
        assert.equal(h.get('HOST'), 'h');
        assert.equal(h.get('set-cookie'), 'a=1');
        assert.deepEqual(h.getAll('Set-Cookie'), ['a=1', 'b=2']);
        assert.equal(h.get('x-v'), '1, 2');
        assert.equal(h.get('x-a^b'), 'caret');
        assert.equal(h.get('x-a~b'), null, "'^' is not a capital '~'");
        assert.ok(h.has('X-V'));
        assert.ok(!h.has('x-w'));
        assert.equal(h.get('x-w'), null);
        assert.deepEqual(h.getAll('x-w'), []);
      }
    });
  }

  test('writes cut the strings first and keep everything else', () => {
    const h = parse([text]);
    h.add('X-New', 'n');
    assert.equal(h.size, 7);
    assert.equal(h.get('host'), 'h');
    const c = parse([text]);
    c.clear();
    assert.equal(c.size, 0);
    assert.equal(c.get('host'), null);
    const copy = new Headers(parse([text]));
    assert.equal(copy.get('x-v'), '1, 2');
  });
});

describe('status codes', () => {
  test('reason phrases', () => {
    assert.equal(STATUS_CODES[200], 'OK');
    assert.equal(STATUS_CODES[413], 'Content Too Large');
    assert.equal(STATUS_CODES[431], 'Request Header Fields Too Large');
    assert.equal(reasonPhrase(505), 'HTTP Version Not Supported');
    assert.equal(reasonPhrase(299), 'Success');
    assert.equal(reasonPhrase(499), 'Client Error');
    assert.equal(reasonPhrase(999), 'Unknown');
    assert.ok(Object.isFrozen(STATUS_CODES));
  });

  test('status lines, cached per version and code', () => {
    const ok = statusLine(200);
    assert.equal(ok.toString(), 'HTTP/1.1 200 OK\r\n');
    assert.equal(statusLine(200), ok, 'cached');
    assert.equal(statusLine(404, undefined, '1.0').toString(), 'HTTP/1.0 404 Not Found\r\n');
    assert.equal(statusLine(404).toString(), 'HTTP/1.1 404 Not Found\r\n');
    assert.equal(statusLine(200, 'Fine').toString(), 'HTTP/1.1 200 Fine\r\n');
    assert.notEqual(statusLine(200, 'Fine'), statusLine(200, 'Fine'));
    assert.equal(statusLineText(599), 'HTTP/1.1 599 Server Error\r\n');
    assert.equal(statusLineText(204, ''), 'HTTP/1.1 204 \r\n');
    for (const bad of [99, 1000, 200.5, Number.NaN]) {
      assert.throws(() => statusLine(bad), InvalidArgumentError);
      assert.throws(() => statusLineText(bad), InvalidArgumentError);
    }
    assert.throws(() => statusLine(200, 'OK\r\nX: y'), InvalidHeaderError);
    assert.throws(() => statusLineText(200, '\x00'), InvalidHeaderError);
  });

  test('statusHasNoBody', () => {
    assert.deepEqual([100, 101, 199, 200, 204, 205, 304, 404].map(statusHasNoBody), [
      true,
      true,
      true,
      false,
      true,
      false,
      true,
      false,
    ]);
  });
});
