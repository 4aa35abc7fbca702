import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { Agent } from 'undici';
import { silentLogger } from '../../src/lib/log.js';
import { createRegistryClient, type RegistryClient } from '../../src/oci/client.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference, type Reference } from '../../src/oci/reference.js';
import { patchImage, type PatchOutcome } from '../../src/pipeline/patch-image.js';
import { listReferrers, readReferrerDocument, referrersTag } from '../../src/publish/referrers.js';
import { OsvDatabase } from '../../src/scan/sources/osv.js';
import { cycloneDx16Errors } from '../harness/cyclonedx-schema.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { checkOpenVex } from '../harness/openvex-check.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// Evidence attached to a patched image, against a real CNCF distribution 2.8
// registry (no referrers API: the `sha256-<hex>` tag fallback): the bookworm
// fixture patched with the OSV fixture records, its OpenVEX document read by
// OpenVEX's reference implementation (go-vex) and held against a rescan of
// the patched image, its CycloneDX SBOM against the official 1.6 schema; and
// `patchd scan --format cyclonedx|json` from the outside.

const repoRoot = new URL('../..', import.meta.url).pathname;
const osvDir = join(repoRoot, 'fixtures/osv');
let registry: RunningRegistry;
let work: string;
let client: RegistryClient;
let dispatcher: Agent;
let repo: Reference;
let outcome: PatchOutcome;
const logger = silentLogger();

const patchd = (args: string[]) => run('node', [join(repoRoot, 'bin/patchd.js'), ...args], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' } });
const fetchJson = async (path: string, accept?: string) => {
  const res = await run('curl', ['-sf', ...(accept ? ['-H', `Accept: ${accept}`] : []), `${registry.url}${path}`]);
  return JSON.parse(res.stdout) as Record<string, unknown>;
};

interface ScanJson { results: { digest: string; packages: { name: string; version: string; purl: string; path: string }[]; findings: { id: string; source: string; package: { name: string; version: string }; fixedVersions: string[] }[] }[] }
interface Bom { specVersion: string; metadata: { component: { type: string; version?: string; purl?: string } }; components: { type: string; name: string; version?: string; purl?: string; properties?: { name: string; value: string }[] }[] }

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'patchd-evidence-'));
  dispatcher = new Agent({ connections: 8 });
  client = createRegistryClient({ logger, dispatcher });
  await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
  repo = { registry: registry.host, repository: 'fixtures/bookworm' };
  outcome = await patchImage(
    { client, dispatcher, logger, cacheDir: join(work, 'cache'), tmpDir: work },
    { image: parseReference(`${registry.host}/fixtures/bookworm:main`), advisories: { osv: await OsvDatabase.load([osvDir]) }, tagSuffix: '-patched', ignoreErrors: false, dryRun: false },
  );
});

after(async () => {
  await registry?.stop();
  await dispatcher?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the patch pushed its OpenVEX document and SBOM through the sha256-<hex> tag fallback', async () => {
  assert.equal(outcome.status, 'patched', `status ${outcome.status}`);
  const evidence = outcome.evidence;
  assert.ok(evidence && !evidence.error, `evidence: ${JSON.stringify(evidence)}`);
  assert.equal(evidence.vex?.via, 'tag-schema', 'distribution 2.8 has no referrers API');
  assert.equal(evidence.sbom?.length, 1, 'one SBOM for the one platform');

  // The registry really has no referrers API, and the fallback tag holds an index of both.
  const api = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${registry.url}/v2/fixtures/bookworm/referrers/${outcome.digest}`]);
  assert.equal(api.stdout, '404', 'the referrers API answers 404 on distribution 2.8');
  const tag = referrersTag(outcome.digest!);
  assert.equal(tag, outcome.digest!.replace(':', '-'), 'the tag is sha256-<hex>');
  const skopeo = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm:${tag}`])).stdout) as { mediaType: string; manifests: { digest: string; artifactType?: string }[] };
  assert.equal(skopeo.mediaType, MediaType.ociIndex, 'the fallback tag names an OCI index');
  assert.deepEqual(
    skopeo.manifests.map((m) => [m.artifactType, m.digest]).sort(),
    [[MediaType.cycloneDxJson, evidence.sbom[0]!.digest], [MediaType.openVex, evidence.vex.digest]].sort(),
    'the index lists the VEX and the SBOM, each with its artifactType',
  );
  const listed = await listReferrers(client, repo, outcome.digest!);
  assert.deepEqual(listed.map((m) => m.digest).sort(), skopeo.manifests.map((m) => m.digest).sort(), 'listReferrers reads the same index');
  assert.deepEqual((await listReferrers(client, repo, outcome.digest!, MediaType.openVex)).map((m) => m.digest), [evidence.vex.digest], 'filtered by artifactType');

  // Each artifact is an OCI 1.1 artifact manifest whose subject is the patched image.
  const patchedBytes = Buffer.byteLength((await run('curl', ['-sf', '-H', `Accept: ${MediaType.ociManifest}`, `${registry.url}/v2/fixtures/bookworm/manifests/${outcome.digest}`])).stdout);
  for (const [digest, type] of [[evidence.vex.digest, MediaType.openVex], [evidence.sbom[0]!.digest, MediaType.cycloneDxJson]] as const) {
    const m = await fetchJson(`/v2/fixtures/bookworm/manifests/${digest}`, MediaType.ociManifest) as { artifactType: string; config: { mediaType: string; size: number }; layers: { mediaType: string }[]; subject: { digest: string; size: number } };
    assert.equal(m.artifactType, type, `${digest}: artifactType`);
    assert.deepEqual([m.config.mediaType, m.config.size], [MediaType.ociEmpty, 2], `${digest}: the empty config`);
    assert.deepEqual(m.layers.map((l) => l.mediaType), [type], `${digest}: one layer, the document`);
    assert.equal(m.subject.digest, outcome.digest, `${digest}: subject is the patched image`);
    assert.equal(m.subject.size, patchedBytes, `${digest}: subject size`);
  }
});

test('the OpenVEX document is OpenVEX 0.2.0 to go-vex and names exactly the fixes a rescan of the patched image confirms', async () => {
  const vexRef = (await listReferrers(client, repo, outcome.digest!, MediaType.openVex))[0];
  assert.ok(vexRef, 'a VEX referrer');
  // The document as the registry serves it, read without patchd's client.
  const manifest = await fetchJson(`/v2/fixtures/bookworm/manifests/${vexRef.digest}`, MediaType.ociManifest) as { layers: { digest: string }[] };
  const raw = (await run('curl', ['-sf', `${registry.url}/v2/fixtures/bookworm/blobs/${manifest.layers[0]!.digest}`])).stdout;
  assert.equal(raw, (await readReferrerDocument(client, repo, vexRef)).toString('utf8'), 'readReferrerDocument returns the same bytes');
  const file = join(work, 'patchd.openvex.json');
  await writeFile(file, raw);
  const doc = JSON.parse(raw) as { '@context': string; '@id': string; author: string; timestamp: string; version: number; statements: { status: string }[] };
  assert.equal(doc['@context'], 'https://openvex.dev/ns/v0.2.0', '@context');
  assert.match(doc['@id'], /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, '@id is an IRI');
  assert.equal(doc.author, 'patchd', 'author');
  assert.equal(doc.version, 1, 'version');
  assert.ok(!Number.isNaN(Date.parse(doc.timestamp)), 'timestamp');
  assert.deepEqual([...new Set(doc.statements.map((s) => s.status))], ['fixed'], 'only fixed statements, nothing invented');

  const read = await checkOpenVex(file);
  assert.equal(read.latest, true, `go-vex reads ${read.context} as its current version`);
  assert.equal(read.statements.length, doc.statements.length, 'go-vex reads every statement');
  for (const s of read.statements) {
    assert.equal(s.invalid, undefined, `${s.vulnerability}: go-vex's Validate: ${s.invalid}`);
    assert.ok(s.products.length > 0 && s.products.every((p) => p.matches), `${s.vulnerability}: go-vex matches its own products and subcomponents`);
    for (const p of s.products) {
      assert.equal(p.id, `pkg:oci/bookworm@${encodeURIComponent(outcome.digest!)}?repository_url=${encodeURIComponent(`${registry.host}/fixtures/bookworm`)}`, `${s.vulnerability}: product is the patched manifest`);
      assert.ok(p.subcomponents.every((c) => c.startsWith('pkg:deb/debian/')), `${s.vulnerability}: subcomponents are deb purls: ${p.subcomponents.join(' ')}`);
    }
  }

  // Independently: scan the original and the patched image (from the registry) with the same OSV records.
  const scan = async (ref: string) => (JSON.parse((await patchd(['scan', '-i', ref, '--advisories', osvDir, '--format', 'json', '--no-updates'])).stdout) as ScanJson).results[0]!;
  const [before, afterPatch] = [await scan(`${registry.host}/fixtures/bookworm:main`), await scan(`${registry.host}/fixtures/bookworm@${outcome.digest}`)];
  const key = (f: { id: string; package: { name: string } }) => `${f.id} ${f.package.name}`;
  const remaining = new Set(afterPatch.findings.map(key));
  const fixed = before.findings.filter((f) => f.source === 'osv' && f.fixedVersions.length > 0 && !remaining.has(key(f)));
  assert.ok(fixed.length >= 5, `the fixture's advisories name fixes patchd installs (${fixed.length})`);
  const version = new Map(afterPatch.packages.map((p) => [p.name, p.version]));
  const named = read.statements.flatMap((s) => s.products.flatMap((p) => p.subcomponents.map((c) => `${s.vulnerability} ${decodeURIComponent(/^pkg:deb\/debian\/([^@]+)@/.exec(c)![1]!)}`)));
  assert.deepEqual([...new Set(named)].sort(), [...new Set(fixed.map(key))].sort(), 'the VEX names exactly the findings the patched image no longer has');
  for (const s of read.statements) {
    for (const c of s.products.flatMap((p) => p.subcomponents)) {
      const [, name, ver] = /^pkg:deb\/debian\/([^@]+)@([^?]+)/.exec(c)!;
      assert.equal(decodeURIComponent(ver!), version.get(decodeURIComponent(name!)), `${c}: the version in the patched image`);
    }
  }
  // And the same set from the outcome the pipeline returned (what the CLI's -f openvex writes from).
  const verifiedInOutcome = outcome.platforms.flatMap((p) => p.findings ?? []).filter((f) => !remaining.has(key(f)) && f.source === 'osv' && f.fixedVersions.length > 0);
  assert.deepEqual([...new Set(verifiedInOutcome.map(key))].sort(), [...new Set(named)].sort(), 'the outcome\'s findings minus what remains');
});

test('the SBOM referrer is valid CycloneDX 1.6 and lists the patched image\'s packages at their patched versions', async () => {
  const subject = outcome.evidence!.sbom![0]!.subject;
  const [ref] = await listReferrers(client, repo, subject, MediaType.cycloneDxJson);
  assert.ok(ref, 'an SBOM referrer');
  const bom = JSON.parse((await readReferrerDocument(client, repo, ref)).toString('utf8')) as Bom;
  assert.deepEqual(await cycloneDx16Errors(bom), [], 'valid against the CycloneDX 1.6 schema');
  assert.equal(bom.specVersion, '1.6', 'specVersion');
  assert.deepEqual([bom.metadata.component.type, bom.metadata.component.version], ['container', subject], 'the image is the subject');
  const scanned = (JSON.parse((await patchd(['scan', '-i', `${registry.host}/fixtures/bookworm@${subject}`, '--format', 'json', '--no-updates'])).stdout) as ScanJson).results[0]!;
  const purls = bom.components.filter((c) => c.type !== 'operating-system').map((c) => c.purl).sort();
  assert.deepEqual(purls, scanned.packages.map((p) => p.purl).sort(), 'the SBOM lists what a scan of the patched image lists');
  const libssl = scanned.packages.find((p) => p.name === 'libssl3');
  assert.ok(libssl && libssl.version !== '3.0.20-1~deb12u2', `libssl3 is upgraded (${libssl?.version})`);
});

test('patchd scan --format cyclonedx validates against CycloneDX 1.6 and lists the same packages as --format json', async () => {
  const image = `${registry.host}/fixtures/bookworm:main`;
  const bom = JSON.parse((await patchd(['scan', '-i', image, '--format', 'cyclonedx', '--no-updates'])).stdout) as Bom;
  assert.deepEqual(await cycloneDx16Errors(bom), [], 'valid against the CycloneDX 1.6 schema');
  const json = (JSON.parse((await patchd(['scan', '-i', image, '--format', 'json', '--no-updates'])).stdout) as ScanJson).results[0]!;
  assert.ok(json.packages.length > 80, `the json lists every package (${json.packages.length})`);
  const components = bom.components.filter((c) => c.type !== 'operating-system');
  assert.deepEqual(components.map((c) => c.purl).sort(), json.packages.map((p) => p.purl).sort(), 'same purls, same count');
  assert.deepEqual(bom.components.filter((c) => c.type === 'operating-system').map((c) => [c.name, c.version]), [['debian', '12']], 'the OS as a component');
  const status = components.find((c) => c.name === 'libssl3')?.properties?.find((p) => p.name === 'patchd:path')?.value;
  assert.equal(status, 'var/lib/dpkg/status', 'where the package was found');
  assert.equal(bom.metadata.component.version, json.digest, 'the scanned digest');
  assert.equal(bom.metadata.component.purl, `pkg:oci/bookworm@${encodeURIComponent(json.digest)}?repository_url=${encodeURIComponent(`${registry.host}/fixtures/bookworm`)}`, 'the image purl');
});

test('an index: the VEX on the pushed index names the patched platform manifest; the SBOM goes on that manifest only', async () => {
  const debian = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'multi/app', tag: 'amd64' });
  const plainTar = join(work, 'plain.tar');
  const pack = tar.pack();
  pack.entry({ name: 'app', mode: 0o755 }, '#!/bin/sh\n');
  pack.finalize();
  await pipeline(pack, createWriteStream(plainTar));
  const other = await pushRootfsImage({ tarPath: plainTar, registryHost: registry.host, repository: 'multi/app', tag: 'arm64', architecture: 'arm64' });
  const sizeOf = async (tag: string) => (await client.getManifest(parseReference(`${registry.host}/multi/app:${tag}`))).bytes.length;
  const index = {
    schemaVersion: 2, mediaType: MediaType.ociIndex,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: debian.digest, size: await sizeOf('amd64'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MediaType.ociManifest, digest: other.digest, size: await sizeOf('arm64'), platform: { architecture: 'arm64', os: 'linux' } },
    ],
  };
  await client.putManifest(parseReference(`${registry.host}/multi/app:v1`), Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
  const multi = await patchImage(
    { client, dispatcher, logger, cacheDir: join(work, 'cache'), tmpDir: work },
    { image: parseReference(`${registry.host}/multi/app:v1`), advisories: { osv: await OsvDatabase.load([osvDir]) }, tagSuffix: '-patched', ignoreErrors: false, dryRun: false },
  );
  assert.equal(multi.status, 'patched', `status ${multi.status}`);
  const multiRepo = { registry: registry.host, repository: 'multi/app' };
  const amd64 = multi.platforms.find((p) => p.platform === 'linux/amd64')!.manifestDigest!;
  assert.ok(amd64 && amd64 !== debian.digest, 'the amd64 platform was patched');

  const [vexRef, ...more] = await listReferrers(client, multiRepo, multi.digest!);
  assert.deepEqual([vexRef?.artifactType, more.length], [MediaType.openVex, 0], 'the index has the VEX, and only it');
  const vex = JSON.parse((await readReferrerDocument(client, multiRepo, vexRef!)).toString('utf8')) as { statements: { products: { '@id': string }[] }[] };
  assert.ok(vex.statements.length > 0, 'statements');
  const products = new Set(vex.statements.flatMap((s) => s.products.map((p) => p['@id'])));
  assert.deepEqual([...products], [`pkg:oci/app@${encodeURIComponent(amd64)}?arch=amd64&repository_url=${encodeURIComponent(`${registry.host}/multi/app`)}`], 'every product is the patched amd64 manifest');

  const sboms = await listReferrers(client, multiRepo, amd64);
  assert.deepEqual(sboms.map((r) => r.artifactType), [MediaType.cycloneDxJson], 'the patched platform manifest has its SBOM');
  const bom = JSON.parse((await readReferrerDocument(client, multiRepo, sboms[0]!)).toString('utf8')) as Bom;
  assert.deepEqual(await cycloneDx16Errors(bom), [], 'valid CycloneDX 1.6');
  assert.deepEqual(await listReferrers(client, multiRepo, other.digest), [], 'the untouched platform gets nothing');
  assert.deepEqual(multi.evidence?.sbom?.map((s) => [s.platform, s.subject]), [['linux/amd64', amd64]], 'the outcome names it');
});

test('with evidence off nothing is attached', async () => {
  const off = await patchImage(
    { client, dispatcher, logger, cacheDir: join(work, 'cache'), tmpDir: work },
    { image: parseReference(`${registry.host}/fixtures/bookworm:main`), advisories: { osv: await OsvDatabase.load([osvDir]) }, target: 'no-evidence', tagSuffix: '-patched', ignoreErrors: false, dryRun: false, evidence: false },
  );
  assert.equal(off.status, 'patched', `status ${off.status}`);
  assert.equal(off.evidence, undefined, 'no evidence in the outcome');
  assert.notEqual(off.digest, outcome.digest, 'a separate push');
  assert.deepEqual(await listReferrers(client, repo, off.digest!), [], 'no referrers for it');
});
