import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import { DummyRequest, render } from '../src/testing/dummy-request.js';
import { errorPageBody, escapeHTML, HTTPException } from '../src/web/errors.js';
import { HTTPError } from '../src/web/http/errors.js';
import type { IRequest, IResource, RenderResult } from '../src/web/resource.js';
import {
  Data,
  ErrorPage,
  ForbiddenResource,
  getChildForRequest,
  NOT_DONE_YET,
  NoResource,
  Redirect,
  Resource,
} from '../src/web/resource.js';

/** A leaf or node that answers GET with its name, and records what the traversal saw. */
class Named extends Resource {
  seen: { prepath: string[]; postpath: string[] } | null = null;
  constructor(
    readonly name: string,
    leaf = false,
  ) {
    super();
    this.isLeaf = leaf;
  }
  render_GET(request: IRequest): RenderResult {
    this.seen = { prepath: [...request.prepath], postpath: [...request.postpath] };
    return this.name;
  }
}

/** Walks `root` for `uri` as the site does and renders what it reaches. */
async function get(root: IResource, uri: string, method = 'GET'): Promise<DummyRequest> {
  const request = new DummyRequest({ uri, method });
  await render(getChildForRequest(root, request), request);
  return request;
}

/** Renders `resource` itself (no traversal). */
async function direct(resource: IResource, method = 'GET'): Promise<DummyRequest> {
  const request = new DummyRequest({ method });
  await render(resource, request);
  return request;
}

describe('getChildForRequest', () => {
  test('moves each segment from postpath to prepath until a leaf (Twisted semantics)', () => {
    const root = new Resource();
    const a = new Resource();
    const leaf = new Named('leaf', true);
    root.putChild('a', a);
    a.putChild('b', leaf);
    const request = new DummyRequest(['a', 'b', 'c', 'd']);
    assert.equal(getChildForRequest(root, request), leaf);
    assert.deepEqual(request.prepath, ['a', 'b']);
    assert.deepEqual(request.postpath, ['c', 'd']);
  });

  test('a leaf root consumes nothing; an empty postpath renders the root', () => {
    const leaf = new Named('root', true);
    const request = new DummyRequest(['x', 'y']);
    assert.equal(getChildForRequest(leaf, request), leaf);
    assert.deepEqual(request.prepath, []);
    assert.deepEqual(request.postpath, ['x', 'y']);
    const root = new Resource();
    const empty = new DummyRequest([]);
    assert.equal(getChildForRequest(root, empty), root);
  });

  test("'/' is the root's '' child, '/dir/' the dir's '' child", async () => {
    const root = new Resource();
    const index = new Named('index');
    const dir = new Named('dir');
    const dirIndex = new Named('dir-index');
    root.putChild('', index);
    root.putChild('dir', dir);
    dir.putChild('', dirIndex);
    let request = await get(root, '/');
    assert.equal(request.writtenText(), 'index');
    assert.deepEqual(index.seen, { prepath: [''], postpath: [] });
    request = await get(root, '/dir');
    assert.equal(request.writtenText(), 'dir');
    assert.deepEqual(dir.seen, { prepath: ['dir'], postpath: [] });
    request = await get(root, '/dir/');
    assert.equal(request.writtenText(), 'dir-index');
    assert.deepEqual(dirIndex.seen, { prepath: ['dir', ''], postpath: [] });
  });

  test('a missing child is a 404 page, and so is everything below it', async () => {
    const root = new Resource();
    root.putChild('a', new Named('a'));
    for (const uri of ['/', '/nope', '/nope/deeper/still', '/a/b']) {
      const request = await get(root, uri);
      assert.equal(request.code, 404, uri);
      assert.match(request.writtenText(), /No Such Resource/);
      assert.equal(request.responseHeaders.get('content-type'), 'text/html; charset=utf-8');
    }
  });

  test('segments are decoded; the query is not part of the path', async () => {
    const root = new Resource();
    const spaced = new Named('spaced', true);
    root.putChild('a b', spaced);
    const request = await get(root, '/a%20b/c%2Fd?x=1');
    assert.equal(request.writtenText(), 'spaced');
    assert.deepEqual(spaced.seen, { prepath: ['a b'], postpath: ['c/d'] });
  });

  test('getChild makes dynamic children; a registered child wins', async () => {
    class Users extends Resource {
      override getChild(name: string): IResource {
        return name === '' ? new Named('all users') : new Named(`user ${name}`, true);
      }
    }
    const users = new Users();
    users.putChild('me', new Named('myself'));
    const root = new Resource();
    root.putChild('users', users);
    assert.equal((await get(root, '/users/42/x')).writtenText(), 'user 42');
    assert.equal((await get(root, '/users/me')).writtenText(), 'myself');
    assert.equal((await get(root, '/users/')).writtenText(), 'all users');
    assert.equal(users.children.get('me') instanceof Named, true);
  });

  test('a getChild that replaces the postpath is followed (postpath read each step)', () => {
    const end = new Named('end', true);
    class Rewrite extends Resource {
      override getChild(_name: string, request: IRequest): IResource {
        request.postpath = ['z'];
        const r = new Resource();
        r.putChild('z', end);
        return r;
      }
    }
    const request = new DummyRequest(['q', 'r', 's']);
    assert.equal(getChildForRequest(new Rewrite(), request), end);
    assert.deepEqual(request.prepath, ['q', 'z']);
    assert.deepEqual(request.postpath, []);
  });
});

describe('Resource.putChild', () => {
  test('rejects names with a slash and non-resources', () => {
    const root = new Resource();
    assert.throws(() => root.putChild('a/b', new Resource()), InvalidArgumentError);
    assert.throws(() => root.putChild('a', {} as IResource), InvalidArgumentError);
    assert.throws(
      () => root.putChild(42 as unknown as string, new Resource()),
      InvalidArgumentError,
    );
  });

  test('replaces a child of the same name', () => {
    const root = new Resource();
    const one = new Resource();
    const two = new Resource();
    root.putChild('x', one);
    root.putChild('x', two);
    assert.equal(root.getChildWithDefault('x', new DummyRequest()), two);
    assert.equal(root.children.size, 1);
  });
});

describe('Resource.render', () => {
  class Thing extends Resource {
    override isLeaf = true;
    render_GET(): RenderResult {
      return 'got';
    }
    render_POST(request: IRequest): RenderResult {
      return `posted ${request.method}`;
    }
    render_PUT(): RenderResult {
      return new Uint8Array([0x70, 0x75, 0x74]);
    }
  }

  test('dispatches to render_<METHOD>', async () => {
    const thing = new Thing();
    assert.equal((await get(thing, '/')).writtenText(), 'got');
    assert.equal((await get(thing, '/', 'POST')).writtenText(), 'posted POST');
    const put = await get(thing, '/', 'PUT');
    assert.equal(put.writtenText(), 'put');
    assert.equal(put.code, 200);
    assert.equal(put.responseHeaders.get('content-length'), '3');
  });

  test('HEAD falls back to render_GET: the headers of GET, no body', async () => {
    let calls = 0;
    class Counted extends Resource {
      render_GET(request: IRequest): RenderResult {
        calls++;
        request.setHeader('Content-Type', 'text/plain');
        return 'twelve bytes';
      }
    }
    const head = await direct(new Counted(), 'HEAD');
    assert.equal(calls, 1);
    assert.equal(head.code, 200);
    assert.deepEqual(head.written, []);
    assert.equal(head.bytesWritten, 12);
    assert.equal(head.responseHeaders.get('content-length'), '12');
    assert.equal(head.responseHeaders.get('content-type'), 'text/plain');
  });

  test('an explicit render_HEAD wins over the fallback', async () => {
    class Both extends Resource {
      render_GET(): RenderResult {
        return 'get';
      }
      render_HEAD(request: IRequest): RenderResult {
        request.setHeader('X-Head', 'yes');
        return '';
      }
    }
    const head = await direct(new Both(), 'HEAD');
    assert.equal(head.responseHeaders.get('x-head'), 'yes');
  });

  test('a missing method answers 405 with Allow (GET implies HEAD)', async () => {
    const request = await get(new Thing(), '/', 'DELETE');
    assert.equal(request.code, 405);
    const allow = request.responseHeaders.get('allow')!.split(', ');
    assert.deepEqual([...allow].sort(), ['GET', 'HEAD', 'POST', 'PUT']);
    assert.match(request.writtenText(), /Method Not Allowed/);
    assert.match(request.writtenText(), /DELETE/);
    assert.deepEqual([...new Thing().allowedMethods].sort(), ['GET', 'HEAD', 'POST', 'PUT']);
  });

  test('without render_GET, HEAD is not allowed either; no methods → empty Allow', async () => {
    class PostOnly extends Resource {
      render_POST(): RenderResult {
        return 'ok';
      }
    }
    const head = await direct(new PostOnly(), 'HEAD');
    assert.equal(head.code, 405);
    assert.equal(head.responseHeaders.get('allow'), 'POST');
    const bare = await get(new Resource(), '/', 'GET');
    // A bare Resource has no children: '/' walks to its '' child, a 404.
    assert.equal(bare.code, 404);
    const none = await direct(new Resource());
    assert.equal(none.code, 405);
    assert.equal(none.responseHeaders.get('allow'), '');
  });

  test('only uppercase token methods are looked up', async () => {
    class Tricky extends Resource {
      override isLeaf = true;
      render_GET(): RenderResult {
        return 'ok';
      }
      // Never reachable from the wire: the method would have to be 'get'.
      render_get(): RenderResult {
        return 'lowercase';
      }
    }
    for (const method of ['get', 'constructor', '__proto__', 'Get', 'toString']) {
      const request = await get(new Tricky(), '/', method);
      assert.equal(request.code, 405, method);
    }
    assert.deepEqual([...new Tricky().allowedMethods].sort(), ['GET', 'HEAD']);
  });

  test('methods inherited from a base class and instance fields count', async () => {
    class Base extends Resource {
      render_GET(): RenderResult {
        return 'base';
      }
    }
    class Derived extends Base {
      render_PATCH = (): RenderResult => 'patched';
      'render_M-SEARCH'(): RenderResult {
        return 'found';
      }
    }
    const d = new Derived();
    assert.equal((await direct(d, 'GET')).writtenText(), 'base');
    const r = new DummyRequest({ method: 'PATCH' });
    await render(d, r);
    assert.equal(r.writtenText(), 'patched');
    const m = new DummyRequest({ method: 'M-SEARCH' });
    await render(d, m);
    assert.equal(m.writtenText(), 'found');
    assert.deepEqual([...d.allowedMethods].sort(), ['GET', 'HEAD', 'M-SEARCH', 'PATCH']);
  });

  test('render may return a Promise, a Deferred, or NOT_DONE_YET', async () => {
    class Later extends Resource {
      override isLeaf = true;
      async render_GET(): Promise<string> {
        await new Promise((r) => setImmediate(r));
        return 'later';
      }
      render_POST(request: IRequest): RenderResult {
        setImmediate(() => {
          request.write('by ');
          request.write('hand');
          request.finish();
        });
        return NOT_DONE_YET;
      }
    }
    assert.equal((await get(new Later(), '/')).writtenText(), 'later');
    const post = await get(new Later(), '/', 'POST');
    assert.equal(post.writtenText(), 'by hand');
    assert.equal(post.finishCount, 1);
    assert.equal(post.responseHeaders.get('content-length'), null);
  });

  test('HTTPException thrown or rejected answers its status, headers and body', async () => {
    class Guarded extends Resource {
      render_GET(request: IRequest): RenderResult {
        request.setHeader('X-Before', '1');
        throw new HTTPException(403, 'members <only>', { headers: { 'X-Reason': 'club' } });
      }
      async render_POST(): Promise<string> {
        throw new HTTPException(409, undefined, {
          body: '{"error":"conflict"}',
          contentType: 'application/json',
        });
      }
    }
    const denied = await direct(new Guarded());
    assert.equal(denied.code, 403);
    assert.equal(denied.responseHeaders.get('x-reason'), 'club');
    assert.equal(denied.responseHeaders.get('x-before'), null);
    assert.match(denied.writtenText(), /members &lt;only&gt;/);
    assert.doesNotMatch(denied.writtenText(), /<only>/);
    assert.equal(denied.failures.length, 0);
    const conflict = await direct(new Guarded(), 'POST');
    assert.equal(conflict.code, 409);
    assert.equal(conflict.responseHeaders.get('content-type'), 'application/json');
    assert.equal(conflict.writtenText(), '{"error":"conflict"}');
    assert.equal(conflict.responseHeaders.get('content-length'), '20');
  });

  test('another error is a processing failure (500) and render rejects', async () => {
    class Broken extends Resource {
      render_GET(): RenderResult {
        throw new TypeError('boom');
      }
    }
    const request = new DummyRequest();
    await assert.rejects(render(new Broken(), request), TypeError);
    assert.equal(request.code, 500);
    assert.equal(request.failures.length, 1);
    assert.equal(request.failures[0]!.value.message, 'boom');
    await assert.rejects(request.notifyFinish().asPromise(), TypeError);
  });
});

describe('HTTPException', () => {
  test('validates its status; from() wraps HTTPError and ignores other errors', () => {
    assert.throws(() => new HTTPException(200), InvalidArgumentError);
    assert.throws(() => new HTTPException(600), InvalidArgumentError);
    assert.throws(() => new HTTPException(404.5), InvalidArgumentError);
    const e = new HTTPException(404);
    assert.equal(e.message, 'Not Found');
    assert.equal(e.code, 'TORSION_ERR_HTTP_EXCEPTION');
    assert.ok(e instanceof HTTPError);
    assert.equal(HTTPException.from(e), e);
    const tooBig = new HTTPError(413, 'too big', 'TORSION_ERR_HTTP_BODY_TOO_LARGE');
    const wrapped = HTTPException.from(tooBig)!;
    assert.equal(wrapped.status, 413);
    assert.equal(wrapped.cause, tooBig);
    assert.equal(HTTPException.from(new Error('x')), null);
    assert.equal(HTTPException.from('string'), null);
  });

  test('a 3xx with Location renders as a redirect; repeated headers are all set', () => {
    const e = new HTTPException(303, 'see there', {
      headers: [
        ['Location', '/there'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ],
    });
    const request = new DummyRequest();
    const body = e.render(request);
    assert.equal(request.code, 303);
    assert.equal(request.responseHeaders.get('location'), '/there');
    assert.deepEqual(request.responseHeaders.getAll('set-cookie'), ['a=1', 'b=2']);
    assert.match(Buffer.from(body).toString(), /see there/);
  });
});

describe('stock resources', () => {
  test('ErrorPage escapes brief and detail; every child is itself', async () => {
    const page = new ErrorPage(418, '<teapot>', 'short & "stout"');
    assert.equal(page.getChildWithDefault('x', new DummyRequest()), page);
    const request = await get(page, '/any/where', 'POST');
    assert.equal(request.code, 418);
    const html = request.writtenText();
    assert.match(html, /<title>418 - &lt;teapot&gt;<\/title>/);
    assert.match(html, /short &amp; &quot;stout&quot;/);
    assert.equal(html, errorPageBody(418, '<teapot>', 'short & "stout"').toString());
    assert.throws(() => new ErrorPage(42, 'x', 'y'), InvalidArgumentError);
    assert.equal(
      escapeHTML(`<a href="x">'&'</a>`),
      '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;',
    );
  });

  test('NoResource is 404, ForbiddenResource 403', async () => {
    assert.equal((await get(new NoResource(), '/')).code, 404);
    const forbidden = await get(new ForbiddenResource('no entry'), '/');
    assert.equal(forbidden.code, 403);
    assert.match(forbidden.writtenText(), /no entry/);
  });

  test('Redirect: 302 by default, 301 on request, Location and an escaped page', async () => {
    const root = new Resource();
    root.putChild('old', new Redirect('/new?a=1&b="2"'));
    root.putChild('moved', new Redirect('https://example.com/', 301));
    const r = await get(root, '/old/deep/path');
    assert.equal(r.code, 302);
    assert.equal(r.responseHeaders.get('location'), '/new?a=1&b="2"');
    assert.match(r.writtenText(), /href="\/new\?a=1&amp;b=&quot;2&quot;"/);
    const m = await get(root, '/moved');
    assert.equal(m.code, 301);
    assert.equal(m.responseHeaders.get('location'), 'https://example.com/');
    assert.throws(() => new Redirect('/x\r\nSet-Cookie: a=b'), InvalidArgumentError);
    assert.throws(() => new Redirect('/x', 200 as 301), InvalidArgumentError);
    assert.throws(() => new Redirect(''), InvalidArgumentError);
  });

  test('Data serves fixed bytes with a Content-Type; HEAD gets the headers', async () => {
    const data = new Data('héllo', 'text/plain; charset=utf-8');
    const r = await direct(data);
    assert.equal(r.code, 200);
    assert.equal(r.writtenText(), 'héllo');
    assert.equal(r.responseHeaders.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(r.responseHeaders.get('content-length'), '6');
    const h = await direct(data, 'HEAD');
    assert.deepEqual(h.written, []);
    assert.equal(h.responseHeaders.get('content-length'), '6');
    const p = await direct(data, 'POST');
    assert.equal(p.code, 405);
    const bytes = new Data(new Uint8Array([1, 2, 3]), 'application/octet-stream');
    assert.deepEqual([...(await direct(bytes)).writtenBytes()], [1, 2, 3]);
    assert.throws(() => new Data('x', 'text/plain\r\nX: y'), InvalidArgumentError);
  });
});
