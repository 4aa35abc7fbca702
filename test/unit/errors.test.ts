import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createApp } from '../../src/app/app.js';
import { loadConfig } from '../../src/config.js';
import { AptError } from '../../src/distro/deb/repository/errors.js';
import { DebError } from '../../src/distro/deb/errors.js';
import { ImageError } from '../../src/image/errors.js';
import { httpStatusOf, PatchdError, UsageError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { Metrics } from '../../src/lib/metrics.js';
import { errorFromResponse, OciError } from '../../src/oci/errors.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import type { JobQueue } from '../../src/queue/types.js';

// Typed failures: the kind of a code decides retries (transient) and the HTTP
// status, in one place each.

test('a code carries its kind; transient is exactly the unavailable kind', () => {
  assert.equal(new OciError('NETWORK', 'cut').transient, true);
  assert.equal(new OciError('MANIFEST_UNKNOWN', 'no such tag').transient, false);
  assert.equal(new AptError('FETCH_FAILED', 'mirror down').transient, true);
  assert.equal(new DebError('SCRIPTS_REQUIRED', 'postinst').kind, 'unsupported');
  assert.equal(new ImageError('LAYER_INVALID', 'bad tar').kind, 'input');
  assert.equal(new UsageError('--x').kind, 'input');
});

test('a registry answer with 429 or 5xx is unavailable whatever code its body names; unknown codes become UNEXPECTED_STATUS', () => {
  const throttled = errorFromResponse(429, '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', 'get manifest');
  assert.equal(throttled.code, 'TOOMANYREQUESTS');
  assert.equal(throttled.transient, true);
  const broken = errorFromResponse(503, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"backend"}]}', 'get manifest');
  assert.equal(broken.code, 'MANIFEST_UNKNOWN');
  assert.equal(broken.transient, true, 'a 503 is worth another attempt even when its body names a final code');
  const unknown = errorFromResponse(400, '{"errors":[{"code":"SOMETHING_NEW","message":"?"}]}', 'put manifest');
  assert.equal(unknown.code, 'UNEXPECTED_STATUS');
  assert.match(unknown.message, /SOMETHING_NEW/);
  assert.equal(unknown.transient, false);
  assert.equal(errorFromResponse(404, 'not json', 'head blob').code, 'NOT_FOUND');
});

test('statuses: input 400, unsupported 422, upstream 502, unavailable 503, internal and non-patchd errors 500', () => {
  assert.equal(httpStatusOf(new UsageError('x')), 400);
  assert.equal(httpStatusOf(new DebError('SCRIPTS_REQUIRED', 'x')), 422);
  assert.equal(httpStatusOf(new OciError('DENIED', 'x')), 502);
  assert.equal(httpStatusOf(new OciError('NETWORK', 'x')), 503);
  assert.equal(httpStatusOf(new DebError('VERIFY_FAILED', 'x')), 500);
  assert.equal(httpStatusOf(new TypeError('a bug')), 500);
  assert.ok(new OciError('NETWORK', 'x') instanceof PatchdError);
});

test('app.onError maps the kinds once: a closed queue is 503, a bug is 500 and says nothing of itself', async () => {
  const config = loadConfig({}, 'registries:\n  local: { url: "http://127.0.0.1:5000", webhookSecret: "s" }\n');
  const queue = openSqliteQueue(':memory:');
  const app = createApp({ config, queue, logger: silentLogger(), metrics: new Metrics() });
  assert.equal((await app.request('/jobs')).status, 200);
  await queue.close();
  const closed = await app.request('/jobs');
  assert.equal(closed.status, 503);
  assert.equal(((await closed.json()) as { code: string }).code, 'QUEUE_CLOSED');
  assert.equal((await app.request('/readyz')).status, 503);

  const open = openSqliteQueue(':memory:');
  const buggy: JobQueue = { ...open, list: () => { throw new TypeError('cannot read properties of undefined (secret=hunter2)'); } };
  const res = await createApp({ config, queue: buggy, logger: silentLogger(), metrics: new Metrics() }).request('/jobs');
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: 'internal error' });
  open.close();
});

test('/readyz: starting is 503; an unreachable registry is reported as degraded but stays 200 (pushes queue, admission answers)', async () => {
  const config = loadConfig({}, 'registries:\n  local: { url: "http://127.0.0.1:5000", webhookSecret: "s" }\n');
  const queue = openSqliteQueue(':memory:');
  let started = false;
  const app = createApp({ config, queue, logger: silentLogger(), metrics: new Metrics(), ready: () => started, registriesReachable: async () => ({ local: false }) });
  assert.equal((await app.request('/readyz')).status, 503, 'not ready before start-up finished');
  started = true;
  const res = await app.request('/readyz');
  assert.equal(res.status, 200, 'a registry outage does not take patchd out of its Service');
  assert.deepEqual(await res.json(), { status: 'degraded: registries unreachable', queue: { queued: 0, running: 0, succeeded: 0, skipped: 0, dead: 0 }, registries: { local: false } }, 'the body says which registry');
  await queue.close();
});
