import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// The spine, end to end with a real oracle: a genuinely outdated bookworm image
// in a real registry, patched by `npx patchd patch`, unpacked by umoci and
// compared file by file with the same root upgraded by the real apt-get.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let work: string;
let pushed: { digest: string; layerDigest: string };

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'patchd-e2e-'));
  pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function skopeoRaw(ref: string): Promise<{ layers: { digest: string }[]; annotations?: Record<string, string> }> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return JSON.parse(stdout);
}

test('dry run prints the plan and pushes nothing', async () => {
  const image = `${registry.host}/fixtures/bookworm:main`;
  const { stdout } = await run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--dry-run', '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(stdout, /tzdata 2026b-0\+deb12u1 -> /);
  assert.match(stdout, /dry run: nothing pushed/);
  const tags = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm`]);
  assert.deepEqual(JSON.parse(tags.stdout).Tags, ['main']);
});

test('npx patchd patch equals apt-get upgrade, file for file', { timeout: 20 * 60_000 }, async () => {
  const image = `${registry.host}/fixtures/bookworm:main`;
  const patch = await run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(patch.stdout, /patched .* -> .*:main-patched \(sha256:[0-9a-f]{64}\)/);

  // Independent checks: skopeo reads the manifest, umoci unpacks the image.
  const manifest = await skopeoRaw(`${registry.host}/fixtures/bookworm:main-patched`);
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, 'original layer unchanged');
  assert.equal(manifest.annotations?.['org.opencontainers.image.base.digest'], pushed.digest);

  const layout = join(work, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${layout}:patched`]);
  const bundle = join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);

  const oracle = await aptUpgradedRoot();
  const differences = await compareTrees(join(bundle, 'rootfs'), oracle.upgradedRoot, { ignore: volatilePaths });
  assert.deepEqual(differences, [], `patched root differs from apt-get upgrade:\n${differences.slice(0, 40).map((d) => JSON.stringify(d)).join('\n')}`);

  // The upgraded binaries run, and report what apt's result reports.
  for (const command of [['openssl', 'version'], ['apt-get', '--version']]) {
    const ours = await run('chroot', [join(bundle, 'rootfs'), ...command]);
    const apts = await run('chroot', [oracle.upgradedRoot, ...command]);
    assert.equal(ours.stdout.split('\n')[0], apts.stdout.split('\n')[0]);
  }
});

test('with a Trivy report, only the listed fixes (and what they need) are planned; fixes the archive lacks are reported', async () => {
  const report = join(work, 'report.json');
  await writeFile(report, JSON.stringify({
    SchemaVersion: 2, ArtifactName: 'fixtures/bookworm:main',
    Results: [{ Target: 'fixtures/bookworm:main (debian 12)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: [
      { VulnerabilityID: 'TEST-0001', PkgName: 'libexpat1', InstalledVersion: '2.5.0-1+deb12u2', FixedVersion: '2.5.0-1+deb12u3', Severity: 'HIGH' },
      { VulnerabilityID: 'TEST-0002', PkgName: 'openssl', InstalledVersion: '3.0.20-1~deb12u2', FixedVersion: '99.0.0-1', Severity: 'LOW' },
    ] }],
  }));
  // -t: a tag with no patch under it yet; against main-patched (the first test's full patch) nothing would be new.
  const { stdout } = await run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/fixtures/bookworm:main`, '-r', report, '--dry-run', '-t', 'main-report', '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(stdout, /^libexpat1 2\.5\.0-1\+deb12u2 -> \S+ {2}\(TEST-0001\)$/m, stdout);
  assert.doesNotMatch(stdout, /^tzdata /m);
  assert.match(stdout, /^not available: openssl \(needs 99\.0\.0-1\): newest available is /m, stdout);

  // Against the patch already under main-patched, which has every upgrade: a real run would push nothing, and the dry run says so.
  const against = await run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/fixtures/bookworm:main`, '-r', report, '--dry-run', '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(against.stdout, /up to date: \S+:main-patched already has every fix/, against.stdout);
  assert.match(against.stdout, /^not available: openssl \(needs 99\.0\.0-1\)/m, `what no patch can fix is still said:\n${against.stdout}`);
});

test('an image already up to date: nothing to patch, exit 0, nothing pushed', async () => {
  const oracle = await aptUpgradedRoot();
  const tar = join(work, 'upgraded.tar');
  await run('tar', ['--numeric-owner', '-C', oracle.upgradedRoot, '-cf', tar, '.']);
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/current', tag: 'main' });
  const { stdout } = await run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/fixtures/current:main`, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(stdout, /nothing to patch in .*: it is up to date/);
  const tags = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/current`]);
  assert.deepEqual(JSON.parse(tags.stdout).Tags, ['main']);
});

test('patching the patched tag again re-patches its original: nothing new, so nothing pushed', async () => {
  const before = await skopeoRaw(`${registry.host}/fixtures/bookworm:main-patched`);
  const result = await run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/fixtures/bookworm:main-patched`, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(result.stdout, /nothing pushed for .*: up to date: .*:main-patched already has every fix/, 'up to date, with the reason');
  const after = await skopeoRaw(`${registry.host}/fixtures/bookworm:main-patched`);
  assert.deepEqual(after, before, 'the patched tag is unchanged');
});
