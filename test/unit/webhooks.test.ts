import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { createApp } from '../../src/app/app.js';
import { Metrics } from '../../src/lib/metrics.js';
import { githubSignatureMatches } from '../../src/app/webhooks/authenticate.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';

// Receivers through app.request(): the vendors' own published examples
// (../shared/fixtures-vendor, when present) and our fixtures.

const vendor = new URL('../../../shared/fixtures-vendor/', import.meta.url);
const haveVendor = existsSync(vendor);
const ours = new URL('../../fixtures/webhooks/', import.meta.url);
const config = loadConfig({}, `
registries:
  harbor:   { url: "https://harbor.example.com", hosts: ["localhost", "hub.harbor.com"], webhookSecret: "harbor-secret", ownActors: ["robot$patchd"] }
  acr:      { url: "https://myregistry.azurecr.io", webhookSecret: "acr-secret" }
  ghcr:     { url: "https://ghcr.io", webhookSecret: "It's a Secret to Everybody" }
  local:    { url: "http://127.0.0.1:5000", hosts: ["registry.internal:5000", "registrycluster.local"], webhookSecret: "dist-secret" }
`);

function setup() {
  const queue = openSqliteQueue(':memory:');
  const app = createApp({ config, queue, logger: silentLogger(), metrics: new Metrics() });
  const post = (source: string, body: string | Buffer, headers: Record<string, string>) =>
    app.request(`/webhooks/${source}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': 'application/json', ...headers } });
  return { queue, app, post };
}
const vendorFile = (path: string) => readFile(new URL(path, vendor));
const sign = (body: Buffer | string, secret = "It's a Secret to Everybody") => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

test('GitHub signature: the published test vector', async () => {
  assert.ok(githubSignatureMatches('sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17', "It's a Secret to Everybody", Buffer.from('Hello, World!')));
  assert.ok(!githubSignatureMatches('sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18', "It's a Secret to Everybody", Buffer.from('Hello, World!')));
});

test('distribution: manifest pushes are enqueued once, blob events ignored, the real content type accepted', async () => {
  const { post, queue } = setup();
  const body = await readFile(new URL('distribution.tag-push.json', ours));
  const headers = { authorization: 'Bearer dist-secret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' };
  const first = await post('distribution', body, headers);
  assert.equal(first.status, 202);
  const a = await first.json() as { jobs: { id: string; duplicate: boolean }[]; ignored: string[] };
  assert.equal(a.jobs.length, 1);
  assert.match(a.ignored[0]!, /not a manifest/);
  const again = await (await post('distribution', body, headers)).json() as { jobs: { id: string; duplicate: boolean }[] };
  assert.deepEqual(again.jobs.map((j) => [j.id, j.duplicate]), [[a.jobs[0]!.id, true]], 'redelivery is deduplicated');
  const job = (await queue.get(a.jobs[0]!.id))!;
  assert.deepEqual([job.registry, job.repository, job.tag, job.digest], ['local', 'fixtures/bookworm', 'main', 'sha256:a368e99b2ae2c07907e8f75c81495623f43fac9da6584baee0becc48c613f71b']);
});

test('our own -patched push is ignored with a reason', async () => {
  const { post } = setup();
  const res = await post('distribution', await readFile(new URL('distribution.patched-push.json', ours)), { authorization: 'dist-secret' });
  assert.equal(res.status, 200);
  assert.match(JSON.stringify(await res.json()), /patchd output/);
});

test("patchd's own pushes (its User-Agent) are ignored, digest-only ones included; other clients' pushes are not", async () => {
  const { post, queue } = setup();
  const push = async (useragent: string, target: Record<string, string>) => {
    const envelope = JSON.parse(await readFile(new URL('distribution.tag-push.json', ours), 'utf8')) as { events: { target: Record<string, string>; request?: Record<string, string> }[] };
    const event = envelope.events.find((e) => e.target.mediaType === 'application/vnd.oci.image.manifest.v1+json');
    envelope.events = [event!];
    const { tag: _tag, ...untagged } = event!.target;
    event!.target = { ...untagged, ...target };
    event!.request = { ...(event!.request ?? {}), useragent };
    return post('distribution', JSON.stringify(envelope), { authorization: 'dist-secret' });
  };
  const own = await push('patchd/0.1', { digest: `sha256:${'a'.repeat(64)}` });
  assert.equal(own.status, 200, 'acknowledged, nothing to do');
  assert.match(JSON.stringify(await own.json()), /pushed by patchd itself \(patchd\/0\.1\)/, 'the reason names the client');
  assert.deepEqual((await queue.list()), [], 'no job for patchd own push');
  const other = await push('skopeo/1.9.3', { digest: `sha256:${'b'.repeat(64)}`, tag: 'v2' });
  assert.equal(other.status, 202, 'another client push is enqueued');
  assert.equal((await queue.list()).length, 1, 'one job');
});

test('wrong or missing secrets get 401 and enqueue nothing', async () => {
  const { post, queue } = setup();
  const body = await readFile(new URL('distribution.tag-push.json', ours));
  assert.equal((await post('distribution', body, { authorization: 'Bearer nope' })).status, 401);
  assert.equal((await post('distribution', body, {})).status, 401);
  assert.equal((await post('ghcr', body, { 'x-github-event': 'package', 'x-hub-signature-256': sign(body, 'wrong') })).status, 401);
  assert.deepEqual((await queue.list()), []);
});

test('malformed bodies get 400 with the reason; oversized ones 413; unknown hosts 403; never 5xx', async () => {
  const { post, queue } = setup();
  const bad = await post('distribution', '{"events": [', { authorization: 'dist-secret' });
  assert.equal(bad.status, 400);
  assert.match((await bad.json() as { error: string }).error, /not JSON/);
  const wrongShape = await post('distribution', '{"events": "nope"}', { authorization: 'dist-secret' });
  assert.equal(wrongShape.status, 400);
  assert.match((await wrongShape.json() as { error: string }).error, /events/);
  assert.equal((await post('distribution', Buffer.alloc(2 * 1024 * 1024, 32), { authorization: 'dist-secret' })).status, 413);
  const elsewhere = (await readFile(new URL('distribution.tag-push.json', ours), 'utf8')).replaceAll('registry.internal:5000', 'evil.example.net');
  assert.equal((await post('distribution', elsewhere, { authorization: 'dist-secret' })).status, 403);
  assert.deepEqual((await queue.list()), []);
});

test('vendor examples: Harbor (default, CloudEvents, digest and tag pushes, scans, pulls)', { skip: !haveVendor && 'shared/fixtures-vendor absent' }, async () => {
  const { post, queue } = setup();
  const auth = { authorization: 'harbor-secret' };
  const digestPush = await post('harbor', await vendorFile('harbor/website-docs/default.PUSH_ARTIFACT.json'), auth);
  assert.equal(digestPush.status, 202);
  const [job] = (await digestPush.json() as { jobs: { id: string }[] }).jobs;
  assert.equal((await queue.get(job!.id))?.tag, undefined, 'a digest push carries the digest in `tag`: no tag');
  assert.equal((await queue.get(job!.id))?.repository, 'harbor/alpine');
  const tagPush = await post('harbor', await vendorFile('harbor/website-docs-history/default.PUSH_ARTIFACT.tag-latest.json'), auth);
  assert.equal(tagPush.status, 202);
  const scan = await post('harbor', await vendorFile('harbor/website-docs/default.SCANNING_COMPLETED.json'), auth);
  assert.equal(scan.status, 202);
  assert.equal((await scan.json() as { jobs: { id: string; duplicate: boolean }[] }).jobs[0]?.duplicate, true, 'same digest as the push: one job');
  assert.equal((await post('harbor', await vendorFile('harbor/website-docs/default.PULL_ARTIFACT.json'), auth)).status, 200);
  assert.equal((await post('harbor', await vendorFile('harbor/website-docs/cloudevents.harbor.scan.completed.json'), auth)).status, 202);
  // Published as an example, but not JSON: a clear 400, not a crash.
  assert.equal((await post('harbor', await vendorFile('harbor/website-docs/cloudevents.harbor.artifact.pushed.txt'), auth)).status, 400);
});

test('vendor examples: ACR push by tag with masked digest, delete ignored', { skip: !haveVendor && 'shared/fixtures-vendor absent' }, async () => {
  const { post, queue } = setup();
  const push = await post('acr', await vendorFile('acr/push.json'), { authorization: 'Bearer acr-secret' });
  assert.equal(push.status, 202);
  const job = (await queue.get((await push.json() as { jobs: { id: string }[] }).jobs[0]!.id))!;
  assert.deepEqual([job.repository, job.tag, job.digest], ['hello-world', 'v1', undefined]);
  assert.equal((await post('acr', await vendorFile('acr/delete.json'), { authorization: 'Bearer acr-secret' })).status, 200);
});

test('vendor examples: GitHub package and registry_package, npm packages and pings ignored', { skip: !haveVendor && 'shared/fixtures-vendor absent' }, async () => {
  const { post, queue } = setup();
  for (const [event, path] of [['package', 'github/package/published.docker.payload.json'], ['registry_package', 'github/registry_package/published.docker.payload.json']] as const) {
    const body = await vendorFile(path);
    const res = await post('ghcr', body, { 'x-github-event': event, 'x-hub-signature-256': sign(body) });
    assert.equal(res.status, 202, path);
    const job = (await queue.get((await res.json() as { jobs: { id: string }[] }).jobs[0]!.id))!;
    assert.equal(job.repository, 'codertocat/hello-world');
    assert.equal(job.digest, 'sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498');
  }
  const npm = await vendorFile('github/package/published.npm.payload.json');
  assert.equal((await post('ghcr', npm, { 'x-github-event': 'package', 'x-hub-signature-256': sign(npm) })).status, 200);
  const ping = await vendorFile('github/ping/payload.json');
  assert.equal((await post('ghcr', ping, { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping) })).status, 200);
});

test('vendor examples: CNCF distribution envelopes (v2 docs example, test envelope with short digests)', { skip: !haveVendor && 'shared/fixtures-vendor absent' }, async () => {
  const { post } = setup();
  const docs = await post('distribution', await vendorFile('distribution/docs.push-envelope.body.json'), { authorization: 'Bearer dist-secret', 'content-type': 'application/vnd.docker.distribution.events.v2+json' });
  assert.equal(docs.status, 202);
  const short = await post('distribution', await vendorFile('distribution/event_test.push-envelope.json'), { authorization: 'Bearer dist-secret' });
  assert.equal(short.status, 200, 'events without a usable digest or tag are ignored with reasons');
});

test('Harbor SCANNING_COMPLETED again for an original patchd patched (scanner: harbor): one re-evaluation per scan report', async () => {
  const harborConfig = loadConfig({}, `
registries:
  harbor: { url: "https://harbor.example.com", webhookSecret: "harbor-secret", scanner: harbor }
`);
  const queue = openSqliteQueue(':memory:');
  const app = createApp({ config: harborConfig, queue, logger: silentLogger(), metrics: new Metrics() });
  const digest = `sha256:${'ab'.repeat(32)}`;
  const scan = (reportId: string) => app.request('/webhooks/harbor', {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'harbor-secret' },
    body: JSON.stringify({ type: 'SCANNING_COMPLETED', operator: 'auto', event_data: {
      resources: [{ digest, tag: 'v1', resource_url: `harbor.example.com/library/app:v1`, scan_overview: { 'application/vnd.security.vulnerability.report; version=1.1': { report_id: reportId, scan_status: 'Success' } } }],
      repository: { name: 'app', namespace: 'library', repo_full_name: 'library/app' },
    } }),
  });
  type Answer = { jobs: { id: string; duplicate: boolean }[] };
  const first = await (await scan('report-1')).json() as Answer;
  assert.equal(first.jobs.length, 1, 'the first scan: one patch job');
  const again = await (await scan('report-1')).json() as Answer;
  assert.deepEqual(again.jobs, [{ ...first.jobs[0]!, image: (again.jobs[0] as unknown as { image: string }).image, duplicate: true }], 'not patched yet: no re-evaluation, the delivery is a duplicate');
  await queue.claim();
  await queue.succeed(first.jobs[0]!.id, 'succeeded', { status: 'patched', target: 'harbor.example.com/library/app:v1-patched', digest: `sha256:${'cd'.repeat(32)}`, platforms: [] });
  const rescanned = await (await scan('report-2')).json() as Answer;
  assert.equal(rescanned.jobs.length, 2, `the duplicate and a re-evaluation: ${JSON.stringify(rescanned)}`);
  const reevaluation = (await queue.get(rescanned.jobs[1]!.id))!;
  assert.deepEqual([reevaluation.trigger, reevaluation.revision, reevaluation.digest, reevaluation.tag, rescanned.jobs[1]!.duplicate], ['harbor-scan', 'harbor:report-2', digest, 'v1', false], 'trigger, revision and image of the re-evaluation');
  assert.match(reevaluation.reason ?? '', /Harbor scanned .* again \(report report-2\)/, 'why it runs');
  const redelivered = await (await scan('report-2')).json() as Answer;
  assert.deepEqual(redelivered.jobs.map((j) => [j.id, j.duplicate]), [[first.jobs[0]!.id, true], [reevaluation.id, true]], 'the same scan redelivered: no new job');
});
