import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Agent } from 'undici';
import { resolveImage } from '../../src/image/resolve.js';
import { createLogger } from '../../src/lib/log.js';
import { createRegistryClient } from '../../src/oci/client.js';
import { OciError } from '../../src/oci/errors.js';
import { staticKeychain } from '../../src/oci/keychain.js';
import { pushImage } from '../../src/publish/push.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { pushTinyImage } from '../harness/tiny-image.js';

// docker-registry 2.8 refuses a manifest (400 DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN) when another push of one of its
// blobs into the same repository is under way: pushImage checks its blobs again and retries the manifest, and a
// registry that keeps refusing ends in an error worth a later attempt (transient), never in a false success.

let registry: RunningRegistry;
let proxy: FaultProxy;
const dispatcher = new Agent();
const refusal = JSON.stringify({ errors: [
  { code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' },
  { code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry' },
] });

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy({ target: registry.url });
  await pushTinyImage({ registryUrl: registry.url, repository: 'race/app', tag: 'v1', content: 'race' });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await dispatcher.close();
});

async function copyTo(tag: string): Promise<string> {
  const client = createRegistryClient({ logger: createLogger({ level: 'silent' }), dispatcher, keychain: staticKeychain({}), plainHttp: () => true });
  const source = { registry: proxy.host, repository: 'race/app', tag: 'v1' };
  const resolved = await resolveImage(client, source);
  const { image } = await resolved.platforms[0]!.load();
  const pushed = await pushImage({ client, source: resolved.source, target: { registry: proxy.host, repository: 'race/app', tag }, image, logger: createLogger({ level: 'silent' }) });
  return pushed.digest;
}

const manifestPuts = (tag: string) => proxy.log.filter((r) => r.method === 'PUT' && r.path === `/v2/race/app/manifests/${tag}`);

test('a manifest refused once for a blob the registry does not see yet is pushed again and lands', async () => {
  let refused = 0;
  proxy.setPlan((req) => (req.method === 'PUT' && req.path === '/v2/race/app/manifests/once' && refused++ === 0
    ? { kind: 'status', status: 400, headers: { 'content-type': 'application/json' }, body: refusal } : undefined));
  const digest = await copyTo('once');
  assert.equal(manifestPuts('once').length, 2, 'the manifest was PUT a second time after the refusal');
  const head = await fetch(`${registry.url}/v2/race/app/manifests/once`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(head.headers.get('docker-content-digest'), digest, 'the registry has the tag at the digest pushImage reported');
});

test('a registry that keeps refusing ends in a transient error after three attempts, and nothing is tagged', async () => {
  proxy.setPlan((req) => (req.method === 'PUT' && req.path === '/v2/race/app/manifests/never'
    ? { kind: 'status', status: 400, headers: { 'content-type': 'application/json' }, body: refusal } : undefined));
  await assert.rejects(copyTo('never'), (error: unknown) => {
    assert.ok(error instanceof OciError, `an OciError, not ${String(error)}`);
    assert.equal(error.transient, true, 'worth another attempt later (the worker retries it)');
    assert.match(error.message, /after 3 attempts/, 'the message says it was tried again');
    return true;
  }, 'the push fails');
  assert.equal(manifestPuts('never').length, 3, 'three attempts');
  const head = await fetch(`${registry.url}/v2/race/app/manifests/never`, { method: 'HEAD' });
  assert.equal(head.status, 404, 'nothing was tagged');
});
