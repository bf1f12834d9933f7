/**
 * RequestBody on its own: the reading modes (read, async iteration,
 * deliverTo with pause/resume, collect), ordering of data before the end or
 * the failure, the owner's accounting (bodyWanted once, bodyConsumed for
 * every kept byte), discard and stopProducing.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectionLost, InvalidArgumentError } from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import {
  BodyDiscardedError,
  type BodyOwner,
  PUSH_DROPPED,
  PUSH_KEPT,
  PUSH_TAKEN,
  RequestBody,
} from '../src/web/http/body.js';
import { HTTPError } from '../src/web/http/errors.js';
import { Headers } from '../src/web/http/headers.js';
import type { IBodySink } from '../src/web/iweb.js';

class Owner implements BodyOwner {
  wanted = 0;
  kept = 0;
  consumed = 0;
  onConsumed: (() => void) | null = null;
  bodyWanted(): void {
    this.wanted++;
  }
  bodyConsumed(_body: RequestBody, bytes: number): void {
    this.consumed += bytes;
    this.onConsumed?.();
  }
  /** Pushes as the channel does, counting what is kept. */
  push(body: RequestBody, data: string): number {
    const chunk = Buffer.from(data);
    const r = body.push(chunk);
    if (r === PUSH_KEPT) this.kept += chunk.length;
    return r;
  }
}

class Sink implements IBodySink {
  readonly events: string[] = [];
  data = '';
  onData: ((data: Buffer) => void) | null = null;
  dataReceived(data: Buffer): void {
    this.events.push(`data:${data.toString()}`);
    this.data += data.toString();
    this.onData?.(data);
  }
  bodyEnded(): void {
    this.events.push('end');
  }
  bodyFailed(reason: Failure): void {
    this.events.push(`failed:${reason.value.constructor.name}`);
  }
}

function make(length: number | null = null): { body: RequestBody; owner: Owner } {
  const owner = new Owner();
  return { body: new RequestBody(owner, length, false), owner };
}

describe('RequestBody: read()', () => {
  test('a pending read takes the next piece directly (nothing kept)', async () => {
    const { body, owner } = make();
    const p = body.read();
    assert.equal(owner.wanted, 1);
    assert.equal(owner.push(body, 'abc'), PUSH_TAKEN);
    assert.equal((await p).toString(), 'abc');
    assert.equal(body.buffered, 0);
    assert.equal(body.received, 3);
  });

  test('kept pieces are read first, joined, then the end (empty, repeatedly)', async () => {
    const { body, owner } = make();
    owner.push(body, 'ab');
    owner.push(body, 'cd');
    body.end();
    assert.equal(owner.wanted, 0, 'nobody asked yet');
    assert.equal((await body.read()).toString(), 'abcd');
    assert.equal(owner.consumed, 4);
    assert.equal((await body.read()).length, 0);
    assert.equal((await body.read()).length, 0);
    assert.equal(owner.wanted, 1);
  });

  test('maxBytes splits pieces without losing bytes', async () => {
    const { body, owner } = make();
    owner.push(body, 'abcdef');
    owner.push(body, 'gh');
    body.end();
    const got: string[] = [];
    for (;;) {
      const piece = await body.read(3);
      if (piece.length === 0) break;
      assert.ok(piece.length <= 3);
      got.push(piece.toString());
    }
    assert.equal(got.join(''), 'abcdefgh');
    assert.equal(owner.consumed, owner.kept);
  });

  test('a pending read with maxBytes keeps the rest of a larger piece', async () => {
    const { body, owner } = make();
    const p = body.read(2);
    assert.equal(owner.push(body, 'hello'), PUSH_KEPT);
    assert.equal((await p).toString(), 'he');
    assert.equal(body.buffered, 3);
    assert.equal((await body.read()).toString(), 'llo');
  });

  test('data received before a failure is read first; then the failure, every time', async () => {
    const { body, owner } = make(10);
    owner.push(body, 'abc');
    body.fail(new Failure(new ConnectionLost('gone')));
    assert.equal((await body.read()).toString(), 'abc');
    await assert.rejects(body.read(), ConnectionLost);
    await assert.rejects(body.read(), ConnectionLost);
  });

  test('a pending read is rejected by a failure (never an early empty read)', async () => {
    const { body } = make(10);
    const p = body.read();
    body.fail(new Failure(new ConnectionLost()));
    await assert.rejects(p, ConnectionLost);
  });

  test('two pending reads, a bad maxBytes, or a read while delivering: InvalidArgumentError', async () => {
    const { body } = make();
    const p = body.read();
    await assert.rejects(body.read(), InvalidArgumentError);
    await assert.rejects(body.read(0), InvalidArgumentError);
    await assert.rejects(body.read(1.5), InvalidArgumentError);
    body.end();
    assert.equal((await p).length, 0);
    const other = make().body;
    other.deliverTo(new Sink());
    await assert.rejects(other.read(), InvalidArgumentError);
    await assert.rejects(other.collect(10), InvalidArgumentError);
  });

  test('a body without content is complete and reads empty at once', async () => {
    const body = new RequestBody(null, null, true);
    assert.equal(body.complete, true);
    assert.equal((await body.read()).length, 0);
  });

  test('async iteration yields every piece then stops', async () => {
    const { body, owner } = make();
    owner.push(body, 'a');
    setImmediate(() => {
      owner.push(body, 'b');
      body.end(new Headers([['X-Sum', '2']]));
    });
    const got: string[] = [];
    for await (const piece of body) got.push(piece.toString());
    assert.deepEqual(got, ['a', 'b']);
    assert.equal(body.trailers?.get('x-sum'), '2');
  });
});

describe('RequestBody: deliverTo()', () => {
  test('kept pieces at once, then pieces as they come, then bodyEnded', () => {
    const { body, owner } = make();
    owner.push(body, 'a');
    const sink = new Sink();
    body.deliverTo(sink);
    assert.equal(owner.wanted, 1);
    assert.equal(owner.consumed, 1);
    assert.equal(owner.push(body, 'b'), PUSH_TAKEN);
    body.end();
    assert.deepEqual(sink.events, ['data:a', 'data:b', 'end']);
  });

  test('pause keeps pieces; resume delivers them in order, then the end', () => {
    const { body, owner } = make();
    const sink = new Sink();
    body.deliverTo(sink);
    body.pauseProducing();
    assert.equal(owner.push(body, 'x'), PUSH_KEPT);
    assert.equal(owner.push(body, 'y'), PUSH_KEPT);
    body.end();
    assert.deepEqual(sink.events, []);
    body.resumeProducing();
    assert.deepEqual(sink.events, ['data:x', 'data:y', 'end']);
    assert.equal(owner.consumed, 2);
  });

  test('a sink pausing inside dataReceived stops the delivery; a resume within it goes on', () => {
    const { body, owner } = make();
    owner.push(body, '1');
    owner.push(body, '2');
    owner.push(body, '3');
    const sink = new Sink();
    sink.onData = (d) => {
      if (d.toString() === '1') body.pauseProducing();
    };
    body.deliverTo(sink);
    assert.deepEqual(sink.events, ['data:1']);
    sink.onData = (d) => {
      if (d.toString() === '2') {
        body.pauseProducing();
        body.resumeProducing();
      }
    };
    body.resumeProducing();
    assert.deepEqual(sink.events, ['data:1', 'data:2', 'data:3']);
  });

  test('pieces pushed while the sink is being fed (re-entrantly) keep their order', () => {
    const { body, owner } = make();
    owner.push(body, 'a');
    owner.push(body, 'b');
    const sink = new Sink();
    // The owner resumes reading when bytes are consumed, which pushes more.
    let pushed = false;
    owner.onConsumed = () => {
      if (!pushed) {
        pushed = true;
        owner.push(body, 'c');
      }
    };
    body.deliverTo(sink);
    assert.equal(sink.data, 'abc');
  });

  test('a failure reaches the sink after the data kept before it', () => {
    const { body, owner } = make();
    const sink = new Sink();
    body.deliverTo(sink);
    body.pauseProducing();
    owner.push(body, 'a');
    body.fail(new Failure(new ConnectionLost()));
    assert.deepEqual(sink.events, []);
    body.resumeProducing();
    assert.deepEqual(sink.events, ['data:a', 'failed:ConnectionLost']);
  });

  test('deliverTo twice, or after a read: InvalidArgumentError', () => {
    const { body } = make();
    body.deliverTo(new Sink());
    assert.throws(() => body.deliverTo(new Sink()), InvalidArgumentError);
    const other = make().body;
    void other.read();
    assert.throws(() => other.deliverTo(new Sink()), InvalidArgumentError);
  });

  test('a sink that throws is logged and the body is dropped from then on', async () => {
    const { addObserver } = await import('../src/reactor/log.js');
    const errors: string[] = [];
    const remove = addObserver((e) => {
      if (e.isError) errors.push(e.message);
    });
    try {
      const { body, owner } = make();
      const sink = new Sink();
      sink.onData = () => {
        throw new Error('boom');
      };
      body.deliverTo(sink);
      owner.push(body, 'a');
      assert.equal(errors.length, 1);
      assert.equal(body.discarding, true);
      assert.equal(owner.push(body, 'b'), PUSH_DROPPED);
    } finally {
      remove();
    }
  });
});

describe('RequestBody: collect()', () => {
  test('gathers everything up to the cap and resolves at the end; again: the same Promise', async () => {
    const { body, owner } = make();
    owner.push(body, 'ab');
    const p = body.collect(10);
    assert.equal(owner.consumed, 2);
    assert.equal(owner.push(body, 'cd'), PUSH_TAKEN);
    body.end();
    assert.equal((await p).toString(), 'abcd');
    assert.equal(body.collect(10), p);
  });

  test('a Content-Length over the cap fails at once with 413, without asking the client', async () => {
    const { body, owner } = make(100);
    const error = await body.collect(10).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof HTTPError);
    assert.equal(error.status, 413);
    assert.equal(error.code, 'TORSION_ERR_HTTP_BODY_TOO_LARGE');
    assert.equal(owner.wanted, 0);
  });

  test('a chunked body growing past the cap fails with 413; later pieces are kept, not gathered', async () => {
    const { body, owner } = make();
    const p = body.collect(3);
    owner.push(body, 'ab');
    assert.equal(owner.push(body, 'cd'), PUSH_KEPT);
    await assert.rejects(p, (e: unknown) => e instanceof HTTPError && e.status === 413);
    assert.equal(owner.push(body, 'e'), PUSH_KEPT);
    await assert.rejects(body.read(), InvalidArgumentError);
  });

  test('a failure rejects the collection', async () => {
    const { body } = make(5);
    const p = body.collect(10);
    body.fail(new Failure(new ConnectionLost()));
    await assert.rejects(p, ConnectionLost);
  });
});

describe('RequestBody: discard and stopProducing', () => {
  test('discard drops kept data (reported consumed), fails waiters, drops later pieces', async () => {
    const { body, owner } = make();
    const sink = new Sink();
    body.deliverTo(sink);
    body.pauseProducing();
    owner.push(body, 'abc');
    body.discard();
    assert.equal(owner.consumed, 3);
    assert.deepEqual(sink.events, ['failed:BodyDiscardedError']);
    assert.equal(owner.push(body, 'x'), PUSH_DROPPED);
    body.end();
    assert.deepEqual(sink.events, ['failed:BodyDiscardedError']);

    const other = make();
    const p = other.body.read();
    other.body.discard();
    await assert.rejects(p, BodyDiscardedError);
    await assert.rejects(other.body.read(), BodyDiscardedError);
  });

  test('stopProducing: the sink hears nothing more, the rest is dropped', () => {
    const { body, owner } = make();
    const sink = new Sink();
    body.deliverTo(sink);
    owner.push(body, 'a');
    body.stopProducing();
    assert.equal(owner.push(body, 'b'), PUSH_DROPPED);
    body.end();
    assert.deepEqual(sink.events, ['data:a']);
  });
});
