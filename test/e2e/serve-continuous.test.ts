import assert from 'node:assert/strict';
import { copyFile, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// Continuous patching in `patchd serve`, end to end: a real docker-registry
// notifies patchd of a push, which is patched for the one OSV record there is.
// Then, with no webhook, an OSV record for another package of the image is
// added: patchd notices within its poll, patches the original again and moves
// `main-patched` to a new digest with both fixes. Touching the records changes
// nothing; a scheduled re-evaluation finds nothing new and pushes nothing.

const repoRoot = new URL('../..', import.meta.url).pathname;
const debianRecords = join(repoRoot, 'fixtures/osv/Debian');
const expatRecord = 'DEBIAN-CVE-2026-102633.json'; // expat, fixed in 2.5.0-1+deb12u5 (the image has deb12u2)
const opensslRecord = 'DEBIAN-CVE-2026-84782.json'; // openssl, fixed in 3.0.22-1~deb12u2 (the image has 3.0.20-1~deb12u2)

let work: TempDir;
let registry: RunningRegistry;
let registryPort: number;
let patchd: RunningPatchd | undefined;
let osvDir: string;
let original: string;

interface Job {
  id: string; tag?: string; digest?: string; status: string; trigger: string; revision?: string; reason?: string;
  result?: {
    status?: string; target?: string; digest?: string;
    platforms?: { packages?: { name: string; to: string; reasons: string[] }[] }[];
    reevaluation?: { reason?: string; newFixes?: string[]; previousJob?: string };
  };
}

const startPatchd = (continuous: string) => startPatchdServe({
  dir: work.path,
  config: () => [
    `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
    'worker: { concurrency: 1, retryBaseMs: 500 }',
    `advisories: { osv: [${JSON.stringify(osvDir)}] }`,
    `continuous: ${continuous}`,
    'registries:',
    '  local:',
    `    url: http://127.0.0.1:${registryPort}`,
    '    webhookSecret: s3cret',
  ],
  port: patchdPort,
  logs: 'inherit',
});
let patchdPort: number;

before(async () => {
  work = await tmpDir('patchd-continuous');
  osvDir = join(work.path, 'osv');
  await mkdir(osvDir);
  await copyFile(join(debianRecords, expatRecord), join(osvDir, expatRecord));
  registryPort = await freePort();
  patchdPort = await freePort();
  patchd = await startPatchd('{ pollSeconds: 1 }');
  registry = await startRegistry({ port: registryPort, notifications: { url: `${patchd.url}/webhooks/distribution`, headers: { Authorization: ['Bearer s3cret'] } } });
});

after(async () => {
  await patchd?.stop();
  await registry?.stop();
  await work?.remove();
});

const jobs = async (): Promise<Job[]> => ((await (await fetch(`${patchd!.url}/jobs`)).json()) as { jobs: Job[] }).jobs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, found: (all: Job[]) => Job | undefined, seconds = 600): Promise<Job> {
  for (let i = 0; i < seconds * 2; i++) {
    const all = await jobs();
    const job = found(all);
    if (job) return job;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await jobs())}`);
}
const finished = (j: Job) => j.status === 'succeeded' || j.status === 'skipped' || j.status === 'dead';
const patchedTag = async () => (await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm:main-patched`])).stdout;
const digestOf = async () => `sha256:${(await run('sh', ['-c', `skopeo inspect --raw --tls-verify=false docker://${registry.host}/fixtures/bookworm:main-patched | sha256sum`])).stdout.slice(0, 64)}`;
const planned = (job: Job) => (job.result?.platforms ?? []).flatMap((p) => p.packages ?? []).map((p) => p.name).sort();

test('a push is patched for the one advisory there is', { timeout: 15 * 60_000 }, async () => {
  original = (await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' })).digest;
  const job = await waitFor('the push job', (all) => all.find((j) => j.trigger === 'push' && j.digest === original && finished(j)));
  assert.equal(job.status, 'succeeded', `push job: ${JSON.stringify(job)}`);
  assert.equal(job.digest, original, 'the pushed original');
  assert.deepEqual(planned(job), ['libexpat1'], 'only expat has an advisory');
  assert.equal(job.result?.digest, await digestOf(), 'main-patched is the job\'s result');
});

test('an OSV record added on disk (no webhook) patches the original again: a new digest under the same tag, with both fixes', { timeout: 15 * 60_000 }, async () => {
  const first = (await jobs()).find((j) => j.trigger === 'push' && j.digest === original)!;
  const before = await digestOf();
  await copyFile(join(debianRecords, opensslRecord), join(osvDir, opensslRecord));
  const job = await waitFor('a re-evaluation for the new record', (all) => all.find((j) => j.trigger === 'advisories-changed' && finished(j)), 600);
  assert.equal(job.status, 'succeeded', `re-evaluation: ${JSON.stringify(job)}`);
  assert.equal(job.digest, original, 'the original is patched again, not the patched image');
  assert.equal(job.tag, 'main', 'under its tag');
  assert.match(job.reason ?? '', new RegExp(`OSV advisories changed \\(added .*${opensslRecord}`), '/jobs says why: the record added');
  assert.match(job.revision ?? '', /^osv:[0-9a-f]{16}$/, 'the advisory revision it ran for');
  assert.equal(job.result?.reevaluation?.previousJob, first.id, 'compared with the push job\'s patch');
  assert.ok(job.result?.reevaluation?.newFixes?.some((f) => f.startsWith('libssl3 ') && f.includes('DEBIAN-CVE-2026-84782')), `new fixes: ${JSON.stringify(job.result?.reevaluation)}`);
  assert.deepEqual(planned(job).filter((n) => n === 'libexpat1' || n === 'libssl3'), ['libexpat1', 'libssl3'], 'both fixes are in the new patch');
  const after = await digestOf();
  assert.notEqual(after, before, 'main-patched moved');
  assert.equal(job.result?.digest, after, 'to the re-evaluation\'s result');
  const manifest = JSON.parse(await patchedTag()) as { layers: unknown[]; annotations?: Record<string, string> };
  assert.equal(manifest.layers.length, 2, 'one patch layer on the original\'s one layer');
  assert.equal(manifest.annotations?.['org.opencontainers.image.base.digest'], original, 'its base is the original');
  // The new patch really carries both fixes: dpkg's status in the image says so.
  const layout = join(work.path, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/fixtures/bookworm:main-patched`, `oci:${layout}:patched`]);
  await run('umoci', ['unpack', '--image', `${layout}:patched`, join(work.path, 'bundle')]);
  const status = (await run('chroot', [join(work.path, 'bundle/rootfs'), 'dpkg-query', '-W', '-f', '${Package} ${Version}\\n', 'libexpat1', 'libssl3'])).stdout;
  assert.match(status, /^libexpat1 2\.5\.0-1\+deb12u5$/m, status);
  assert.match(status, /^libssl3 3\.0\.22-1~deb12u2$/m, status);
});

test('touching the records without changing them re-evaluates nothing and pushes nothing', { timeout: 5 * 60_000 }, async () => {
  const before = { jobs: (await jobs()).length, digest: await digestOf() };
  const later = new Date(Date.now() + 5000);
  for (const record of [expatRecord, opensslRecord]) await utimes(join(osvDir, record), later, later);
  await sleep(6000); // several polls
  const all = await jobs();
  assert.equal(all.length, before.jobs, `no new job: ${JSON.stringify(all.map((j) => [j.trigger, j.status]))}`);
  assert.equal(await digestOf(), before.digest, 'main-patched unchanged');
});

test('a scheduled re-evaluation (after a restart: the memory is in the job store) finds nothing new and pushes nothing', { timeout: 10 * 60_000 }, async () => {
  const before = await digestOf();
  await patchd!.stop();
  patchd = await startPatchd('{ pollSeconds: 1, intervalMinutes: 0.05 }');
  const job = await waitFor('a scheduled re-evaluation', (all) => all.find((j) => j.trigger === 'schedule' && finished(j)), 300);
  assert.equal(job.status, 'skipped', `scheduled job: ${JSON.stringify(job)}`);
  assert.equal(job.result?.status, 'up-to-date', 'nothing new');
  assert.match(job.result?.reevaluation?.reason ?? '', /nothing new to fix since job .*: nothing pushed \(up to date: .*main-patched already has every fix\)/, 'the result says why nothing was pushed');
  assert.match(job.reason ?? '', /scheduled re-evaluation \(every 0\.05 minutes\)/, '/jobs says it was the schedule');
  assert.equal(job.digest, original, 'the original was re-evaluated');
  assert.equal(await digestOf(), before, 'main-patched unchanged');
  assert.equal((await jobs()).filter((j) => j.trigger === 'advisories-changed').length, 1, 'the advisories did not change while patchd was stopped: no re-evaluation for them at start');
});

test('a record added while patchd is stopped is acted on at start', { timeout: 10 * 60_000 }, async () => {
  await patchd!.stop();
  // A record for a package the image does not have: a new revision, but nothing new to fix.
  await writeFile(join(osvDir, 'DEBIAN-TEST-ABSENT.json'), JSON.stringify({ id: 'DEBIAN-TEST-ABSENT', affected: [{ package: { ecosystem: 'Debian:12', name: 'no-such-package' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.0' }] }] }] }));
  const before = await digestOf();
  patchd = await startPatchd('{ pollSeconds: 1 }');
  const job = await waitFor('a re-evaluation at start', (all) => all.find((j) => j.trigger === 'advisories-changed' && /while patchd was stopped/.test(j.reason ?? '') && finished(j)), 300);
  assert.equal(job.status, 'skipped', `nothing new: ${JSON.stringify(job)}`);
  assert.equal(job.result?.status, 'up-to-date', 'up to date');
  assert.equal(await digestOf(), before, 'main-patched unchanged');
});
