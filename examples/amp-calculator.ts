/**
 * An AMP calculator: a server answering `Sum` and `Divide`, and a client
 * calling them. The commands are declared once and typed on both sides; the
 * wire format is Twisted's, so either side can be a Twisted AMP peer.
 *
 *     npx tsx examples/amp-calculator.ts                  # server + client in one process, then exit
 *     npx tsx examples/amp-calculator.ts --server [--port 7777] [--interface 127.0.0.1]
 *     npx tsx examples/amp-calculator.ts --client PORT [--host 127.0.0.1]
 *
 * The server prints `amp calculator listening on HOST:PORT` once bound
 * (`--port 0` picks a free port) and stops on Ctrl-C (SIGINT) or SIGTERM.
 */

import { parseArgs } from 'node:util';
import { AMP, command, Float, Integer, ResponderTable } from '../src/protocols/amp.js';
import { ClientCreator, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import type { IListeningPort } from '../src/reactor/interfaces.js';
import { err, msg } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';

/** Raised by Divide's responder; the client's Deferred fails with it. */
export class ZeroDivision extends Error {
  override name = 'ZeroDivision';
}

/** `Sum(a, b) → total`. */
export const Sum = command('Sum', {
  arguments: { a: Integer, b: Integer },
  response: { total: Integer },
});

/** `Divide(numerator, denominator) → result`; `ZERO_DIVISION` when dividing by zero. */
export const Divide = command('Divide', {
  arguments: { numerator: Integer, denominator: Integer },
  response: { result: Float },
  errors: { ZERO_DIVISION: ZeroDivision },
});

/** The server side: one instance per connection, responders declared once for the class. */
export class Calculator extends AMP {
  static override responders = new ResponderTable<Calculator>()
    .on(Sum, ({ a, b }) => ({ total: a + b }))
    .on(Divide, ({ numerator, denominator }) => {
      if (denominator === 0) throw new ZeroDivision('division by zero');
      return { result: numerator / denominator };
    });
}

/** Starts the server; the port's Deferred fires once it is bound. */
export function listen(port: number, iface: string): IListeningPort {
  return reactor.listenTCP(port, Factory.forProtocol(Calculator), { interface: iface });
}

/** Connects, makes a few calls (and one failing one), prints them, disconnects. */
export async function runClient(host: string, port: number): Promise<void> {
  const amp = await new ClientCreator(reactor, AMP).connectTCP(host, port);
  try {
    const { total } = await amp.callRemote(Sum, { a: 13, b: 81 });
    msg(`Sum(13, 81) = ${total}`);
    // Many calls in flight at once over the one connection.
    const totals = await Promise.all(
      Array.from({ length: 5 }, (_, i) => amp.callRemote(Sum, { a: i, b: i })),
    );
    msg(`Sum(i, i) for i < 5 = ${totals.map((t) => t.total).join(', ')}`);
    const { result } = await amp.callRemote(Divide, { numerator: 1, denominator: 3 });
    msg(`Divide(1, 3) = ${result}`);
    try {
      await amp.callRemote(Divide, { numerator: 1, denominator: 0 });
    } catch (error) {
      if (!(error instanceof ZeroDivision)) throw error;
      msg(`Divide(1, 0) failed as declared: ${error.name}: ${error.message}`);
    }
  } finally {
    amp.transport.loseConnection();
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      server: { type: 'boolean', default: false },
      client: { type: 'string' },
      port: { type: 'string', short: 'p', default: '7777' },
      host: { type: 'string', default: '127.0.0.1' },
      interface: { type: 'string', short: 'i', default: '127.0.0.1' },
    },
  });

  if (values.client !== undefined) {
    const port = Number(values.client);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      console.error(`invalid --client port: ${values.client}`);
      process.exitCode = 2;
      return;
    }
    runClient(values.host, port).catch((error: unknown) => {
      err(error, 'amp calculator client failed');
      process.exitCode = 1;
    });
    return;
  }

  if (values.server) {
    const portNumber = Number(values.port);
    if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
      console.error(`invalid --port: ${values.port}`);
      process.exitCode = 2;
      return;
    }
    const port = listen(portNumber, values.interface);
    port.whenListening().addCallbacks(
      () => {
        const host = port.getHost() as IPv4Address;
        msg(`amp calculator listening on ${host.host}:${host.port}`);
      },
      (failure) => {
        err(failure, 'amp calculator could not start');
        process.exitCode = 1;
        if (reactor.running) reactor.stop();
      },
    );
    reactor.run().addCallback(() => {
      for (const transport of (
        port as IListeningPort & { connections: Iterable<{ loseConnection(): void }> }
      ).connections) {
        transport.loseConnection();
      }
      msg('amp calculator stopped');
    });
    return;
  }

  // Both in one process: a server on a free port, a client against it.
  const port = listen(0, '127.0.0.1');
  port
    .whenListening()
    .asPromise()
    .then(() => runClient('127.0.0.1', (port.getHost() as IPv4Address).port))
    .catch((error: unknown) => {
      err(error, 'amp calculator failed');
      process.exitCode = 1;
    })
    .finally(() => port.stopListening());
}

main();
