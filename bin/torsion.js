#!/usr/bin/env node
// The `torsion` command. Users' modules may be TypeScript, so the CLI runs
// through tsx's loader, registered here before anything else is imported.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
