/**
 * File (static files) through DummyRequest: headers and codes, MIME types,
 * directories (redirect, index, listing), traversal attempts, symlinks,
 * conditionals, ranges, streaming with pause/abort and descriptor hygiene.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, ProducerAlreadyRegistered } from '../src/reactor/errors.js';
import type { IPushProducer } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { DummyRequest, type DummyRequestOptions, render } from '../src/testing/dummy-request.js';
import { getChildForRequest, Resource } from '../src/web/resource.js';
import { File, type FileOptions } from '../src/web/static.js';
import { FileBodyProducer, FileTruncatedError } from '../src/web/static-producer.js';
import { parseHttpDate } from '../src/web/static-validators.js';
import { eventually, openFds, parseMultipart } from './static-helpers.js';

// ---------------------------------------------------------------------- fixture

let base: string;
let root: string;
let outside: string;
const DATA = Buffer.alloc(1000);
for (let i = 0; i < DATA.length; i++) DATA[i] = i % 251;

before(() => {
  base = mkdtempSync(join(tmpdir(), 'torsion-static-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'passwd'), 'root:x:0:0\n');
  writeFileSync(join(base, 'root-sibling.txt'), 'not served\n');
  writeFileSync(join(root, 'hello.txt'), 'Hello, world!\n');
  writeFileSync(join(root, 'data.bin'), DATA);
  writeFileSync(join(root, 'page.html'), '<p>hi</p>');
  writeFileSync(join(root, 'info.json'), '{}');
  writeFileSync(join(root, 'notes.unknownext'), 'x');
  writeFileSync(join(root, 'README'), 'readme');
  writeFileSync(join(root, 'empty.txt'), '');
  writeFileSync(join(root, 'about.html'), '<h1>about</h1>');
  writeFileSync(join(root, 'doc.md'), '# doc');
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'sub', 'index.html'), '<h1>sub index</h1>');
  mkdirSync(join(root, 'list'));
  writeFileSync(join(root, 'list', 'a&b<c>.txt'), 'abc');
  writeFileSync(join(root, 'list', 'x y.txt'), 'x'.repeat(2048));
  writeFileSync(join(root, 'list', `"q'.txt`), '');
  mkdirSync(join(root, 'list', 'zdir'));
  mkdirSync(join(root, 'list', 'adir'));
  symlinkSync(join(outside, 'passwd'), join(root, 'list', 'escape'));
  symlinkSync(join(root, 'hello.txt'), join(root, 'list', 'inside-link.txt'));
  symlinkSync(join(root, 'nowhere'), join(root, 'list', 'broken'));
  execFileSync('mkfifo', [join(root, 'list', 'fifo')]);
  mkdirSync(join(root, 'evil.example'));
  symlinkSync(join(outside, 'passwd'), join(root, 'link-out'));
  symlinkSync(outside, join(root, 'dir-link-out'));
  symlinkSync('hello.txt', join(root, 'link-in.bin'));
  symlinkSync('../root-sibling.txt', join(root, 'relative-out'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
});

after(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Traverses `resource` for `uri` as the site does, renders, and returns the request. */
async function get(
  uri: string,
  options: Omit<DummyRequestOptions, 'uri'> = {},
  resource: Resource = new File(root),
): Promise<DummyRequest> {
  const request = new DummyRequest({ uri, ...options });
  await render(getChildForRequest(resource, request), request);
  return request;
}

function header(request: DummyRequest, name: string): string | null {
  return request.responseHeaders.get(name);
}

// ---------------------------------------------------------------------- basics

describe('File: files', () => {
  test('GET a text file: 200, type, length, validators, body', async () => {
    const r = await get('/hello.txt');
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-type'), 'text/plain; charset=utf-8');
    assert.equal(header(r, 'content-length'), '14');
    assert.equal(header(r, 'accept-ranges'), 'bytes');
    assert.match(header(r, 'etag')!, /^"e-[0-9a-f]+"$/);
    assert.ok(!Number.isNaN(parseHttpDate(header(r, 'last-modified')!)));
    assert.equal(r.writtenText(), 'Hello, world!\n');
    assert.equal(r.finishCount, 1);
  });

  test('HEAD: the same headers, no body', async () => {
    const g = await get('/data.bin');
    const h = await get('/data.bin', { method: 'HEAD' });
    assert.equal(h.code, 200);
    for (const name of ['content-type', 'content-length', 'etag', 'last-modified']) {
      assert.equal(header(h, name), header(g, name), name);
    }
    assert.equal(header(h, 'content-length'), '1000');
    assert.equal(h.bytesWritten, 0);
    assert.equal(h.producer, null);
  });

  test('other methods: 405 with Allow: GET, HEAD', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await get('/hello.txt', { method });
      assert.equal(r.code, 405, method);
      assert.equal(header(r, 'allow'), 'GET, HEAD');
    }
  });

  test('MIME types, defaultType and contentTypes overrides', async () => {
    const types: [string, string][] = [
      ['/page.html', 'text/html; charset=utf-8'],
      ['/info.json', 'application/json; charset=utf-8'],
      ['/data.bin', 'application/octet-stream'],
      ['/notes.unknownext', 'application/octet-stream'],
      ['/README', 'application/octet-stream'],
      ['/doc.md', 'text/markdown; charset=utf-8'],
      // A symlink is typed by its own name, not its target's.
      ['/link-in.bin', 'application/octet-stream'],
    ];
    for (const [uri, type] of types) {
      assert.equal(header(await get(uri), 'content-type'), type, uri);
    }
    const custom = new File(root, {
      defaultType: 'text/plain',
      contentTypes: { '.MD': 'text/x-markdown', '.unknownext': 'application/x-notes' },
    });
    assert.equal(header(await get('/README', {}, custom), 'content-type'), 'text/plain');
    assert.equal(header(await get('/doc.md', {}, custom), 'content-type'), 'text/x-markdown');
    assert.equal(
      header(await get('/notes.unknownext', {}, custom), 'content-type'),
      'application/x-notes',
    );
  });

  test('empty file: 200, Content-Length 0, finished, no producer', async () => {
    const r = await get('/empty.txt');
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-length'), '0');
    assert.equal(r.bytesWritten, 0);
    assert.equal(r.finishCount, 1);
  });

  test('missing file: 404; file with a trailing slash or a child: 404', async () => {
    for (const uri of ['/nope.txt', '/hello.txt/', '/hello.txt/x', '/nope/x/y']) {
      const r = await get(uri);
      assert.equal(r.code, 404, uri);
      assert.equal(header(r, 'content-type'), 'text/html; charset=utf-8');
    }
  });

  test('a FIFO is not served (404) and never opened', async () => {
    const fds = openFds();
    assert.equal((await get('/fifo')).code, 404);
    assert.equal(openFds(), fds);
  });

  test('unreadable file or directory: 403', () => {
    // Root reads everything: the check then runs as nobody in a child process.
    const dir = mkdtempSync(join(tmpdir(), 'torsion-static-perm-'));
    try {
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'ok.txt'), 'ok', { mode: 0o644 });
      writeFileSync(join(dir, 'locked.txt'), 'no', { mode: 0o000 });
      mkdirSync(join(dir, 'lockeddir'), { mode: 0o000 });
      const fixture = fileURLToPath(new URL('./fixtures/static-codes.ts', import.meta.url));
      const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
      const out = execFileSync(
        process.execPath,
        ['--import', 'tsx', fixture, dir, '/ok.txt', '/locked.txt', '/lockeddir/', '/lockeddir/x'],
        { encoding: 'utf8', timeout: 60_000, ...asNobody },
      );
      assert.deepEqual(JSON.parse(out), [200, 403, 403, 403]);
    } finally {
      chmodSync(join(dir, 'lockeddir'), 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ignoreExts: a missing name is found with an extension', async () => {
    const file = new File(root, { ignoreExts: ['.txt', '.html'] });
    const r = await get('/about', {}, file);
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-type'), 'text/html; charset=utf-8');
    assert.equal(r.writtenText(), '<h1>about</h1>');
    assert.equal((await get('/hello', {}, file)).writtenText(), 'Hello, world!\n');
    assert.equal((await get('/missing', {}, file)).code, 404);
    assert.equal((await get('/about', {})).code, 404);
  });

  test('a File for a single file, put as a child', async () => {
    const top = new Resource();
    top.putChild('f', new File(join(root, 'hello.txt')));
    const r = await get('/f', {}, top);
    assert.equal(r.code, 200);
    assert.equal(r.writtenText(), 'Hello, world!\n');
  });

  test('the root may not exist yet; it is looked up again later', async () => {
    const later = join(base, 'later');
    const file = new File(later);
    assert.equal((await get('/x.txt', {}, file)).code, 404);
    mkdirSync(later);
    writeFileSync(join(later, 'x.txt'), 'x');
    assert.equal((await get('/x.txt', {}, file)).writtenText(), 'x');
  });

  test('bad options throw InvalidArgumentError', () => {
    const bad: FileOptions[] = [
      { indexNames: ['../x'] },
      { indexNames: ['a/b'] },
      { ignoreExts: ['html'] },
      { ignoreExts: ['./x'] },
      { contentTypes: { md: 'text/plain' } },
      { contentTypes: { '.md': 'text/plain\r\nX: y' } },
      { defaultType: '' },
      { maxRanges: 0 },
      { chunkSize: 0 },
      { etag: 'yes' as unknown as 'strong' },
    ];
    for (const options of bad) {
      assert.throws(() => new File(root, options), InvalidArgumentError, JSON.stringify(options));
    }
    assert.throws(() => new File(''), InvalidArgumentError);
    assert.throws(() => new File('a\0b'), InvalidArgumentError);
  });

  test('Last-Modified is never in the future', async () => {
    writeFileSync(join(root, 'future.txt'), 'f');
    const future = Date.now() / 1000 + 86400 * 365;
    utimesSync(join(root, 'future.txt'), future, future);
    const r = await get('/future.txt');
    assert.ok(parseHttpDate(header(r, 'last-modified')!) <= Date.now() / 1000 + 1);
  });

  test('etag option: weak and none', async () => {
    const weak = await get('/hello.txt', {}, new File(root, { etag: 'weak' }));
    assert.match(header(weak, 'etag')!, /^W\/"e-[0-9a-f]+"$/);
    const none = await get('/hello.txt', {}, new File(root, { etag: false }));
    assert.equal(header(none, 'etag'), null);
  });
});

// ---------------------------------------------------------------------- directories

describe('File: directories', () => {
  test('no trailing slash: 301 to the slash URL, query kept', async () => {
    const r = await get('/sub');
    assert.equal(r.code, 301);
    assert.equal(header(r, 'location'), '/sub/');
    const q = await get('/list?sort=name&x=%20');
    assert.equal(header(q, 'location'), '/list/?sort=name&x=%20');
    const nested = await get('/list/zdir');
    assert.equal(header(nested, 'location'), '/list/zdir/');
  });

  test('a leading // never makes a scheme-relative Location', async () => {
    const r = await get('//evil.example');
    assert.equal(r.code, 301);
    assert.equal(header(r, 'location'), '/evil.example/');
  });

  test('trailing slash with an index file: the index', async () => {
    const r = await get('/sub/');
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-type'), 'text/html; charset=utf-8');
    assert.equal(r.writtenText(), '<h1>sub index</h1>');
  });

  test('indexNames are tried in order', async () => {
    const file = new File(root, { indexNames: ['missing.html', 'hello.txt'] });
    const r = await get('/', {}, file);
    assert.equal(r.writtenText(), 'Hello, world!\n');
  });

  test('listing: sorted, directories first, escaped, encoded, sizes; no escaping symlinks', async () => {
    const r = await get('/list/');
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-type'), 'text/html; charset=utf-8');
    const html = r.writtenText();
    const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(hrefs, [
      '../',
      'adir/',
      'zdir/',
      "%22q'.txt",
      'a%26b%3Cc%3E.txt',
      'inside-link.txt',
      'x%20y.txt',
    ]);
    assert.ok(html.includes('>a&amp;b&lt;c&gt;.txt</a>'));
    assert.ok(html.includes('>&quot;q&#39;.txt</a>'));
    assert.ok(html.includes('<td title="2048 bytes">2K</td>'));
    assert.ok(html.includes('Directory listing for /list/'));
    assert.ok(!html.includes('escape'), 'the symlink out of the root is not listed');
    assert.ok(!html.includes('fifo') && !html.includes('broken'));
  });

  test('listing with followSymlinks shows the outside link', async () => {
    const r = await get('/list/', {}, new File(root, { followSymlinks: true }));
    assert.ok(r.writtenText().includes('href="escape"'));
  });

  test('root listing has no parent link', async () => {
    const r = await get('/', {}, new File(root, { indexNames: [] }));
    assert.equal(r.code, 200);
    assert.ok(!r.writtenText().includes('href="../"'));
  });

  test('allowListing false: 403', async () => {
    const r = await get('/list/', {}, new File(root, { allowListing: false }));
    assert.equal(r.code, 403);
  });

  test('HEAD on a listing: headers, no body', async () => {
    const r = await get('/list/', { method: 'HEAD' });
    assert.equal(r.code, 200);
    assert.equal(r.written.length, 0);
    assert.ok(Number(header(r, 'content-length')) > 0);
  });
});

// ---------------------------------------------------------------------- traversal

describe('File: no way out of the root', () => {
  const attempts: [string, DummyRequestOptions][] = [
    ['.. segment', { postpath: ['..', 'outside', 'passwd'] }],
    ['encoded %2e%2e', { uri: '/%2e%2e/outside/passwd' }],
    ['mixed-case %2E%2e', { uri: '/%2E%2e/root-sibling.txt' }],
    ['%2f inside a segment', { uri: '/..%2froot-sibling.txt' }],
    ['%2f absolute segment', { uri: '/%2fetc%2fpasswd' }],
    ['backslash', { postpath: ['..\\root-sibling.txt'] }],
    ['encoded backslash', { uri: '/..%5croot-sibling.txt' }],
    ['NUL', { uri: '/hello.txt%00.png' }],
    ['. segment', { postpath: ['.', 'hello.txt'] }],
    ['deep ..', { postpath: ['sub', '..', '..', 'root-sibling.txt'] }],
    ['symlink to a file outside', { uri: '/link-out' }],
    ['symlink to a dir outside', { uri: '/dir-link-out/passwd' }],
    ['relative symlink outside', { uri: '/relative-out' }],
    ['symlink outside, listed dir', { uri: '/list/escape' }],
    ['dir symlink outside with slash', { uri: '/dir-link-out/' }],
  ];
  for (const [name, options] of attempts) {
    test(name, async () => {
      const request = new DummyRequest(options);
      await render(getChildForRequest(new File(root), request), request);
      assert.equal(request.code, 404);
      assert.ok(!request.writtenText().includes('root:x'));
      assert.ok(!request.writtenText().includes('not served'));
    });
  }

  test('followSymlinks: symlinks out of the root are served; .. still is not', async () => {
    const file = new File(root, { followSymlinks: true });
    assert.equal((await get('/link-out', {}, file)).writtenText(), 'root:x:0:0\n');
    assert.equal((await get('/dir-link-out/passwd', {}, file)).code, 200);
    assert.equal((await get('/%2e%2e/outside/passwd', {}, file)).code, 404);
  });

  test('symlinks inside the root are followed', async () => {
    assert.equal((await get('/list/inside-link.txt')).writtenText(), 'Hello, world!\n');
  });

  test('a root that is itself a symlink works', async () => {
    const alias = join(base, 'alias');
    symlinkSync(root, alias);
    assert.equal((await get('/hello.txt', {}, new File(alias))).code, 200);
    assert.equal((await get('/link-out', {}, new File(alias))).code, 404);
  });

  test('traversal attempts open no descriptor', async () => {
    const fds = openFds();
    for (const [, options] of attempts) {
      const request = new DummyRequest(options);
      await render(getChildForRequest(new File(root), request), request);
    }
    assert.equal(openFds(), fds);
  });
});

// ---------------------------------------------------------------------- conditionals

describe('File: conditional requests', () => {
  async function validators(): Promise<{ etag: string; lastModified: string }> {
    const r = await get('/data.bin');
    return { etag: header(r, 'etag')!, lastModified: header(r, 'last-modified')! };
  }

  test('If-None-Match with the ETag: 304, no body, validators sent', async () => {
    const v = await validators();
    for (const inm of [v.etag, `W/${v.etag}`, `"other", ${v.etag}`, '*']) {
      const r = await get('/data.bin', { headers: { 'If-None-Match': inm } });
      assert.equal(r.code, 304, inm);
      assert.equal(r.bytesWritten, 0);
      assert.equal(header(r, 'etag'), v.etag);
      assert.equal(header(r, 'last-modified'), v.lastModified);
      assert.equal(header(r, 'content-length'), null);
      assert.equal(r.finishCount, 1);
    }
  });

  test('If-None-Match not matching: 200 even if If-Modified-Since matches', async () => {
    const v = await validators();
    const r = await get('/data.bin', {
      headers: { 'If-None-Match': '"nope"', 'If-Modified-Since': v.lastModified },
    });
    assert.equal(r.code, 200);
    assert.equal(r.writtenBytes().length, 1000);
  });

  test('If-Modified-Since', async () => {
    const v = await validators();
    assert.equal(
      (await get('/data.bin', { headers: { 'If-Modified-Since': v.lastModified } })).code,
      304,
    );
    const earlier = new Date(Date.parse(v.lastModified) - 1000).toUTCString();
    assert.equal((await get('/data.bin', { headers: { 'If-Modified-Since': earlier } })).code, 200);
    assert.equal((await get('/data.bin', { headers: { 'If-Modified-Since': 'junk' } })).code, 200);
  });

  test('HEAD with If-None-Match: 304', async () => {
    const v = await validators();
    const r = await get('/data.bin', { method: 'HEAD', headers: { 'If-None-Match': v.etag } });
    assert.equal(r.code, 304);
  });

  test('If-Match and If-Unmodified-Since: 412', async () => {
    const v = await validators();
    assert.equal((await get('/data.bin', { headers: { 'If-Match': v.etag } })).code, 200);
    assert.equal((await get('/data.bin', { headers: { 'If-Match': '"x"' } })).code, 412);
    const earlier = new Date(Date.parse(v.lastModified) - 1000).toUTCString();
    assert.equal(
      (await get('/data.bin', { headers: { 'If-Unmodified-Since': earlier } })).code,
      412,
    );
  });

  test('a changed file gets a new ETag', async () => {
    const path = join(root, 'changing.txt');
    writeFileSync(path, 'one');
    const first = header(await get('/changing.txt'), 'etag');
    writeFileSync(path, 'two!');
    const r = await get('/changing.txt', { headers: { 'If-None-Match': first! } });
    assert.equal(r.code, 200);
    assert.equal(r.writtenText(), 'two!');
  });
});

// ---------------------------------------------------------------------- ranges

describe('File: ranges', () => {
  test('single ranges: 206, Content-Range, exact bytes', async () => {
    const cases: [string, number, number][] = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, 999],
      ['bytes=-500', 500, 999],
      ['bytes=999-5000', 999, 999],
      ['bytes=0-4,3-10', 0, 10], // merged into one
    ];
    for (const [range, first, last] of cases) {
      const r = await get('/data.bin', { headers: { Range: range } });
      assert.equal(r.code, 206, range);
      assert.equal(header(r, 'content-range'), `bytes ${first}-${last}/1000`);
      assert.equal(header(r, 'content-length'), String(last - first + 1));
      assert.equal(header(r, 'content-type'), 'application/octet-stream');
      assert.deepEqual(r.writtenBytes(), DATA.subarray(first, last + 1), range);
    }
  });

  test('multiple ranges: multipart/byteranges with exact Content-Length and parts', async () => {
    const r = await get('/data.bin', { headers: { Range: 'bytes=900-, 0-9 ,500-599' } });
    assert.equal(r.code, 206);
    const body = r.writtenBytes();
    assert.equal(header(r, 'content-length'), String(body.length));
    assert.equal(header(r, 'content-range'), null);
    const parts = parseMultipart(body, header(r, 'content-type')!);
    assert.deepEqual(
      parts.map((p) => p.headers['content-range']),
      ['bytes 900-999/1000', 'bytes 0-9/1000', 'bytes 500-599/1000'],
    );
    for (const p of parts) assert.equal(p.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(parts[0]!.data, DATA.subarray(900));
    assert.deepEqual(parts[1]!.data, DATA.subarray(0, 10));
    assert.deepEqual(parts[2]!.data, DATA.subarray(500, 600));
  });

  test('multipart of a text file carries the file type per part', async () => {
    const r = await get('/hello.txt', { headers: { Range: 'bytes=0-4,7-11' } });
    const parts = parseMultipart(r.writtenBytes(), header(r, 'content-type')!);
    assert.equal(parts[0]!.headers['content-type'], 'text/plain; charset=utf-8');
    assert.deepEqual(
      parts.map((p) => p.data.toString()),
      ['Hello', 'world'],
    );
  });

  test('multipart boundaries differ between responses', async () => {
    const a = await get('/data.bin', { headers: { Range: 'bytes=0-1,5-6' } });
    const b = await get('/data.bin', { headers: { Range: 'bytes=0-1,5-6' } });
    assert.notEqual(header(a, 'content-type'), header(b, 'content-type'));
  });

  test('unsatisfiable: 416 with Content-Range bytes */size, empty body', async () => {
    for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0', 'bytes=1000-1001,2000-']) {
      const r = await get('/data.bin', { headers: { Range: range } });
      assert.equal(r.code, 416, range);
      assert.equal(header(r, 'content-range'), 'bytes */1000');
      assert.equal(header(r, 'content-length'), '0');
      assert.equal(r.bytesWritten, 0);
    }
    const empty = await get('/empty.txt', { headers: { Range: 'bytes=0-' } });
    assert.equal(empty.code, 416);
    assert.equal(header(empty, 'content-range'), 'bytes */0');
  });

  test('malformed or unusable Range: ignored, 200 with the whole file', async () => {
    for (const range of ['bytes=5-1', 'bytes=x-y', 'lines=1-2', 'bytes=0-1,,junk', 'bytes']) {
      const r = await get('/data.bin', { headers: { Range: range } });
      assert.equal(r.code, 200, range);
      assert.equal(r.writtenBytes().length, 1000);
    }
    const many = Array.from({ length: 11 }, (_, i) => `${i * 20}-${i * 20 + 1}`).join(',');
    const r = await get(
      '/data.bin',
      { headers: { Range: `bytes=${many}` } },
      new File(root, { maxRanges: 10 }),
    );
    assert.equal(r.code, 200);
  });

  test('two Range fields: ignored', async () => {
    const r = await get('/data.bin', {
      headers: [
        ['Range', 'bytes=0-1'],
        ['Range', 'bytes=2-3'],
      ],
    });
    assert.equal(r.code, 200);
  });

  test('HEAD ignores Range (RFC 9110 §14.2)', async () => {
    const r = await get('/data.bin', { method: 'HEAD', headers: { Range: 'bytes=0-9' } });
    assert.equal(r.code, 200);
    assert.equal(header(r, 'content-length'), '1000');
  });

  test('If-Range: a strong match honours the range, anything else sends all', async () => {
    const full = await get('/data.bin');
    const etag = header(full, 'etag')!;
    const lm = header(full, 'last-modified')!;
    const ranged = async (ifRange: string) =>
      (await get('/data.bin', { headers: { Range: 'bytes=0-9', 'If-Range': ifRange } })).code;
    assert.equal(await ranged(etag), 206);
    assert.equal(await ranged(lm), 206);
    assert.equal(await ranged('"stale"'), 200);
    assert.equal(await ranged(`W/${etag}`), 200);
    assert.equal(await ranged(new Date(Date.parse(lm) - 1000).toUTCString()), 200);
    const weak = new File(root, { etag: 'weak' });
    const weakTag = header(await get('/data.bin', {}, weak), 'etag')!;
    const r = await get(
      '/data.bin',
      { headers: { Range: 'bytes=0-9', 'If-Range': weakTag } },
      weak,
    );
    assert.equal(r.code, 200, 'a weak ETag never validates If-Range');
  });
});

// ---------------------------------------------------------------------- streaming

/** A DummyRequest whose client stops reading (pauses the producer) after `limit` bytes. */
class SlowRequest extends DummyRequest {
  limit = Number.POSITIVE_INFINITY;
  onWrite: (() => void) | null = null;
  override write(data: Uint8Array | string): void {
    super.write(data);
    if (this.bytesWritten >= this.limit) (this.producer as IPushProducer | null)?.pauseProducing();
    this.onWrite?.();
  }
}

describe('File: streaming', () => {
  let big: string;
  before(() => {
    big = join(root, 'big.bin');
    const b = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(i, i);
    writeFileSync(big, b);
  });

  test('a push producer is registered; a paused producer reads no further', async () => {
    const request = new SlowRequest({ uri: '/big.bin' });
    request.limit = 3 * 1024;
    const file = new File(root, { chunkSize: 1024 });
    const done = render(getChildForRequest(file, request), request);
    await eventually(() => request.bytesWritten >= 3 * 1024, 'the first chunks');
    assert.equal(request.streaming, true);
    const producer = request.producer as FileBodyProducer;
    assert.ok(producer instanceof FileBodyProducer);
    // Paused: give the loop several turns; nothing more is written.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(request.bytesWritten, 3 * 1024);
    request.limit = Number.POSITIVE_INFINITY;
    producer.resumeProducing();
    await done;
    assert.equal(request.bytesWritten, 1024 * 1024);
    assert.deepEqual(request.writtenBytes(), readFileSync(big));
    assert.equal(request.producer, null, 'unregistered at the end');
  });

  test('client abort while paused: descriptor closed at once, request not finished', async () => {
    const fds = openFds();
    const request = new SlowRequest({ uri: '/big.bin' });
    request.limit = 64 * 1024;
    const done = render(getChildForRequest(new File(root), request), request);
    await eventually(() => request.bytesWritten >= 64 * 1024, 'the first chunk');
    assert.equal(openFds(), fds + 1, 'the file is open while sending');
    request.connectionLost();
    assert.equal(openFds(), fds);
    await assert.rejects(done);
    assert.equal(request.finished, false);
  });

  test('client abort with a read in flight: closed when the read returns', async () => {
    const fds = openFds();
    const request = new SlowRequest({ uri: '/big.bin' });
    let n = 0;
    request.onWrite = () => {
      // After the 3rd chunk the producer issues the next read as soon as
      // write returns: abort right then, with that read in flight.
      if (++n === 3) queueMicrotask(() => request.connectionLost());
    };
    const done = render(getChildForRequest(new File(root, { chunkSize: 4096 }), request), request);
    await assert.rejects(done);
    await eventually(() => openFds() === fds, 'the descriptor to close');
    const written = request.bytesWritten;
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    assert.equal(request.bytesWritten, written, 'nothing written after the abort');
  });

  test('client gone before the file is opened: nothing leaks', async () => {
    const fds = openFds();
    const request = new DummyRequest({ uri: '/big.bin' });
    const done = render(getChildForRequest(new File(root), request), request);
    request.connectionLost();
    await assert.rejects(done);
    await eventually(() => openFds() === fds, 'no descriptor left');
    assert.equal(request.producer, null);
  });

  test('a file that shrinks mid-body: transfer fails, not finished, descriptor closed', async () => {
    const path = join(root, 'shrinking.bin');
    writeFileSync(path, Buffer.alloc(256 * 1024, 1));
    const fds = openFds();
    const request = new SlowRequest({ uri: '/shrinking.bin' });
    request.limit = 8192;
    const file = new File(root, { chunkSize: 8192 });
    const logged: LogEvent[] = [];
    const remove = addObserver((e) => logged.push(e));
    after(remove);
    void render(getChildForRequest(file, request), request).catch(() => {});
    await eventually(() => request.bytesWritten >= 8192, 'the first chunk');
    truncateSync(path, 10000);
    const producer = request.producer as FileBodyProducer;
    request.limit = Number.POSITIVE_INFINITY;
    producer.resumeProducing();
    await eventually(() => producer.ended, 'the transfer to fail');
    assert.equal(openFds(), fds);
    assert.equal(request.finished, false);
    assert.equal(request.bytesWritten, 10000);
    remove();
    assert.equal(logged.length, 1);
    assert.ok(logged[0]!.failure!.value instanceof FileTruncatedError);
  });

  test('FileBodyProducer: heads and spans in order; a failed registration closes the file', async () => {
    const fd = openSync(join(root, 'data.bin'), 'r');
    const request = new DummyRequest({ uri: '/x' });
    const producer = new FileBodyProducer(
      fd,
      request,
      [
        { head: Buffer.from('<'), offset: 10, length: 3 },
        { head: null, offset: 0, length: 2 },
        { head: Buffer.from('>'), offset: 0, length: 0 },
      ],
      { chunkSize: 2 },
    );
    producer.start();
    await request.notifyFinish();
    assert.deepEqual(
      request.writtenBytes(),
      Buffer.concat([
        Buffer.from('<'),
        DATA.subarray(10, 13),
        DATA.subarray(0, 2),
        Buffer.from('>'),
      ]),
    );
    assert.equal(producer.bytesSent, 5);
    assert.throws(() => fstatSync(fd), /EBADF/);

    const fds = openFds();
    const busy = new DummyRequest({ uri: '/x' });
    busy.registerProducer({ pauseProducing() {}, resumeProducing() {}, stopProducing() {} }, true);
    const fd2 = openSync(join(root, 'data.bin'), 'r');
    assert.throws(() => new FileBodyProducer(fd2, busy, []).start(), ProducerAlreadyRegistered);
    assert.equal(openFds(), fds);
  });

  test('many GETs in a row leave no descriptor open', async () => {
    const fds = openFds();
    for (let i = 0; i < 50; i++) {
      await get('/data.bin', { headers: i % 2 ? { Range: 'bytes=0-1,10-20' } : {} });
      await get('/data.bin', { method: 'HEAD' });
      await get('/data.bin', { headers: { 'If-None-Match': '*' } });
    }
    assert.equal(openFds(), fds);
  });
});
