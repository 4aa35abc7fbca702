import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';

// queue.redis selects the Redis queue (SQLite stays the default); PATCHD_REDIS_URL, from a Secret, wins over the file.

const registries = 'registries:\n  local: { url: "http://127.0.0.1:5000" }\n';

test('no queue block: SQLite; queue.redis: its URL with prefix and lockSeconds defaults', () => {
  assert.equal(loadConfig({}, registries).queue.redis, undefined, 'SQLite by default');
  const config = loadConfig({}, `queue: { redis: { url: "redis://redis:6379/0" } }\n${registries}`);
  assert.deepEqual(config.queue.redis, { url: 'redis://redis:6379/0', prefix: 'patchd', lockSeconds: 30 }, 'defaults filled in');
  const tuned = loadConfig({}, `queue: { redis: { url: "rediss://r:6380", prefix: "staging", lockSeconds: 2.5 } }\n${registries}`);
  assert.deepEqual(tuned.queue.redis, { url: 'rediss://r:6380', prefix: 'staging', lockSeconds: 2.5 }, 'TLS URL, own prefix, a short lock');
});

test('PATCHD_REDIS_URL replaces the file\'s URL, or selects Redis on its own; settings from the file are kept', () => {
  const env = { PATCHD_REDIS_URL: 'redis://:s3cret@redis.patchd.svc:6379/1' };
  const config = loadConfig(env, `queue: { redis: { url: "redis://placeholder:6379", lockSeconds: 10 } }\n${registries}`);
  assert.deepEqual(config.queue.redis, { url: env.PATCHD_REDIS_URL, prefix: 'patchd', lockSeconds: 10 }, 'the environment wins; lockSeconds kept');
  assert.deepEqual(loadConfig(env, registries).queue.redis, { url: env.PATCHD_REDIS_URL, prefix: 'patchd', lockSeconds: 30 }, 'the environment alone selects Redis');
});

test('a bad URL or lock is refused without echoing the URL (it may hold a password)', () => {
  assert.throws(() => loadConfig({}, `queue: { redis: { url: "http://:hunter2@redis:6379" } }\n${registries}`),
    (e: Error) => /redis:\/\/ or rediss:\/\//.test(e.message) && !e.message.includes('hunter2'), 'not a redis URL');
  assert.throws(() => loadConfig({ PATCHD_REDIS_URL: 'tcp://:hunter2@redis' }, registries),
    (e: Error) => /PATCHD_REDIS_URL/.test(e.message) && !e.message.includes('hunter2'), 'the variable is named, its value is not');
  assert.throws(() => loadConfig({}, `queue: { redis: { url: "redis://r", lockSeconds: 0.1 } }\n${registries}`), /lockSeconds/, 'a lock too short to renew');
  assert.throws(() => loadConfig({}, `queue: { redis: { url: "redis://r", host: "x" } }\n${registries}`), /host/, 'unknown keys');
});
