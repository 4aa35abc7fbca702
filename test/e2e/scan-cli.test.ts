import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { appLayersDir, bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// `patchd scan` and advisory-driven `patchd patch` from the outside: a real
// registry, an image of real packages (bookworm + pip + npm + go build
// layers), the OSV fixture set, and the real PyPI and npm registry for the
// library planner's "does that version exist" checks.

const repoRoot = new URL('../..', import.meta.url).pathname;
const osv = join(repoRoot, 'fixtures/osv');
let registry: RunningRegistry;
let work: string;
let image: string;

const patchd = (args: string[], opts: { allowFail?: boolean } = {}) =>
  run('npx', ['--no-install', 'patchd', ...args], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' }, ...(opts.allowFail ? { allowFailure: true } : {}) });

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'patchd-scan-e2e-'));
  const apps = await appLayersDir();
  await pushRootfsImage({
    tarPath: await bookwormRootfsTar(), extraLayers: ['python.tar', 'node.tar', 'go.tar'].map((t) => join(apps, t)),
    registryHost: registry.host, repository: 'fixtures/apps', tag: 'v1',
  });
  image = `${registry.host}/fixtures/apps:v1`;
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface ScanJson { results: { platform: string; os: { id: string }; packages: { name: string; purl: string }[]; findings: { id: string; source: string; package: { name: string; version: string; path: string; purl: string }; fixedVersions: string[] }[] }[] }

test('scan --format json: OS and library findings from the OSV records, with purls and paths', async () => {
  const { stdout } = await patchd(['scan', '-i', image, '--advisories', osv, '--format', 'json']);
  const out = JSON.parse(stdout) as ScanJson;
  assert.equal(out.results.length, 1);
  const r = out.results[0]!;
  assert.equal(r.os.id, 'debian');
  assert.ok(r.packages.length > 150, `${r.packages.length} packages`);
  const ids = (name: string) => r.findings.filter((f) => f.package.name === name).map((f) => f.id).sort();
  assert.equal(ids('libssl3').length, 12);
  assert.deepEqual(ids('minimist'), ['GHSA-vh95-rmgr-6w4m', 'GHSA-xvch-5gv4-984h']);
  assert.deepEqual(ids('golang.org/x/text'), ['GO-2021-0113', 'GO-2022-1059']);
  assert.equal(ids('urllib3').length, 6, 'three advisories, two installs (site-packages and venv)');
  const gx = r.findings.find((f) => f.package.name === 'golang.org/x/text')!;
  assert.deepEqual([gx.package.path, gx.package.purl, gx.source], ['usr/local/bin/hello', 'pkg:golang/golang.org/x/text@v0.3.6', 'osv']);
  assert.ok(r.findings.every((f) => f.source === 'osv'));
});

test('scan --format table and sarif', async () => {
  const table = (await patchd(['scan', '-i', image, '--advisories', osv, '--format', 'table'])).stdout;
  assert.match(table.split('\n')[0]!, /fixtures\/apps:v1@sha256:[0-9a-f]{64} \(single, Debian GNU\/Linux 12 \(bookworm\)\): \d+ packages, \d+ findings/);
  assert.match(table, /^PACKAGE +INSTALLED +VULNERABILITY +SEVERITY +FIXED IN +WHERE$/m);
  assert.match(table, /^minimist +0\.0\.8 +GHSA-xvch-5gv4-984h +CRITICAL +0\.2\.4, 1\.2\.6 +npm srv\/app\/node_modules\/minimist\/package\.json$/m);
  const sarif = JSON.parse((await patchd(['scan', '-i', image, '--advisories', osv, '--format', 'sarif'])).stdout) as { version: string; runs: { tool: { driver: { name: string; rules: { id: string }[] } }; results: { ruleId: string; level: string }[] }[] };
  assert.equal(sarif.version, '2.1.0');
  const json = JSON.parse((await patchd(['scan', '-i', image, '--advisories', osv, '--format', 'json'])).stdout) as ScanJson;
  assert.equal(sarif.runs[0]!.results.length, json.results[0]!.findings.length);
  assert.equal(sarif.runs[0]!.tool.driver.rules.length, new Set(json.results[0]!.findings.map((f) => f.id)).size);
  assert.ok(sarif.runs[0]!.results.some((x) => x.ruleId === 'GHSA-xvch-5gv4-984h' && x.level === 'error'));
});

test('scan without advisory data: a Debian image gets "newer version in its repositories" findings', async () => {
  const out = JSON.parse((await patchd(['scan', '-i', image, '--format', 'json'])).stdout) as ScanJson;
  const updates = out.results[0]!.findings.filter((f) => f.source === 'repository');
  assert.ok(updates.some((f) => f.package.name === 'libssl3' && f.fixedVersions[0] === '3.0.22-1~deb12u2'), JSON.stringify(updates.map((f) => f.package.name)));
  assert.ok(updates.some((f) => f.package.name === 'tzdata'));
  assert.ok(out.results[0]!.findings.every((f) => f.source === 'repository'), 'no advisories, no library findings');
});

test('patch --dry-run with OSV data: OS upgrades only for findings; library plan by the seeds\' rules, checked against PyPI and npm', async () => {
  const { stdout } = await patchd(['patch', '-i', image, '--dry-run', '--advisories', osv, '--pkg-types', 'os,library', '--cache-dir', join(work, 'cache')]);
  assert.match(stdout, /^libssl3 3\.0\.20-1~deb12u2 -> 3\.0\.22-1~deb12u2 {2}\(DEBIAN-CVE-/m);
  assert.match(stdout, /^libexpat1 2\.5\.0-1\+deb12u2 -> 2\.5\.0-1\+deb12u\d+ {2}\(DEBIAN-CVE-/m);
  assert.doesNotMatch(stdout, /^tzdata /m, 'no advisory names tzdata: with advisory data, it is not upgraded');
  assert.match(stdout, /^urllib3 \(pypi, usr\/local\/lib\/python3\.11\/site-packages\) 1\.26\.5 -> 1\.26\.19 {2}\(GHSA-/m);
  assert.match(stdout, /^urllib3 \(pypi, opt\/app\/venv\/lib\/python3\.11\/site-packages\) 2\.0\.5 -> 2\.0\.7 {2}\(/m, 'patch level: 2.2.2 is a minor bump');
  assert.match(stdout, /^not patched: urllib3 2\.0\.5 \(pypi\): needs 2\.2\.2, a bigger change than --library-patch-level patch allows$/m);
  const certifi = /^certifi \(pypi, [^)]+\) 2022\.12\.7 -> (\S+) {2}\(GHSA-xqr8-7jwr-rhp7\)$/m.exec(stdout);
  assert.ok(certifi, stdout);
  const latest = JSON.parse((await run('curl', ['-sf', 'https://pypi.org/pypi/certifi/json'])).stdout).info.version as string;
  assert.equal(certifi[1], latest, 'certifi goes to the latest release');
  assert.match(stdout, /^not patched: requests 2\.25\.1 \(pypi\): needs 2\.31\.0, a bigger change than --library-patch-level patch allows$/m);
  assert.match(stdout, /^not patched: lodash 4\.17\.20 \(npm\): direct dependency of srv\/app\/package\.json/m);
  assert.match(stdout, /^not patched: minimist 0\.0\.8 \(npm\): needs 0\.2\.4, a bigger change than/m);
  assert.match(stdout, /^not patched: golang\.org\/x\/text v0\.3\.6 \(go\): compiled into usr\/local\/bin\/hello/m);
  assert.match(stdout, /dry run: nothing pushed/);

  const minor = (await patchd(['patch', '-i', image, '--dry-run', '--advisories', osv, '--pkg-types', 'library', '--library-patch-level', 'minor', '--cache-dir', join(work, 'cache')])).stdout;
  assert.match(minor, /^minimist \(npm, srv\/app\) 0\.0\.8 -> 0\.2\.4 {2}\(GHSA-vh95-rmgr-6w4m, GHSA-xvch-5gv4-984h\)$/m);
  assert.match(minor, /^urllib3 \(pypi, opt\/app\/venv\/lib\/python3\.11\/site-packages\) 2\.0\.5 -> 2\.2\.2 {2}/m);
  assert.doesNotMatch(minor, /^libssl3 /m, '--pkg-types library leaves OS packages alone');
});

test('library upgrades are installed in-process, in one added layer, without BuildKit; usage errors exit 2', async () => {
  const patched = await patchd(['patch', '-i', image, '--advisories', osv, '--pkg-types', 'library', '--cache-dir', join(work, 'cache')]);
  assert.match(patched.stdout, /^urllib3 \(pypi, usr\/local\/lib\/python3\.11\/site-packages\) 1\.26\.5 -> 1\.26\.19 {2}\(GHSA-/m);
  assert.match(patched.stdout, /^not patched: lodash 4\.17\.20 \(npm\): direct dependency of srv\/app\/package\.json/m);
  assert.match(patched.stdout, /^patched .*fixtures\/apps:v1 -> .*fixtures\/apps:v1-patched \(sha256:[0-9a-f]{64}\)$/m);
  const layers = async (ref: string) => (JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/apps:${ref}`])).stdout) as { layers: unknown[] }).layers.length;
  assert.equal(await layers('v1-patched'), (await layers('v1')) + 1, 'every library fix lands in one patch layer');
  const usage = await patchd(['patch', '-i', image, '--library-patch-level', 'minor'], { allowFail: true });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--library-patch-level needs --pkg-types library/);
  const badFormat = await patchd(['scan', '-i', image, '--format', 'xml'], { allowFail: true });
  assert.equal(badFormat.code, 2);
  assert.match(badFormat.stderr, /--format takes table, json, sarif or cyclonedx/);
});
