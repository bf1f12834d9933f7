import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

test('npm run build emits dist/ and every subpath export loads in plain Node', async () => {
  await run('npm', ['run', '--silent', 'build']);
  const script = `
    const main = await import('torsion');
    const reactor = await import('torsion/reactor');
    const protocols = await import('torsion/protocols');
    const testing = await import('torsion/testing');
    const web = await import('torsion/web');
    console.log(JSON.stringify([
      typeof main.Deferred, typeof main.reactor.callLater, typeof main.Protocol,
      typeof reactor.NodeReactor, typeof protocols.Factory, typeof testing.MemoryReactor,
      typeof web.Site, typeof main.Site,
    ]));`;
  const out = await run(process.execPath, ['--input-type=module', '-e', script]);
  assert.deepEqual(JSON.parse(out), [
    'function',
    'function',
    'function',
    'function',
    'function',
    'function',
    'function',
    'function',
  ]);
});
