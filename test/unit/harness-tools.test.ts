import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { CommandFailedError, freePort, run, tmpDir } from '../harness/tools.js';

test('run returns stdout, stderr and code, feeding input on stdin', async () => {
  const result = await run('sh', ['-c', 'cat; echo to-stderr >&2'], { input: 'hello' });
  assert.deepEqual(result, { stdout: 'hello', stderr: 'to-stderr\n', code: 0 });
});

test('run throws with the command and its stderr on a non-zero exit', async () => {
  await assert.rejects(run('sh', ['-c', 'echo broken pipe dream >&2; exit 3']), (err: unknown) => {
    assert.ok(err instanceof CommandFailedError);
    assert.equal(err.result.code, 3);
    assert.match(err.message, /^sh -c .*: exit code 3\nbroken pipe dream/);
    return true;
  });
});

test('run with allowFailure returns the failing result', async () => {
  const result = await run('sh', ['-c', 'exit 7'], { allowFailure: true });
  assert.equal(result.code, 7);
});

test('run honours cwd and env, and fails clearly for a missing program', async () => {
  const dir = await tmpDir('patchd-tools');
  try {
    const result = await run('sh', ['-c', 'pwd; echo $ONLY_VAR'], { cwd: dir.path, env: { ONLY_VAR: 'x', PATH: '/usr/bin:/bin' } });
    assert.equal(result.stdout, `${dir.path}\nx\n`);
    await assert.rejects(run('/nonexistent/tool', []), /could not start/);
  } finally {
    await dir.remove();
  }
});

test('run kills a child that outlives its timeout', async () => {
  const started = Date.now();
  await assert.rejects(run('sleep', ['30'], { timeoutMs: 200 }), /timed out after 200 ms/);
  assert.ok(Date.now() - started < 5_000);
});

test('freePort gives a port that can be listened on', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('tmpDir makes a fresh directory that remove() deletes with its contents', async () => {
  const dir = await tmpDir('patchd-tools');
  assert.match(dir.path, /patchd-tools-[^/]+$/);
  await writeFile(join(dir.path, 'file'), 'x');
  await dir.remove();
  await assert.rejects(stat(dir.path), { code: 'ENOENT' });
  await dir.remove();
});
