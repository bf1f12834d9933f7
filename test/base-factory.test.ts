/**
 * src/protocols/base-factory.ts through both factories built on it: one
 * suite run on `Factory` (stream protocols) and on `WebSocketFactory`. The
 * `doStart`/`doStop` count and its `startFactory`/`stopFactory` hooks, the
 * `noisy` log lines, `toString`, `forProtocol` and `buildProtocol`.
 */

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Factory, Protocol } from '../src/protocols/protocol.js';
import { IPv4Address } from '../src/reactor/address.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { Headers } from '../src/web/http/headers.js';
import { WebSocketFactory, WebSocketProtocol } from '../src/web/websocket/protocol.js';
import { WebSocketRequestInfo } from '../src/web/websocket/request-info.js';

const logged: LogEvent[] = [];
const removeObserver = addObserver((event) => logged.push(event));
after(() => removeObserver());

const peer = new IPv4Address('TCP', '127.0.0.1', 40000);
const host = new IPv4Address('TCP', '127.0.0.1', 8080);
const handshake = new WebSocketRequestInfo({
  uri: '/ws',
  path: '/ws',
  args: new Map(),
  headers: new Headers(),
  peer,
  host,
  secure: false,
  subprotocol: '',
});

/** What the suite needs of a factory, whatever it builds. */
interface CountedFactory {
  numPorts: number;
  noisy: boolean;
  readonly calls: string[];
  doStart(): void;
  doStop(): void;
  toString(): string;
  /** `buildProtocol` with this kind's argument (an address, a handshake). */
  build(): { factory: unknown; label: string } | null;
  setProtocol(): void;
}

class Greeter extends Protocol {
  constructor(readonly label = 'plain') {
    super();
  }
}

class CountingFactory extends Factory<Greeter> implements CountedFactory {
  readonly calls: string[] = [];
  override startFactory(): void {
    this.calls.push('startFactory');
  }
  override stopFactory(): void {
    this.calls.push('stopFactory');
  }
  build(): Greeter | null {
    return this.buildProtocol(peer);
  }
  setProtocol(): void {
    this.protocol = Greeter;
    this.protocolArgs = ['set'];
  }
}

class WSGreeter extends WebSocketProtocol {
  constructor(readonly label = 'plain') {
    super();
  }
}

class CountingWSFactory extends WebSocketFactory<WSGreeter> implements CountedFactory {
  readonly calls: string[] = [];
  override startFactory(): void {
    this.calls.push('startFactory');
  }
  override stopFactory(): void {
    this.calls.push('stopFactory');
  }
  build(): WSGreeter | null {
    const protocol = this.buildProtocol(handshake);
    if (protocol !== null) assert.equal(protocol.request, handshake, 'request is set');
    return protocol;
  }
  setProtocol(): void {
    this.protocol = WSGreeter;
    this.protocolArgs = ['set'];
  }
}

const kinds: [string, () => CountedFactory, string][] = [
  ['Factory', () => new CountingFactory(), '<CountingFactory>'],
  ['WebSocketFactory', () => new CountingWSFactory(), '<CountingWSFactory>'],
];

for (const [kind, make, name] of kinds) {
  describe(`${kind} (BaseFactory)`, () => {
    test('startFactory on the first doStart, stopFactory on the last doStop', () => {
      const factory = make();
      assert.equal(factory.numPorts, 0);
      factory.doStart();
      factory.doStart();
      assert.equal(factory.numPorts, 2);
      assert.deepEqual(factory.calls, ['startFactory'], 'started once for two users');
      factory.doStop();
      assert.equal(factory.numPorts, 1);
      assert.deepEqual(factory.calls, ['startFactory'], 'one user left: not stopped');
      factory.doStop();
      assert.equal(factory.numPorts, 0);
      assert.deepEqual(factory.calls, ['startFactory', 'stopFactory']);
      factory.doStop();
      assert.equal(factory.numPorts, 0, 'an extra doStop is ignored');
      assert.deepEqual(factory.calls, ['startFactory', 'stopFactory'], 'and calls nothing');
      factory.doStart();
      assert.deepEqual(
        factory.calls,
        ['startFactory', 'stopFactory', 'startFactory'],
        'a new first user starts it again',
      );
    });

    test('noisy factories log Starting/Stopping with their name; quiet ones do not', () => {
      const quiet = make();
      const before = logged.length;
      quiet.doStart();
      quiet.doStop();
      assert.equal(logged.length, before, 'nothing logged by default');
      const noisy = make();
      noisy.noisy = true;
      noisy.doStart();
      noisy.doStart();
      noisy.doStop();
      noisy.doStop();
      assert.deepEqual(
        logged.slice(before).map((e) => [e.isError, e.message]),
        [
          [false, `Starting factory ${name}`],
          [false, `Stopping factory ${name}`],
        ],
      );
      assert.equal(String(noisy), name);
    });

    test('buildProtocol: InvalidArgumentError until protocol is set; then the factory is set', () => {
      const factory = make();
      assert.throws(
        () => factory.build(),
        (e: unknown) =>
          e instanceof InvalidArgumentError &&
          e.message === `${name.slice(1, -1)}.protocol is not set`,
      );
      factory.setProtocol();
      const one = factory.build();
      const two = factory.build();
      assert.equal(one !== null && two !== null, true, 'protocols were built');
      assert.notEqual(one, two, 'one protocol per call');
      assert.equal(one!.factory, factory);
      assert.equal(one!.label, 'set', 'built with protocolArgs');
    });
  });
}

test('forProtocol: a factory of the calling class with the protocol and its arguments', () => {
  const stream = CountingFactory.forProtocol(Greeter, 'given');
  assert.equal(stream instanceof CountingFactory, true, 'the calling class');
  assert.deepEqual(stream.protocolArgs, ['given']);
  assert.equal((stream.buildProtocol(peer) as Greeter).label, 'given');
  const ws = WebSocketFactory.forProtocol(WSGreeter, 'given');
  assert.equal(ws instanceof WebSocketFactory, true, 'a WebSocketFactory');
  assert.equal(ws instanceof Factory, false, 'not a stream Factory');
  assert.deepEqual(ws.protocolArgs, ['given']);
  assert.equal((ws.buildProtocol(handshake) as WSGreeter).label, 'given');
});
