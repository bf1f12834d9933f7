/**
 * The app gateway and FetchResource over a real TLS port (`listenSSL`):
 * `wsgi.url_scheme` is `https`, the fetch handler's URL is `https:`, and a
 * body goes both ways. The certificate is made at test time with openssl
 * (fixtures/tls/make-cert.ts).
 */

import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import type { IPv4Address } from '../src/reactor/address.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenSSL } from '../src/reactor/tls.js';
import { AppResource } from '../src/web/app.js';
import { FetchResource } from '../src/web/fetch.js';
import { Resource } from '../src/web/resource.js';
import { Site } from '../src/web/site.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';

let cert: TestCert;
before(() => {
  cert = makeCert();
});
after(() => {
  cert.remove();
});

/** One request over TLS (trusting the test certificate), read whole. */
function ask(port: number, method: string, path: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: cert.cert,
        servername: 'localhost',
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve(`${res.statusCode} ${Buffer.concat(parts).toString()}`));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('app gateway and FetchResource over TLS', () => {
  test("wsgi.url_scheme is 'https'; the fetch URL is https:; bodies go both ways", async () => {
    const root = new Resource();
    root.putChild(
      'app',
      new AppResource(async (environ, startResponse) => {
        let bytes = 0;
        for await (const piece of environ['wsgi.input']) bytes += piece.length;
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return [`${environ['wsgi.url_scheme']} ${environ.SERVER_NAME} ${bytes}`];
      }),
    );
    root.putChild(
      'fetch',
      new FetchResource(async (req) => new Response(`${req.url} ${(await req.text()).length}`)),
    );
    const site = new Site(root, { accessLog: null });
    const port = listenSSL(
      reactor,
      0,
      site,
      { key: cert.key, cert: cert.cert },
      { interface: '127.0.0.1' },
    );
    await port.whenListening();
    const portNumber = (port.getHost() as IPv4Address).port;
    try {
      assert.equal(await ask(portNumber, 'POST', '/app/x', 'hello'), '200 https 127.0.0.1 5');
      assert.equal(
        await ask(portNumber, 'POST', '/fetch/y?z=1', 'hello!'),
        `200 https://127.0.0.1:${portNumber}/fetch/y?z=1 6`,
      );
    } finally {
      await port.stopListening();
      await site.shutdown(0);
    }
  });
});
