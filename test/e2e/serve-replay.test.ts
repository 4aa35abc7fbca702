import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// Harbor (default and CloudEvents), ACR and GHCR deliveries, written in each
// sender's documented format, naming hosts that the config maps to the local
// registry: each one ends in a patched tag there.

let work: TempDir;
let registry: RunningRegistry;
let patchd: ChildProcess;
let url: string;
let digest: string;

before(async () => {
  work = await tmpDir('patchd-replay');
  registry = await startRegistry();
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      `cacheDir: ${JSON.stringify(join(work.path, 'cache'))}`,
      'worker: { concurrency: 2 }',
      'registries:',
      `  harbor: { url: "${registry.url}", hosts: ["harbor.example.com"], webhookSecret: "harbor-secret", ownActors: ["robot$patchd"] }`,
      `  acr: { url: "${registry.url}", hosts: ["myregistry.azurecr.io"], webhookSecret: "acr-secret" }`,
      `  ghcr: { url: "${registry.url}", hosts: ["ghcr.io"], webhookSecret: "gh-secret" }`,
    ],
  });
  patchd = server.child;
  url = server.url;
  const tar = await bookwormRootfsTar();
  for (const repo of ['library/harbor-default', 'library/harbor-cloudevents', 'acr/app', 'codertocat/app']) {
    digest = (await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: repo, tag: 'v1' })).digest;
  }
});
after(async () => {
  patchd?.kill('SIGTERM');
  await registry?.stop();
  await work?.remove();
});

const post = (source: string, body: string, headers: Record<string, string>) =>
  fetch(`${url}/webhooks/${source}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

async function patchedTag(repo: string): Promise<boolean> {
  for (let i = 0; i < 240; i++) {
    const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/${repo}`])).stdout).Tags as string[];
    if (tags.includes('v1-patched')) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

test('Harbor default, Harbor CloudEvents, ACR and GHCR deliveries each lead to a patched tag', { timeout: 10 * 60_000 }, async () => {
  const resource = (repo: string) => ({ digest, tag: 'v1', resource_url: `harbor.example.com/${repo}:v1` });
  const harborData = (repo: string) => ({ resources: [resource(repo)], repository: { name: repo.split('/')[1], namespace: repo.split('/')[0], repo_full_name: repo, repo_type: 'private' } });
  const answers = [
    await post('harbor', JSON.stringify({ type: 'PUSH_ARTIFACT', occur_at: 1700000000, operator: 'admin', event_data: harborData('library/harbor-default') }), { authorization: 'harbor-secret' }),
    await post('harbor', JSON.stringify({ specversion: '1.0', id: 'e1', source: '/projects/1/webhook/policies/1', type: 'harbor.artifact.pushed', datacontenttype: 'application/json', time: '2026-11-23T10:00:00Z', operator: 'admin', data: harborData('library/harbor-cloudevents') }), { authorization: 'harbor-secret', 'content-type': 'application/cloudevents+json' }),
    await post('acr', JSON.stringify({ id: 'a1', timestamp: '2026-11-23T10:00:00Z', action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, digest, length: 1, repository: 'acr/app', tag: 'v1' }, request: { id: 'r', host: 'myregistry.azurecr.io', method: 'PUT', useragent: 'docker' } }), { authorization: 'Bearer acr-secret' }),
  ];
  const ghBody = JSON.stringify({ action: 'published', package: { id: 1, name: 'app', namespace: 'Codertocat/app', ecosystem: 'CONTAINER', package_type: 'CONTAINER', registry: { type: 'CONTAINER', url: 'https://ghcr.io/Codertocat' }, package_version: { id: 2, name: digest, package_url: 'ghcr.io/Codertocat/app:v1', container_metadata: { tag: { name: 'v1', digest }, manifest: { digest } } } } });
  answers.push(await post('ghcr', ghBody, { 'x-github-event': 'package', 'x-hub-signature-256': `sha256=${createHmac('sha256', 'gh-secret').update(ghBody).digest('hex')}` }));
  assert.deepEqual(answers.map((a) => a.status), [202, 202, 202, 202]);
  // Harbor's robot account is patchd itself: its pushes are ignored.
  const own = await post('harbor', JSON.stringify({ type: 'PUSH_ARTIFACT', operator: 'robot$patchd', event_data: harborData('library/harbor-default') }), { authorization: 'harbor-secret' });
  assert.equal(own.status, 200);

  for (const repo of ['library/harbor-default', 'library/harbor-cloudevents', 'acr/app', 'codertocat/app']) {
    assert.ok(await patchedTag(repo), `${repo}: ${await (await fetch(`${url}/jobs`)).text()}`);
  }
});
