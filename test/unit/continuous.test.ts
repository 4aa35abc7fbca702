import assert from 'node:assert/strict';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { advisoryFiles, contentHashes, describeChanges, fingerprint, revisionOf } from '../../src/continuous/advisory-files.js';
import { enqueueReevaluations, startContinuous } from '../../src/continuous/continuous.js';
import { silentLogger } from '../../src/lib/log.js';
import { OsvDatabase } from '../../src/scan/sources/osv.js';
import { newFixes } from '../../src/continuous/new-fixes.js';
import { loadConfig } from '../../src/config.js';
import type { PatchOutcome } from '../../src/pipeline/types.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { tmpDir } from '../harness/tools.js';

const work = await tmpDir('patchd-continuous-unit');
after(() => work.remove());

const pkg = (name: string, to: string, reasons: string[]) => ({ name, architecture: 'amd64', from: '1', to, reasons, executor: 'deb-inprocess' as const, candidate: {} as never });
const outcome = (platforms: PatchOutcome['platforms']): PatchOutcome => ({ status: 'dry-run', source: 'h/app:v1', sourceDigest: 'sha256:0', platforms, bytesDownloaded: 0 });

test('newFixes: a package or library at a version the earlier patch did not install is new; the same plan is not', async () => {
  const previous = { platforms: [{ platform: 'linux/amd64', packages: [{ name: 'libexpat1', to: '2.5.0-1+deb12u5' }], libraries: [{ ecosystem: 'pypi', name: 'urllib3', path: 'a/METADATA', to: '2.2.2' }] }] };
  const same = outcome([{ platform: 'linux/amd64', failed: [], plan: { packages: [pkg('libexpat1', '2.5.0-1+deb12u5', ['CVE-1'])], heldBack: [], unavailable: [], libraries: [{ ecosystem: 'pypi', name: 'urllib3', from: '2.0', to: '2.2.2', path: 'a/METADATA', reasons: ['GHSA-1'], executor: 'buildkit' }] } }]);
  assert.deepEqual(newFixes(previous, same), [], 'the same plan: nothing new');
  const more = outcome([{ platform: 'linux/amd64', failed: [], plan: { packages: [pkg('libexpat1', '2.5.0-1+deb12u5', ['CVE-1']), pkg('libssl3', '3.0.22', ['CVE-2'])], heldBack: [], unavailable: [] } }]);
  assert.deepEqual(newFixes(previous, more), ['libssl3 1 -> 3.0.22 (CVE-2)'], 'a new package');
  const newer = outcome([{ platform: 'linux/amd64', failed: [], plan: { packages: [pkg('libexpat1', '2.5.0-1+deb12u6', ['CVE-3'])], heldBack: [], unavailable: [] } }]);
  assert.equal(newFixes(previous, newer).length, 1, 'the same package at a newer version');
  const otherPlatform = outcome([{ platform: 'linux/arm64', failed: [], plan: { packages: [pkg('libexpat1', '2.5.0-1+deb12u5', ['CVE-1'])], heldBack: [], unavailable: [] } }]);
  assert.equal(newFixes(previous, otherPlatform).length, 1, 'compared per platform');
});

test('newFixes: where the dry run cannot plan (rpm through BuildKit), a fixable finding the earlier job did not see is new', async () => {
  const finding = (id: string, fixed: string[]) => ({ id, aliases: [], fixedVersions: fixed, severity: 'HIGH' as const, source: 'osv' as const, package: { name: 'openssl-libs', version: '3.0.7', ecosystem: 'rpm' } as never });
  const previous = { platforms: [{ platform: 'linux/amd64', findings: [{ id: 'ALSA-1' }] }] };
  const trial = (findings: ReturnType<typeof finding>[]) => outcome([{ platform: 'linux/amd64', failed: [], findings, skipped: 'dry run: the BuildKit executor would upgrade openssl-libs with the image\'s package manager', plan: { packages: [], heldBack: [], unavailable: [] } }]);
  assert.deepEqual(newFixes(previous, trial([finding('ALSA-1', ['3.0.7-27'])])), [], 'seen before');
  assert.deepEqual(newFixes(previous, trial([finding('ALSA-1', ['3.0.7-27']), finding('ALSA-2', ['3.0.7-28']), finding('ALSA-3', [])])), ['ALSA-2 in openssl-libs 3.0.7'], 'new and fixable only');
});

test('advisory files: touching changes the fingerprint, not the revision; a new record changes both and is named', async () => {
  const dir = join(work.path, 'osv');
  await mkdir(join(dir, 'Debian'), { recursive: true });
  await writeFile(join(dir, 'Debian', 'A.json'), '{"id":"A"}');
  await writeFile(join(dir, 'notes.txt'), 'not read by OsvDatabase');
  const files = await advisoryFiles([dir]);
  assert.deepEqual([...files.keys()], [join(dir, 'Debian', 'A.json')], 'the files OsvDatabase reads');
  const hashes = await contentHashes(files);
  const later = new Date(Date.now() + 10_000);
  await utimes(join(dir, 'Debian', 'A.json'), later, later);
  const touched = await advisoryFiles([dir]);
  assert.notEqual(fingerprint(touched), fingerprint(files), 'a touch is seen by the cheap poll');
  assert.equal(revisionOf(await contentHashes(touched)), revisionOf(hashes), 'but is not a new revision');
  await writeFile(join(dir, 'Debian', 'B.json'), '{"id":"B"}');
  const added = await contentHashes(await advisoryFiles([dir]));
  assert.notEqual(revisionOf(added), revisionOf(hashes), 'a new record is a new revision');
  assert.equal(describeChanges(hashes, added), 'added Debian/B.json', 'named in the reason');
  assert.deepEqual([...(await advisoryFiles([join(work.path, 'absent')])).values()], ['missing'], 'a configured path that is gone is a state too');
});

test('enqueueReevaluations: every patched image of a configured, allowed registry; advisory changes skip Harbor-scanned registries', async () => {
  const config = loadConfig({}, `
registries:
  local: { url: "http://127.0.0.1:5000", policy: { exclude: ["private/**"] } }
  harbor: { url: "https://harbor.example.com", scanner: harbor }
`);
  const queue = openSqliteQueue(':memory:');
  const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
  const patched = async (registry: string, repository: string, n: number) => {
    const { id } = (await queue.enqueue({ registry, repository, digest: digest(n), tag: 'v1', source: 'test', trigger: 'push' }));
    await queue.claim(new Date(Date.now() + 60_000));
    await queue.succeed(id, 'succeeded', { status: 'patched', digest: digest(100 + n), platforms: [] });
  };
  await patched('local', 'app', 1);
  await patched('local', 'private/secret', 2);
  await patched('harbor', 'library/app', 3);
  await patched('gone', 'app', 4);
  const run = { trigger: 'advisories-changed' as const, revision: 'osv:1', reason: 'OSV advisories changed' };
  const first = await enqueueReevaluations(queue, config, run);
  assert.equal(first.length, 1, 'only local/app: excluded, Harbor-scanned and unconfigured registries are left alone');
  assert.deepEqual((await enqueueReevaluations(queue, config, run)).map((j) => j.created), [false], 'the same revision again: no new job');
  assert.equal((await enqueueReevaluations(queue, config, { trigger: 'schedule', revision: 'schedule:1', reason: 'schedule' })).length, 2, 'a schedule re-evaluates Harbor-scanned images too');
});

test('advisories changed while patchd was stopped: re-evaluated at start, once; unchanged: nothing', async () => {
  const dir = join(work.path, 'osv-restart');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'A.json'), JSON.stringify({ id: 'A', affected: [] }));
  const config = loadConfig({}, 'continuous: { pollSeconds: 3600 }\nregistries:\n  local: { url: "http://127.0.0.1:5000" }\n');
  const queue = openSqliteQueue(':memory:');
  const { id } = (await queue.enqueue({ registry: 'local', repository: 'app', digest: `sha256:${'1'.repeat(64)}`, tag: 'v1', source: 'test', trigger: 'push' }));
  await queue.claim();
  await queue.succeed(id, 'succeeded', { status: 'patched', platforms: [] });
  let woken = 0;
  const start = async () => {
    const c = await startContinuous({ config, queue, logger: silentLogger(), paths: [dir], osv: await OsvDatabase.load([dir]), onEnqueued: () => { woken++; } });
    c.stop();
  };
  const reevaluations = async () => (await queue.list()).filter((j) => j.trigger === 'advisories-changed');
  await start();
  assert.equal((await reevaluations()).length, 0, 'first start: the revision is only recorded');
  await start();
  assert.equal((await reevaluations()).length, 0, 'unchanged since: nothing');
  await writeFile(join(dir, 'B.json'), JSON.stringify({ id: 'B', affected: [] }));
  await start();
  assert.equal((await reevaluations()).length, 1, 'changed while stopped: one re-evaluation');
  assert.match((await reevaluations())[0]!.reason ?? '', /changed while patchd was stopped/, 'and why');
  assert.equal(woken, 1, 'the worker is woken');
  await start();
  assert.equal((await reevaluations()).length, 1, 'acted on: not again at the next start');
});
