import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/torsion.js', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/cli-module.ts', import.meta.url));

function torsion(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the torsion command', () => {
  test('--help lists the commands; --version prints the version', async () => {
    const help = await torsion('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: torsion COMMAND/);
    assert.match(help.stdout, /run\s+load a module/);
    const version = await torsion('--version');
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });

  test('an unknown command or a missing argument exits 2 with a message', async () => {
    const unknown = await torsion('frobnicate');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const missing = await torsion('run');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /MODULE is required/);
    const help = await torsion('run', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: torsion run MODULE/);
  });

  test('run loads a TypeScript module, runs the reactor and exits when it stops', async () => {
    const result = await torsion('run', fixture, 'a', 'b');
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'running with ["a","b"]\nstopped\n');
  });

  test('run reports a module that cannot be loaded', async () => {
    const result = await torsion('run', 'test/fixtures/does-not-exist.ts');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /torsion run: .*does-not-exist/);
  });
});
