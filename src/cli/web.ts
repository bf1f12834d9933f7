/**
 * `torsion web`: serves a directory or a resource tree over HTTP (Twisted's
 * `twist web`).
 *
 * @module
 */

import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { IPv6Address, UNIXAddress } from '../reactor/address.js';
import { isThenable } from '../reactor/deferred.js';
import { serverFromString } from '../reactor/endpoint-strings.js';
import type { IStreamServerEndpoint } from '../reactor/endpoints.js';
import { InvalidArgumentError } from '../reactor/errors.js';
import type { IAddress, IListeningPort } from '../reactor/interfaces.js';
import { reactor } from '../reactor/reactor.js';
import type { IResource } from '../web/iweb.js';
import type { SiteOptions } from '../web/site.js';

// ====================================================================== addresses

/** `tcp:HOST:PORT` (IPv6 hosts in brackets) or `unix:PATH`, as printed once bound. */
export function describeAddress(address: IAddress): string {
  if (address instanceof UNIXAddress) return `unix:${address.name ?? ''}`;
  const a = address as IAddress & { host: string; port: number };
  return address instanceof IPv6Address ? `tcp:[${a.host}]:${a.port}` : `tcp:${a.host}:${a.port}`;
}

// ====================================================================== resources

function isResource(value: unknown): value is IResource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as IResource).render === 'function' &&
    typeof (value as IResource).getChildWithDefault === 'function'
  );
}

/**
 * The resource `modulePath` provides: its default export if it is a
 * resource; a new instance if it is a resource class; else, if it is a
 * function, what calling it (with no arguments) returns or resolves to.
 *
 * @throws InvalidArgumentError if that is not a resource.
 */
export async function loadResource(modulePath: string): Promise<IResource> {
  const loaded = (await import(pathToFileURL(resolve(modulePath)).href)) as { default?: unknown };
  let value = loaded.default;
  if (typeof value === 'function') {
    const proto = (value as { prototype?: unknown }).prototype;
    if (isResource(proto)) {
      value = new (value as new () => unknown)();
    } else {
      value = (value as () => unknown)();
      if (isThenable(value)) value = await value;
    }
  }
  if (!isResource(value)) {
    throw new InvalidArgumentError(
      `${modulePath}: the default export is not a Resource, nor a function returning one`,
    );
  }
  return value;
}

/** The default export of `modulePath` (a path, resolved against the working directory). */
async function importDefault(modulePath: string): Promise<unknown> {
  const loaded = (await import(pathToFileURL(resolve(modulePath)).href)) as { default?: unknown };
  return loaded.default;
}

/**
 * The resource for `--app MODULE`: MODULE's default export, an app
 * `(environ, startResponse) => body` (see `web/app.ts`), hosted by an
 * `AppResource`.
 *
 * @throws InvalidArgumentError if the default export is not a function.
 */
export async function loadApp(modulePath: string): Promise<IResource> {
  const app = await importDefault(modulePath);
  if (typeof app !== 'function') {
    throw new InvalidArgumentError(
      `${modulePath}: the default export is not an app (a function (environ, startResponse))`,
    );
  }
  const { AppResource } = await import('../web/app.js');
  return new AppResource(app as ConstructorParameters<typeof AppResource>[0]);
}

/**
 * The resource for `--fetch MODULE`: MODULE's default export, a fetch
 * handler `(request) => Response` or an object with a `fetch(request)`
 * method (what a Hono app exports), hosted by a `FetchResource`.
 *
 * @throws InvalidArgumentError if the default export is neither.
 */
export async function loadFetchHandler(modulePath: string): Promise<IResource> {
  const handler = await importDefault(modulePath);
  const isApp =
    typeof handler === 'object' &&
    handler !== null &&
    typeof (handler as { fetch?: unknown }).fetch === 'function';
  if (typeof handler !== 'function' && !isApp) {
    throw new InvalidArgumentError(
      `${modulePath}: the default export is not a fetch handler (a function (request) => Response, or an object with a fetch method)`,
    );
  }
  const { FetchResource } = await import('../web/fetch.js');
  return new FetchResource(handler as ConstructorParameters<typeof FetchResource>[0]);
}

// ====================================================================== the command

const usage = `Usage: torsion web (--path DIR | --resource MODULE | --app MODULE | --fetch MODULE)
                  [--listen ENDPOINT]... [OPTIONS]

Serves a directory, the resource tree a module provides, or an app a module
exports, over HTTP/1.1 until Ctrl-C or SIGTERM. Prints "listening on ADDRESS"
for each endpoint once bound.

Options:
  --listen ENDPOINT    where to listen; may be repeated (default tcp:8080):
                         tcp:PORT[:interface=HOST][:backlog=N]
                         tcp6:PORT[:interface=HOST][:backlog=N]
                         unix:PATH[:mode=660][:backlog=N][:lockfile=0|1]
                         ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem]...
                       PORT 0 picks a free port; \\ escapes a colon
                       (tcp6:8080:interface=\\:\\:1)
  --path DIR           serve the files under DIR (index.html, listings,
                       ranges, conditional requests)
  --resource MODULE    serve MODULE's default export (JavaScript or
                       TypeScript): a Resource, a Resource class, or a
                       function returning one (or a Promise of one)
  --app MODULE         serve MODULE's default export as an async app
                       (environ, startResponse) => body, the gateway of
                       torsion's web/app
  --fetch MODULE       serve MODULE's default export as a web-standard
                       fetch handler: a function (Request) => Response (or
                       a Promise of one), or an object with such a fetch
                       method, as a Hono app exports
  --access-log FILE    append an access log (combined log format) to FILE,
                       reopened on SIGHUP (logrotate); "-" for standard output
  --display-tracebacks put the stack of an unexpected error in its 500
                       response (for debugging only: it shows your code)
  -h, --help           show this help`;

/** Prints `message` and the usage to stderr; returns the usage-error exit code. */
function usageError(message: string): number {
  console.error(`torsion web: ${message}\n\n${usage}`);
  return 2;
}

/** The `web` subcommand (registered in `main.ts`). */
export const webCommand = {
  summary: 'serve a directory or a resource over HTTP (or an app, a fetch handler)',
  usage,
  async run(args: string[]): Promise<number> {
    let values: {
      listen?: string[];
      path?: string;
      resource?: string;
      app?: string;
      fetch?: string;
      'access-log'?: string;
      'display-tracebacks'?: boolean;
      help?: boolean;
    };
    try {
      ({ values } = parseArgs({
        args,
        options: {
          listen: { type: 'string', multiple: true },
          path: { type: 'string' },
          resource: { type: 'string' },
          app: { type: 'string' },
          fetch: { type: 'string' },
          'access-log': { type: 'string' },
          'display-tracebacks': { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: false,
        strict: true,
      }));
    } catch (error) {
      return usageError(error instanceof Error ? error.message : String(error));
    }
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const sources = [values.path, values.resource, values.app, values.fetch];
    if (sources.filter((s) => s !== undefined).length !== 1) {
      return usageError(
        'give exactly one of --path DIR or --resource MODULE or --app MODULE or --fetch MODULE',
      );
    }
    let endpoints: IStreamServerEndpoint[];
    try {
      endpoints = (values.listen ?? ['tcp:8080']).map((d) => serverFromString(reactor, d));
    } catch (error) {
      return usageError(`--listen: ${(error as Error).message}`);
    }
    // Loaded here, not at the top: `torsion run` needs none of the web layer.
    const [{ Site }, { File }] = await Promise.all([
      import('../web/site.js'),
      import('../web/static.js'),
    ]);
    let root: IResource;
    if (values.path !== undefined) {
      const info = await stat(values.path).catch(() => null);
      if (info === null) return usageError(`--path: no such file or directory: ${values.path}`);
      root = new File(values.path);
    } else if (values.app !== undefined) {
      root = await loadApp(values.app);
    } else if (values.fetch !== undefined) {
      root = await loadFetchHandler(values.fetch);
    } else {
      root = await loadResource(values.resource!);
    }

    const options: SiteOptions = { displayTracebacks: values['display-tracebacks'] ?? false };
    if (values['access-log'] !== undefined) options.accessLog = values['access-log'];
    const site = new Site(root, options);
    const ports: IListeningPort[] = [];
    try {
      for (const endpoint of endpoints) ports.push(await endpoint.listen(site));
    } catch (error) {
      await Promise.all(
        ports.map((p) =>
          p
            .stopListening()
            .asPromise()
            .catch(() => undefined),
        ),
      );
      console.error(`torsion web: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    for (const port of ports) console.log(`listening on ${describeAddress(port.getHost())}`);
    await reactor.run();
    return 0;
  },
};
