/**
 * The `torsion` command: a table of subcommands, each with its own `--help`.
 *
 * @module
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { reactor } from '../reactor/reactor.js';
import { webCommand } from './web.js';

/** A subcommand: `run` gets the arguments after its name and returns an exit code. */
interface Subcommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const subcommands: Record<string, Subcommand> = {
  run: {
    summary: 'load a module and run the reactor',
    usage: `Usage: torsion run MODULE [-- ARGS...]

Imports MODULE (JavaScript or TypeScript). If its default export is a
function, it is called as fn(reactor, args) and may return a Promise or
Deferred; then the reactor runs until stopped (Ctrl-C, SIGTERM or
reactor.stop()).

Options:
  -h, --help   show this help`,
    async run(args) {
      const { values, positionals } = parseArgs({
        args,
        options: { help: { type: 'boolean', short: 'h' } },
        allowPositionals: true,
      });
      if (values.help) {
        console.log(this.usage);
        return 0;
      }
      const [modulePath, ...rest] = positionals;
      if (modulePath === undefined) {
        console.error(`torsion run: MODULE is required\n\n${this.usage}`);
        return 2;
      }
      const loaded = (await import(pathToFileURL(resolve(modulePath)).href)) as {
        default?: unknown;
      };
      if (typeof loaded.default === 'function') {
        await (loaded.default as (r: typeof reactor, a: string[]) => unknown)(reactor, rest);
      }
      await reactor.run();
      return 0;
    },
  },
  web: webCommand,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function help(): string {
  const lines = Object.entries(subcommands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `Usage: torsion COMMAND [OPTIONS]

Commands:
${lines.join('\n')}

Options:
  -h, --help      show this help (COMMAND --help for a command's)
  -v, --version   print the version`;
}

/** Runs the CLI with `argv` (without `node` and the script). Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') {
    console.log(help());
    return first === undefined ? 2 : 0;
  }
  if (first === '-v' || first === '--version') {
    console.log(version());
    return 0;
  }
  const command = subcommands[first];
  if (command === undefined) {
    console.error(`torsion: unknown command '${first}'\n\n${help()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    console.error(`torsion ${first}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
