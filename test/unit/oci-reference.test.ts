import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseChallenges } from '../../src/oci/challenge.js';
import { OciError } from '../../src/oci/errors.js';
import { formatReference, parseReference, withDigest, withTag } from '../../src/oci/reference.js';

const digest = `sha256:${'a'.repeat(64)}`;

test('references follow docker\'s grammar', () => {
  assert.deepEqual(parseReference('debian'), { registry: 'docker.io', repository: 'library/debian', tag: 'latest' });
  assert.deepEqual(parseReference('bitnami/redis:7'), { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' });
  assert.deepEqual(parseReference('127.0.0.1:5000/fixtures/bookworm:main'), { registry: '127.0.0.1:5000', repository: 'fixtures/bookworm', tag: 'main' });
  assert.deepEqual(parseReference('localhost/a'), { registry: 'localhost', repository: 'a', tag: 'latest' });
  assert.deepEqual(parseReference(`ghcr.io/owner/app@${digest}`), { registry: 'ghcr.io', repository: 'owner/app', digest });
  assert.deepEqual(parseReference(`ghcr.io/owner/app:v1@${digest}`), { registry: 'ghcr.io', repository: 'owner/app', tag: 'v1', digest });
  assert.equal(formatReference(parseReference(`h:1/a/b:t@${digest}`)), `h:1/a/b:t@${digest}`);
  assert.deepEqual(withTag(parseReference(`h.io/a@${digest}`), 'x'), { registry: 'h.io', repository: 'a', tag: 'x' });
  assert.deepEqual(withDigest(parseReference('h.io/a:x'), digest), { registry: 'h.io', repository: 'a', digest });
});

test('invalid references are refused with REFERENCE_INVALID', () => {
  for (const bad of ['', 'h.io/UPPER', 'h.io/a:bad tag', 'h.io/a@sha256', 'h.io//a', 'h.io/a:-x']) {
    assert.throws(() => parseReference(bad), (e: unknown) => e instanceof OciError && e.code === 'REFERENCE_INVALID', bad);
  }
});

test('WWW-Authenticate: quoted commas, several scopes, several challenges', () => {
  const [bearer] = parseChallenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push repository:c:pull"');
  assert.equal(bearer?.scheme, 'bearer');
  assert.deepEqual(bearer?.params, { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push repository:c:pull' });
  const both = parseChallenges('Basic realm="Registry Realm", Bearer realm="https://t/x",service=s');
  assert.deepEqual(both.map((c) => c.scheme), ['basic', 'bearer']);
  assert.deepEqual(both[1]?.params, { realm: 'https://t/x', service: 's' });
  assert.deepEqual(parseChallenges('Bearer realm="a\\"b"')[0]?.params, { realm: 'a"b' });
});
