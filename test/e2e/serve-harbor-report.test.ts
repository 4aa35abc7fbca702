import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// A registry with `scanner: harbor`: pushes wait for Harbor's scan, and the
// SCANNING_COMPLETED delivery makes patchd read Harbor's vulnerability report
// (its documented API, replayed on loopback since no Harbor is reachable here)
// and patch exactly what the report names.

let work: TempDir;
let registry: RunningRegistry;
let patchd: ChildProcess;
let url: string;
let digest: string;
let harbor: Server;
const apiRequests: { url: string; authorization?: string; accept?: string }[] = [];

before(async () => {
  work = await tmpDir('patchd-harbor-report');
  registry = await startRegistry();
  digest = (await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'library/app', tag: 'v1' })).digest;
  harbor = createServer((req, res) => {
    apiRequests.push({ url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.headers['x-accept-vulnerabilities'] ? { accept: String(req.headers['x-accept-vulnerabilities']) } : {}) });
    if (req.url !== `/api/v2.0/projects/library/repositories/app/artifacts/${digest}/additions/vulnerabilities`) { res.writeHead(404).end('{"errors":[{"code":"NOT_FOUND"}]}'); return; }
    if (req.headers.authorization !== `Basic ${Buffer.from('robot$patchd:s3cret').toString('base64')}`) { res.writeHead(401).end(); return; }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      'application/vnd.security.vulnerability.report; version=1.1': {
        generated_at: '2026-11-24T06:00:00Z', scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.0' }, severity: 'High',
        vulnerabilities: [
          { id: 'CVE-2026-56132', package: 'libexpat1', version: '2.5.0-1+deb12u2', fix_version: '2.5.0-1+deb12u5', severity: 'High', description: 'expat: out-of-bound scaffolding index store', links: [] },
          { id: 'CVE-2026-0001', package: 'zlib1g', version: '1:1.2.13.dfsg-1', fix_version: '', severity: 'Low', links: [] },
        ],
      },
    }));
  });
  await new Promise<void>((r) => harbor.listen(0, '127.0.0.1', r));
  const harborUrl = `http://127.0.0.1:${(harbor.address() as AddressInfo).port}`;
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      `cacheDir: ${JSON.stringify(join(work.path, 'cache'))}`,
      'registries:',
      `  harbor: { url: "${registry.url}", harborUrl: "${harborUrl}", hosts: ["harbor.example.com"], webhookSecret: "harbor-secret", scanner: harbor, credentials: { username: "robot$patchd", password: "s3cret" } }`,
    ],
  });
  patchd = server.child;
  url = server.url;
});
after(async () => {
  patchd?.kill('SIGTERM');
  harbor?.close();
  await registry?.stop();
  await work?.remove();
});

const post = (body: unknown) => fetch(`${url}/webhooks/harbor`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: 'harbor-secret' } });
const eventData = () => ({ resources: [{ digest, tag: 'v1', resource_url: `harbor.example.com/library/app:v1` }], repository: { name: 'app', namespace: 'library', repo_full_name: 'library/app', repo_type: 'private' } });

test('push waits for the scan; SCANNING_COMPLETED patches what Harbor\'s report names, read with the robot account', { timeout: 5 * 60_000 }, async () => {
  const push = await post({ type: 'PUSH_ARTIFACT', occur_at: 1700000000, operator: 'admin', event_data: eventData() });
  assert.equal(push.status, 200);
  assert.match(JSON.stringify(await push.json()), /waiting for Harbor's scan/);

  const scanned = await post({ type: 'SCANNING_COMPLETED', occur_at: 1700000100, operator: 'auto', event_data: eventData() });
  assert.equal(scanned.status, 202);
  const { jobs } = await scanned.json() as { jobs: { id: string }[] };
  let job: { status: string; result?: { digest?: string; platforms: { packages: { name: string; reasons: string[] }[]; findings: { id: string; source: string }[] }[] }; lastError?: string } | undefined;
  for (let i = 0; i < 600; i++) {
    job = await (await fetch(`${url}/jobs/${jobs[0]!.id}`)).json() as typeof job;
    if (job?.status === 'succeeded' || job?.status === 'dead' || job?.status === 'skipped') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(job?.status, 'succeeded', JSON.stringify(job));
  const platform = job!.result!.platforms[0]!;
  assert.deepEqual(platform.packages.map((p) => [p.name, p.reasons]), [['libexpat1', ['CVE-2026-56132']]], 'only the report\'s fixable finding is patched');
  assert.deepEqual(platform.findings.map((f) => [f.id, f.source]), [['CVE-2026-56132', 'harbor'], ['CVE-2026-0001', 'harbor']]);
  assert.equal(apiRequests.length, 1);
  assert.equal(apiRequests[0]!.accept, 'application/vnd.security.vulnerability.report; version=1.1, application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0');
  const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/library/app`])).stdout).Tags as string[];
  // Besides the patched tag, only the referrers tag fallback holding the patched image's VEX and SBOM (distribution 2.8 has no referrers API).
  const patchedDigest = job!.result!.digest ?? "";
  assert.deepEqual(tags.sort(), ['sha256-' + patchedDigest.slice('sha256:'.length), 'v1', 'v1-patched'].sort(), `tags: ${tags.join(', ')}`);
});
