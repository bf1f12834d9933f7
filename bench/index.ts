/**
 * `npm run bench`: runs every benchmark in one process, side by side with
 * its peer, and prints the figures and ratios.
 */

import { advantage, type BenchResult } from './common.js';

type BenchModule = { run(): Promise<BenchResult[]> };

const modules: [string, () => Promise<BenchModule>][] = [
  ['deferred', () => import('./deferred.js')],
  ['timers', () => import('./timers.js')],
  ['echo', () => import('./echo.js')],
  ['lines', () => import('./lines.js')],
  ['amp', () => import('./amp.js')],
  ['http-parser', () => import('./http-parser.js')],
  ['http', () => import('./http.js')],
  ['websocket', () => import('./websocket.js')],
  ['app-flow', () => import('./app-flow.js')],
];

function format(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

const only = process.argv.slice(2);
let missed = 0;
for (const [name, load] of modules) {
  if (only.length > 0 && !only.includes(name)) continue;
  const results = await (await load()).run();
  for (const r of results) {
    const ratio = advantage(r);
    const verdict =
      r.target === undefined ? '' : ratio >= r.target ? '  ok' : `  BELOW TARGET ${r.target}x`;
    if (r.target !== undefined && ratio < r.target) missed++;
    console.log(
      `${r.name.padEnd(44)} torsion ${format(r.torsion).padStart(14)} ${r.unit.padEnd(9)} ` +
        `${r.peerName.padEnd(24)} ${format(r.peer).padStart(14)}   ${ratio.toFixed(2)}x${verdict}`,
    );
  }
}
if (missed > 0) console.log(`${missed} result(s) below target`);
