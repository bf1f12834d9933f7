/**
 * examples/ws-chat.ts in a real browser: Debian's Chromium (`/usr/bin/chromium`,
 * installed by `.ci/run`) driven by playwright-core. Two pages join with two
 * nicks, one sends, the other shows it (as text, not HTML); a taken nick
 * shows its error; a closed page shows as a leave notice. A screenshot goes
 * into the test's temp dir.
 *
 * If Chromium cannot be launched the test fails, saying why: it is never
 * skipped.
 */

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { createChat } from '../examples/ws-chat.js';
import type { IPv4Address } from '../src/reactor/address.js';
import type { IListeningPort } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { Site } from '../src/web/site.js';

const CHROMIUM = '/usr/bin/chromium';

/**
 * As this machine needs them: no sandbox (root in a container), no GPU, and
 * nothing that reaches out to Google's hosts (the network is closed).
 */
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let browser: Browser | null = null;
let port: IListeningPort | null = null;
let directory: string | null = null;

after(async () => {
  await browser?.close();
  await port?.stopListening();
  if (directory !== null && process.env.KEEP_SCREENSHOTS === undefined) {
    await rm(directory, { recursive: true, force: true });
  }
});

/**
 * Launches Chromium headless with a fresh profile (playwright-core makes a
 * new `--user-data-dir` per launch). Throws, saying what to install, if it
 * cannot.
 */
async function launch(): Promise<Browser> {
  try {
    await stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`);
  }
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      timeout: 60_000,
    });
  } catch (error) {
    throw new Error(`cannot launch ${CHROMIUM}: ${(error as Error).message}`, { cause: error });
  }
}

/** A page in its own context (its own cookies and storage), with page errors collected. */
async function openPage(b: Browser, url: string, errors: string[]): Promise<Page> {
  const context = await b.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url);
  return page;
}

async function joinAs(page: Page, nick: string): Promise<void> {
  await page.locator('#join:enabled').waitFor();
  await page.fill('#nick', nick);
  await page.click('#join');
}

test('two pages chat through examples/ws-chat.ts in Chromium', async (t) => {
  browser = await launch();
  t.diagnostic(`browser: Chromium ${browser.version()}`);

  const chat = createChat();
  port = listenTCP(reactor, 0, new Site(chat.root), { interface: '127.0.0.1' });
  await port.whenListening();
  const url = `http://127.0.0.1:${(port.getHost() as IPv4Address).port}/`;

  const errors: string[] = [];
  const ann = await openPage(browser, url, errors);
  const bob = await openPage(browser, url, errors);
  assert.equal(await ann.title(), 'torsion chat');

  await joinAs(ann, 'ann');
  await ann.locator('#say-form').waitFor({ state: 'visible' });
  assert.equal(await ann.textContent('#status'), 'Joined as ann.');

  // A taken nick: the page shows the server's error and stays on the join form.
  await joinAs(bob, 'ANN');
  await bob.locator('#error', { hasText: 'taken' }).waitFor();
  assert.equal(await bob.isVisible('#join-form'), true, 'still joining');
  await joinAs(bob, 'bob');
  await bob.locator('#say-form').waitFor({ state: 'visible' });
  assert.equal(await bob.textContent('#error'), '', 'the error is cleared once joined');
  await ann.locator('#members li', { hasText: 'bob' }).waitFor();
  await ann.locator('#messages li.notice', { hasText: 'bob joined.' }).waitFor();

  // Markup typed by a user is shown as text: no element is made, no script runs.
  const text = '<img src=x onerror="window.pwned=1"> hello & <b>bye</b>';
  await ann.fill('#text', text);
  await ann.press('#text', 'Enter');
  const received = bob.locator('#messages li.message', { hasText: 'hello &' });
  await received.waitFor();
  assert.equal(await received.locator('.nick').textContent(), 'ann');
  assert.equal(await received.locator('.text').textContent(), text);
  assert.equal(await bob.locator('#messages img, #messages b').count(), 0, 'no markup was parsed');
  assert.equal(await bob.evaluate(() => 'pwned' in globalThis), false, 'no handler ran');
  await ann.locator('#messages li.message.mine', { hasText: 'hello &' }).waitFor();
  assert.equal(await ann.inputValue('#text'), '', 'the input is cleared after sending');

  await bob.fill('#text', 'hi ann');
  await bob.click('#send');
  await ann.locator('#messages li.message', { hasText: 'hi ann' }).waitFor();
  assert.deepEqual(
    chat.factory.room.history.map((m) => [m.nick, m.text]),
    [
      ['ann', text],
      ['bob', 'hi ann'],
    ],
  );

  directory = await mkdtemp(join(tmpdir(), 'ws-chat-browser-'));
  const screenshot = join(directory, 'bob.png');
  await bob.screenshot({ path: screenshot, fullPage: true });
  const png = await readFile(screenshot);
  assert.ok(png.length > PNG_SIGNATURE.length, `screenshot ${screenshot} is empty`);
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'the screenshot is a PNG');
  t.diagnostic(`screenshot: ${screenshot} (${png.length} bytes)`);

  // Bob closes his page: ann sees him leave.
  await bob.context().close();
  await ann.locator('#messages li.notice', { hasText: 'bob left.' }).waitFor();
  assert.equal(await ann.locator('#members li').count(), 1);
  assert.deepEqual(chat.factory.room.nicks, ['ann']);
  assert.deepEqual(errors, [], 'no script error on either page');
  await ann.context().close();
});
