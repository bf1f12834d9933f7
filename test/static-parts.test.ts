/**
 * The pure pieces of static file serving: Range parsing and multipart
 * layout, validators and preconditions, HTTP dates, path segment safety,
 * listing HTML.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Headers } from '../src/web/http/headers.js';
import { formatFileSize, renderListing } from '../src/web/static-listing.js';
import { isSafeSegment, isWithin, slashLocation } from '../src/web/static-paths.js';
import {
  coalesceRanges,
  parseRange,
  planMultipart,
  RANGE_IGNORED,
  RANGE_SATISFIABLE,
  RANGE_UNSATISFIABLE,
} from '../src/web/static-ranges.js';
import {
  ANY_ETAG,
  evaluatePreconditions,
  fileETag,
  formatETag,
  formatHttpDate,
  ifRangeMatches,
  NOT_MODIFIED,
  PRECONDITION_FAILED,
  PRECONDITION_PASSED,
  parseETagList,
  parseHttpDate,
  type Validators,
} from '../src/web/static-validators.js';

// ---------------------------------------------------------------------- ranges

describe('parseRange', () => {
  const S = RANGE_SATISFIABLE;
  const U = RANGE_UNSATISFIABLE;
  const I = RANGE_IGNORED;
  // [header, size, status, ranges as [first, last]]
  const table: [string, number, number, [number, number][]][] = [
    ['bytes=0-99', 1000, S, [[0, 99]]],
    ['bytes=100-', 1000, S, [[100, 999]]],
    ['bytes=-500', 1000, S, [[500, 999]]],
    ['bytes=-5000', 1000, S, [[0, 999]]],
    ['bytes=0-0', 1000, S, [[0, 0]]],
    ['bytes=999-999', 1000, S, [[999, 999]]],
    ['bytes=990-2000', 1000, S, [[990, 999]]],
    ['bytes=0-99999999999999999999999', 1000, S, [[0, 999]]],
    ['Bytes=0-1', 10, S, [[0, 1]]],
    [' bytes =0-1', 10, S, [[0, 1]]],
    [
      'bytes=0-1, 5-6',
      10,
      S,
      [
        [0, 1],
        [5, 6],
      ],
    ],
    [
      'bytes=5-6,0-1',
      10,
      S,
      [
        [5, 6],
        [0, 1],
      ],
    ], // no overlap: client's order kept
    [
      'bytes=0-1,,\t, 5-6 ,',
      10,
      S,
      [
        [0, 1],
        [5, 6],
      ],
    ], // empty list elements
    ['bytes=0-4,3-8', 10, S, [[0, 8]]], // overlap: merged
    ['bytes=5-9,0-4', 10, S, [[0, 9]]], // adjacent: merged, sorted
    ['bytes=0-,0-,0-,0-', 10, S, [[0, 9]]], // amplification attempt
    [
      'bytes=8-9,0-1,1-2',
      10,
      S,
      [
        [0, 2],
        [8, 9],
      ],
    ],
    [
      'bytes=-3,0-1',
      10,
      S,
      [
        [7, 9],
        [0, 1],
      ],
    ],
    ['bytes=20-30,0-1', 10, S, [[0, 1]]], // unsatisfiable spec dropped
    ['bytes=10-', 10, U, []],
    ['bytes=10-20', 10, U, []],
    ['bytes=-0', 10, U, []],
    ['bytes=0-', 0, U, []],
    ['bytes=-5', 0, U, []],
    ['bytes=99999999999999999999-', 10, U, []],
    ['bytes=5-4', 10, I, []],
    ['bytes=a-b', 10, I, []],
    ['bytes=1', 10, I, []],
    ['bytes=-', 10, I, []],
    ['bytes= 0 - 1', 10, I, []],
    ['bytes=0-1x', 10, I, []],
    ['bytes=+1-2', 10, I, []],
    ['bytes=0x1-2', 10, I, []],
    ['bytes=', 10, I, []],
    ['bytes=,', 10, I, []],
    ['bytes', 10, I, []],
    ['items=0-1', 10, I, []],
    ['', 10, I, []],
    ['bytes=0-1,x', 10, I, []], // one bad spec spoils the set
  ];
  for (const [header, size, status, ranges] of table) {
    test(`${JSON.stringify(header)} of ${size}`, () => {
      const r = parseRange(header, size);
      assert.equal(r.status, status, r.reason);
      assert.deepEqual(
        r.ranges.map((x) => [x.first, x.last]),
        ranges,
      );
      if (status === RANGE_IGNORED) assert.notEqual(r.reason, '');
    });
  }

  test('more specs than maxRanges: ignored; at the limit: used', () => {
    const specs = Array.from({ length: 11 }, (_, i) => `${i * 10}-${i * 10 + 1}`);
    assert.equal(parseRange(`bytes=${specs.join(',')}`, 1000, 10).status, RANGE_IGNORED);
    const r = parseRange(`bytes=${specs.slice(0, 10).join(',')}`, 1000, 10);
    assert.equal(r.status, RANGE_SATISFIABLE);
    assert.equal(r.ranges.length, 10);
  });

  test('a huge header of tiny overlapping ranges collapses to one range', () => {
    const header = `bytes=${Array.from({ length: 100 }, (_, i) => `${i}-${i + 1}`).join(',')}`;
    const r = parseRange(header, 1000);
    assert.deepEqual(r.ranges, [{ first: 0, last: 100 }]);
  });

  test('bad size is a programming error', () => {
    assert.throws(() => parseRange('bytes=0-1', -1), RangeError);
    assert.throws(() => parseRange('bytes=0-1', 1.5), RangeError);
  });

  test('coalesceRanges keeps order without overlaps, returns the same array', () => {
    const rs = [
      { first: 5, last: 6 },
      { first: 0, last: 1 },
    ];
    assert.equal(coalesceRanges(rs), rs);
  });
});

describe('planMultipart', () => {
  test('layout and exact length', () => {
    const plan = planMultipart(
      [
        { first: 0, last: 1 },
        { first: 5, last: 9 },
      ],
      10,
      'text/plain; charset=utf-8',
      'B0UND',
    );
    assert.equal(plan.contentType, 'multipart/byteranges; boundary=B0UND');
    assert.equal(
      plan.parts[0]!.head.toString(),
      '--B0UND\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/10\r\n\r\n',
    );
    assert.equal(
      plan.parts[1]!.head.toString(),
      '\r\n--B0UND\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 5-9/10\r\n\r\n',
    );
    assert.equal(plan.trailer.toString(), '\r\n--B0UND--\r\n');
    const body = Buffer.concat([
      plan.parts[0]!.head,
      Buffer.from('01'),
      plan.parts[1]!.head,
      Buffer.from('56789'),
      plan.trailer,
    ]);
    assert.equal(plan.length, body.length);
  });
});

// ---------------------------------------------------------------------- validators

describe('HTTP dates', () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
  test('the three formats', () => {
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t);
  });
  test('RFC 850 two-digit years: more than 50 years ahead means the past century', () => {
    const now = Date.UTC(2024, 0, 1);
    assert.equal(parseHttpDate('Monday, 01-Jan-74 00:00:00 GMT', now), Date.UTC(2074, 0, 1) / 1000);
    assert.equal(parseHttpDate('Monday, 01-Jan-75 00:00:00 GMT', now), Date.UTC(1975, 0, 1) / 1000);
  });
  test('invalid dates are NaN', () => {
    for (const bad of [
      '',
      'yesterday',
      '06 Nov 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 08:49:37',
      'Sun, 06 Nov 1994 08:49:37 UTC',
      'Sun, 6 Nov 1994 08:49:37 GMT',
      'Sun, 31 Feb 1994 08:49:37 GMT',
      'Sun, 06 Foo 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 24:00:00 GMT',
      'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT',
      '1994-11-06T08:49:37Z',
    ]) {
      assert.ok(Number.isNaN(parseHttpDate(bad)), bad);
    }
  });
  test('formatHttpDate round-trips', () => {
    assert.equal(formatHttpDate(t * 1000), 'Sun, 06 Nov 1994 08:49:37 GMT');
    assert.equal(parseHttpDate(formatHttpDate(t * 1000)), t);
  });
});

describe('entity tags', () => {
  test('fileETag and formatETag', () => {
    const strong = fileETag(255n, 4096n, false);
    assert.equal(formatETag(strong), '"ff-1000"');
    assert.equal(formatETag(fileETag(255, 4096n, true)), 'W/"ff-1000"');
  });
  test('parseETagList', () => {
    assert.equal(parseETagList('*'), ANY_ETAG);
    assert.equal(parseETagList(' * '), ANY_ETAG);
    assert.deepEqual(parseETagList('"a", W/"b",,"c,d"'), [
      { weak: false, opaque: '"a"' },
      { weak: true, opaque: '"b"' },
      { weak: false, opaque: '"c,d"' },
    ]);
    for (const bad of ['a', '"a', '"a" "b"', 'W/a', '*, "a"', '', ' , ', 'w/"a"']) {
      assert.equal(parseETagList(bad), null, bad);
    }
  });
});

describe('evaluatePreconditions', () => {
  const v: Validators = { etag: { weak: false, opaque: '"x"' }, lastModified: 1_000_000 };
  const lm = formatHttpDate(v.lastModified * 1000);
  const before = formatHttpDate((v.lastModified - 1) * 1000);
  const after = formatHttpDate((v.lastModified + 1) * 1000);
  const cases: [Record<string, string | string[]>, number][] = [
    [{}, PRECONDITION_PASSED],
    [{ 'If-None-Match': '"x"' }, NOT_MODIFIED],
    [{ 'If-None-Match': 'W/"x"' }, NOT_MODIFIED], // weak comparison
    [{ 'If-None-Match': '"a", "x"' }, NOT_MODIFIED],
    [{ 'If-None-Match': ['"a"', '"x"'] }, NOT_MODIFIED], // several field lines
    [{ 'If-None-Match': '*' }, NOT_MODIFIED],
    [{ 'If-None-Match': '"y"' }, PRECONDITION_PASSED],
    [{ 'If-None-Match': 'garbage' }, PRECONDITION_PASSED],
    [{ 'If-Modified-Since': lm }, NOT_MODIFIED],
    [{ 'If-Modified-Since': after }, NOT_MODIFIED],
    [{ 'If-Modified-Since': before }, PRECONDITION_PASSED],
    [{ 'If-Modified-Since': 'not a date' }, PRECONDITION_PASSED],
    [{ 'If-Modified-Since': [lm, lm] }, PRECONDITION_PASSED],
    // If-None-Match present: If-Modified-Since is not looked at (RFC 9110 §13.1.3).
    [{ 'If-None-Match': '"y"', 'If-Modified-Since': lm }, PRECONDITION_PASSED],
    [{ 'If-Match': '"x"' }, PRECONDITION_PASSED],
    [{ 'If-Match': '*' }, PRECONDITION_PASSED],
    [{ 'If-Match': 'W/"x"' }, PRECONDITION_FAILED], // strong comparison
    [{ 'If-Match': '"y"' }, PRECONDITION_FAILED],
    [{ 'If-Match': 'junk' }, PRECONDITION_FAILED],
    [{ 'If-Unmodified-Since': lm }, PRECONDITION_PASSED],
    [{ 'If-Unmodified-Since': before }, PRECONDITION_FAILED],
    [{ 'If-Unmodified-Since': 'bad' }, PRECONDITION_PASSED],
    // If-Match present: If-Unmodified-Since is not looked at.
    [{ 'If-Match': '"x"', 'If-Unmodified-Since': before }, PRECONDITION_PASSED],
    // If-Match is checked before If-None-Match.
    [{ 'If-Match': '"y"', 'If-None-Match': '"x"' }, PRECONDITION_FAILED],
  ];
  for (const [fields, expected] of cases) {
    test(`${JSON.stringify(fields)} → ${expected}`, () => {
      const h = new Headers();
      for (const [name, value] of Object.entries(fields)) {
        for (const one of Array.isArray(value) ? value : [value]) h.add(name, one);
      }
      assert.equal(evaluatePreconditions(h, v), expected);
    });
  }
  test('without an ETag, If-None-Match never matches but * does', () => {
    const noTag: Validators = { etag: null, lastModified: 5 };
    assert.equal(
      evaluatePreconditions(new Headers({ 'If-None-Match': '"x"' }), noTag),
      PRECONDITION_PASSED,
    );
    assert.equal(evaluatePreconditions(new Headers({ 'If-None-Match': '*' }), noTag), NOT_MODIFIED);
    assert.equal(
      evaluatePreconditions(new Headers({ 'If-Match': '"x"' }), noTag),
      PRECONDITION_FAILED,
    );
  });
  test('ifRangeMatches', () => {
    const yes = (value: string | null, vv: Validators = v) =>
      ifRangeMatches(new Headers(value === null ? {} : { 'If-Range': value }), vv);
    assert.equal(yes(null), true);
    assert.equal(yes('"x"'), true);
    assert.equal(yes('"y"'), false);
    assert.equal(yes('W/"x"'), false);
    assert.equal(yes(lm), true);
    assert.equal(yes(after), false);
    assert.equal(yes(before), false);
    assert.equal(yes('junk'), false);
    assert.equal(yes('"x", "y"'), false);
    assert.equal(yes('"x"', { etag: { weak: true, opaque: '"x"' }, lastModified: 1 }), false);
  });
});

// ---------------------------------------------------------------------- paths

describe('path safety', () => {
  test('isSafeSegment', () => {
    for (const ok of ['a', 'a.txt', '...', '.hidden', 'a b', '%2e%2e', 'é', 'a..b']) {
      assert.equal(isSafeSegment(ok), true, ok);
    }
    for (const bad of ['', '.', '..', 'a/b', '/', '../x', 'a\\b', '..\\x', 'a\0b', '\0']) {
      assert.equal(isSafeSegment(bad), false, JSON.stringify(bad));
    }
  });
  test('isWithin', () => {
    assert.equal(isWithin('/srv/www', '/srv/www'), true);
    assert.equal(isWithin('/srv/www/a', '/srv/www'), true);
    assert.equal(isWithin('/srv/www2', '/srv/www'), false);
    assert.equal(isWithin('/srv', '/srv/www'), false);
    assert.equal(isWithin('/etc/passwd', '/'), true);
  });
  test('slashLocation collapses leading slashes (no scheme-relative redirect)', () => {
    assert.equal(slashLocation('/a/b', ''), '/a/b/');
    assert.equal(slashLocation('/a', '?x=1'), '/a/?x=1');
    assert.equal(slashLocation('//evil.example', ''), '/evil.example/');
    assert.equal(slashLocation('/\\evil.example', ''), '/evil.example/');
    assert.equal(slashLocation('///', ''), '/');
  });
});

// ---------------------------------------------------------------------- listing

describe('listing page', () => {
  test('formatFileSize', () => {
    assert.equal(formatFileSize(0), '0B');
    assert.equal(formatFileSize(1023), '1023B');
    assert.equal(formatFileSize(1024), '1K');
    assert.equal(formatFileSize(5 * 1024 ** 2 + 1), '5M');
    assert.equal(formatFileSize(3 * 1024 ** 3), '3G');
  });
  test('names are escaped in text and percent-encoded in links; title escaped', () => {
    const html = renderListing(
      '/d%3Cir%3E/',
      [
        { name: '<b>&"\'.txt', isDirectory: false, size: 3, type: 'text/plain' },
        { name: 'javascript:alert(1)', isDirectory: false, size: 1, type: 'x' },
        { name: 'a?b#c%d', isDirectory: true, size: 0, type: '' },
      ],
      true,
    ).toString();
    assert.match(html, /<title>Directory listing for \/d&lt;ir&gt;\/<\/title>/);
    assert.ok(html.includes('href="%3Cb%3E%26%22\'.txt">&lt;b&gt;&amp;&quot;&#39;.txt</a>'));
    assert.ok(html.includes('href="javascript%3Aalert(1)"'));
    assert.ok(html.includes('href="a%3Fb%23c%25d/">a?b#c%d/</a>'));
    assert.ok(html.includes('href="../"'));
    assert.ok(!html.includes('<b>'));
  });
});
