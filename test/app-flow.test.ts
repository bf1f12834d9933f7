/**
 * The async app gateway's flow control, proven by numbers over real sockets
 * (the scaled-down `bench/app-flow.ts`): the flow server
 * (`bench/peers/app-flow-server.ts`) runs in its own process, its RSS is
 * sampled every 50 ms, and each scenario checks both a generous memory bound
 * and the counts that show where the pushing back happened:
 * - a client uploads 128 MiB (Content-Length, then 64 MiB chunked) as fast as
 *   its socket allows to an app reading 40 MiB/s through `onGet`: the client's
 *   writes were blocked (TCP pushed back), and the server never held more
 *   than 64 KiB plus a few socket reads of body the app had not taken;
 * - an app puts 128 MiB while `writable` (waiting on `onDrain`), and a push
 *   producer puts 128 MiB, and a pull producer 64 MiB, to a client reading
 *   40 MiB/s: `writable` went false / the push producer was paused and
 *   resumed / the pull producer put only when asked, and the app's queue
 *   stayed small.
 * No timing assertions: the rates only make the slow side slow.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CHUNK,
  type DownloadResult,
  MIB,
  type UploadResult,
} from '../bench/peers/app-flow-client.js';
import {
  type FlowMeasurement,
  type FlowServer,
  measureFlow,
  rssTimeline,
  startFlowServer,
} from '../bench/peers/app-flow-measure.js';

const BYTES = 128 * MIB;
const RATE = 40 * MIB;
/** Generous: a server without flow control would hold most of the 128 MiB. */
const MAX_GROWTH = 96e6;
/** The channel's 64 KiB of unread body, plus a few socket reads of up to 64 KiB each. */
const MAX_HELD_BODY = 64 * 1024 + 3 * CHUNK;
/** An app's output queue: the gateway's small high-water mark plus a piece or a producer's batch. */
const MAX_QUEUED_OUTPUT = 1024 * 1024;

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

/** The server's RSS grew less than {@link MAX_GROWTH}. */
function assertGrowth(m: FlowMeasurement): void {
  assert.equal(
    m.growth < MAX_GROWTH,
    true,
    `server RSS grew ${mb(m.growth)} (baseline ${mb(m.baseline)}): ${rssTimeline(m)}`,
  );
}

/** The app's output queue (`bufferedBytes`) stayed under {@link MAX_QUEUED_OUTPUT}. */
function assertQueued(m: FlowMeasurement): void {
  const queued = m.server.maxBufferedBytes as number;
  assert.equal(queued <= MAX_QUEUED_OUTPUT, true, `bufferedBytes reached ${queued}`);
}

describe('app gateway flow control, by numbers', () => {
  let server: FlowServer;

  before(async () => {
    server = await startFlowServer('torsion');
  });

  after(async () => {
    await server.stop();
  });

  for (const [framing, bytes] of [
    ['length', BYTES],
    ['chunked', BYTES / 2],
  ] as const) {
    test(`a fast ${framing} upload to an app reading via onGet is paused upstream`, async () => {
      const m = await measureFlow(server, 'upload', {
        bytes,
        rate: RATE,
        framing,
        warmupBytes: 8 * MIB,
      });
      const client = m.client as UploadResult;
      const app = JSON.parse(client.response) as Record<string, unknown>;
      assert.equal(app.bytes, bytes, 'the app got every byte');
      assert.equal(app.complete, true, 'the app saw the end of input');
      assert.equal(m.server.bytes, bytes, 'the server counted every byte');
      assert.equal(
        client.writeBlocked > 0,
        true,
        `the client's writes were never blocked (${client.writeBlocked})`,
      );
      const held = m.server.maxServerBuffered as number;
      assert.equal(held <= MAX_HELD_BODY, true, `the server held ${held} bytes of unread body`);
      assertGrowth(m);
    });
  }

  test('an app putting while writable to a slow reader waits on onDrain', async () => {
    const m = await measureFlow(server, 'download-put', {
      bytes: BYTES,
      rate: RATE,
      warmupBytes: 8 * MIB,
    });
    const client = m.client as DownloadResult;
    assert.equal(client.bytes, BYTES, 'the client got every byte');
    assert.equal(client.pauses > 0, true, `the client never paused (${client.pauses})`);
    assert.equal(m.server.bytes, BYTES, 'the app put every byte');
    assert.equal(m.server.finished, true, 'the response finished');
    const notWritable = m.server.notWritable as number;
    const drains = m.server.drains as number;
    assert.equal(notWritable > 0, true, `writable never went false (${notWritable})`);
    assert.equal(drains, notWritable, `every onDrain fired once (${drains} of ${notWritable})`);
    assertQueued(m);
    assertGrowth(m);
  });

  test('a push producer feeding a slow reader is paused and resumed', async () => {
    const m = await measureFlow(server, 'download-producer', {
      bytes: BYTES,
      rate: RATE,
      warmupBytes: 8 * MIB,
    });
    const client = m.client as DownloadResult;
    assert.equal(client.bytes, BYTES, 'the client got every byte');
    assert.equal(m.server.bytes, BYTES, 'the producer put every byte');
    assert.equal(m.server.finished, true, 'the response finished');
    const pauses = m.server.pauses as number;
    const resumes = m.server.resumes as number;
    assert.equal(pauses > 0, true, `pauseProducing was never called (${pauses})`);
    assert.equal(resumes > 0, true, `resumeProducing was never called (${resumes})`);
    assert.equal(m.server.stops, 0, 'stopProducing was not called on a completed response');
    assertQueued(m);
    assertGrowth(m);
  });

  test('a pull producer feeding a slow reader is asked for each piece', async () => {
    const bytes = BYTES / 2;
    const m = await measureFlow(server, 'download-pull', {
      bytes,
      rate: RATE,
      warmupBytes: 8 * MIB,
    });
    const client = m.client as DownloadResult;
    assert.equal(client.bytes, bytes, 'the client got every byte');
    assert.equal(m.server.bytes, bytes, 'the producer put every byte');
    assert.equal(m.server.finished, true, 'the response finished');
    // One put per resumeProducing(): the producer made nothing it was not asked for.
    assert.equal(m.server.resumes, m.server.puts, 'one resumeProducing() per piece');
    assert.equal(m.server.stops, 0, 'stopProducing was not called on a completed response');
    assertQueued(m);
    assertGrowth(m);
  });
});
