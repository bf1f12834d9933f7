/**
 * How the web examples run on their own: `npx tsx examples/NAME.ts
 * [--port 8080] [--interface 127.0.0.1]` serves the example's resource as
 * the root of a `Site`, prints `listening on http://HOST:PORT/` once bound
 * (`--port 0` picks a free port), and runs the reactor until Ctrl-C or
 * SIGTERM (the reactor runs its before-shutdown triggers, such as one an
 * example registered to close its WebSockets, stops the port and lets
 * requests in flight finish).
 *
 * @example
 * ```ts
 * if (isMain(import.meta.url)) process.exitCode = await serveExample(new AppResource(app));
 * ```
 *
 * @module
 */

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type IPv4Address, IPv6Address } from '../src/reactor/address.js';
import { reactor } from '../src/reactor/reactor.js';
import type { IResource } from '../src/web/iweb.js';
import { Site } from '../src/web/site.js';

/** Whether the module at `moduleURL` (its `import.meta.url`) is the script node was started with. */
export function isMain(moduleURL: string): boolean {
  const script = process.argv[1];
  return script !== undefined && moduleURL === pathToFileURL(script).href;
}

/** Options of {@link serveExample}. */
export interface ServeExampleOptions {
  /**
   * The port served when `args` has no `--port` (default `'8080'`; an
   * `undefined` value, such as an unset `process.env.PORT`, means that
   * default too). Checked as `--port` is.
   */
  defaultPort?: string | undefined;
}

/**
 * Serves `root` as told by `args` (`--port`/`-p`, `--interface`/`-i`) until
 * the reactor stops. Resolves with the process exit code: 0 after a stop,
 * 2 for bad arguments, 1 if the port cannot be bound (each with a message
 * on stderr).
 */
export async function serveExample(
  root: IResource,
  args: string[] = process.argv.slice(2),
  options: ServeExampleOptions = {},
): Promise<number> {
  const defaultPort = options.defaultPort ?? '8080';
  let values: { port: string; interface: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: 'string', short: 'p', default: defaultPort },
        interface: { type: 'string', short: 'i', default: '127.0.0.1' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}`);
    console.error(`usage: [--port ${defaultPort}] [--interface 127.0.0.1]`);
    return 2;
  }
  const portNumber = Number(values.port);
  if (!/^\d+$/.test(values.port) || portNumber > 65535) {
    console.error(`invalid --port: ${values.port}`);
    return 2;
  }
  const port = reactor.listenTCP(portNumber, new Site(root), { interface: values.interface });
  try {
    await port.whenListening();
  } catch (error) {
    console.error(`cannot listen: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  const address = port.getHost() as IPv4Address | IPv6Address;
  const host = address instanceof IPv6Address ? `[${address.host}]` : address.host;
  console.log(`listening on http://${host}:${address.port}/`);
  await reactor.run();
  return 0;
}
