import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdmissionError } from '../../src/app/admission/errors.js';
import { normalizeImageReference } from '../../src/app/admission/image-reference.js';
import { encodePatch, jsonPointer, pointerTokens } from '../../src/app/admission/json-patch.js';
import { patchedTag } from '../../src/app/admission/policy.js';
import { formatReference } from '../../src/oci/reference.js';

// Image strings as a cluster holds them, normalised the way the kubelet's
// runtime does (distribution/reference: ParseNormalizedNamed + TagNameOnly).

const d = `sha256:${'0123456789abcdef'.repeat(4)}`;
const normal = (image: string) => formatReference(normalizeImageReference(image));

test('Docker Hub short names get docker.io, library/ for one segment, and :latest', () => {
  assert.equal(normal('nginx'), 'docker.io/library/nginx:latest');
  assert.equal(normal('nginx:1.27'), 'docker.io/library/nginx:1.27');
  assert.equal(normal('user/app'), 'docker.io/user/app:latest');
  assert.equal(normal('user/app:v2'), 'docker.io/user/app:v2');
  assert.equal(normal('library/foo/bar'), 'docker.io/library/foo/bar:latest');
  assert.equal(normal('docker.io/nginx'), 'docker.io/library/nginx:latest');
  assert.equal(normal('docker.io/library/nginx:1.27'), 'docker.io/library/nginx:1.27');
  assert.equal(normal('index.docker.io/nginx'), 'docker.io/library/nginx:latest', 'the legacy Hub host folds into docker.io');
  assert.equal(normal('index.docker.io/user/app'), 'docker.io/user/app:latest');
  assert.equal(normal('test_com/foo'), 'docker.io/test_com/foo:latest', 'no dot, colon or upper case: a path segment');
  assert.equal(normal('ubuntu-12.04-base'), 'docker.io/library/ubuntu-12.04-base:latest');
  assert.equal(normal('192.168.0.1'), 'docker.io/library/192.168.0.1:latest', 'one segment is always a Hub name');
  assert.equal(normal('localhost:5000'), 'docker.io/library/localhost:5000', 'one segment: 5000 is a tag');
});

test('hosts: a dot, a port, localhost or upper case make the first segment a registry, kept as written', () => {
  assert.equal(normal('localhost:5000/x'), 'localhost:5000/x:latest');
  assert.equal(normal('localhost/x'), 'localhost/x:latest');
  assert.equal(normal('127.0.0.1:5000/team/app:1.0'), '127.0.0.1:5000/team/app:1.0');
  assert.equal(normal('registry.example.com/app'), 'registry.example.com/app:latest', 'no library/ outside Docker Hub');
  assert.equal(normal('test-com:8080/foo'), 'test-com:8080/foo:latest');
  assert.equal(normal('xn--n3h.com:18080/foo'), 'xn--n3h.com:18080/foo:latest');
  assert.equal(normal('Docker/docker'), 'Docker/docker:latest');
  assert.equal(normal('[fc00::1]:5000/docker/docker'), '[fc00::1]:5000/docker/docker:latest');
  assert.equal(normal('ghcr.io/owner/team/app:v1.2.3-rc.1'), 'ghcr.io/owner/team/app:v1.2.3-rc.1');
});

test('by tag, by digest (no default tag), and tag@digest', () => {
  assert.deepEqual(normalizeImageReference(`nginx@${d}`), { registry: 'docker.io', repository: 'library/nginx', digest: d });
  assert.deepEqual(normalizeImageReference(`busybox:latest@${d}`), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: d });
  assert.deepEqual(normalizeImageReference(`registry.example.com:5000/shop/web:1.4-patched@${d}`), { registry: 'registry.example.com:5000', repository: 'shop/web', tag: '1.4-patched', digest: d });
  assert.deepEqual(normalizeImageReference(`localhost:5000/x@${d}`), { registry: 'localhost:5000', repository: 'x', digest: d });
  const sha512 = `sha512:${'ab'.repeat(64)}`;
  assert.equal(normal(`h.io/a@${sha512}`), `h.io/a@${sha512}`);
  assert.equal(normal('docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a'), 'docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest', 'a hex name is fine with a host');
  assert.equal(normal('dock__er/do-----cker.x'), 'docker.io/dock__er/do-----cker.x:latest');
});

test('what the grammar refuses is IMAGE_INVALID with the reason', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    [' nginx', /whitespace/],
    ['nginx ', /whitespace/],
    ['1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', /image ID/],
    ['docker/Docker', /lowercase/],
    ['docker.io/docker/Docker', /lowercase/],
    ['Nginx', /lowercase/],
    [`h.io/a/B@${d}`, /lowercase/],
    ['-docker', /repository/],
    ['-docker/docker', /repository/],
    ['docker-/docker', /repository/],
    ['docker///docker', /repository/],
    ['dock..er/docker', /registry host/], // a dot makes it a host, and not a valid one
    ['____/____', /repository/],
    ['docker/', /repository/],
    ['https://github.com/docker/docker', /registry host|repository/],
    ['-docker.io/docker/docker', /registry host/],
    ['fc00::1:5000/debian', /registry host/],
    ['[fe80::1%eth0]:5000/debian', /registry host/],
    ['[fc00::1]:5000', /repository/],
    ['h.io/a:-x', /repository/],
    ['h.io/a:bad tag', /repository|whitespace/],
    [`h.io/a:${'t'.repeat(129)}`, /repository/],
    ['h.io/a@sha256', /repository/],
    [`h.io/a@sha256:${'A'.repeat(64)}`, /lower-case hex/],
    [`h.io/a@sha256:${'a'.repeat(63)}`, /lower-case hex|repository/],
    [`h.io/a@md5:${'a'.repeat(32)}`, /unsupported digest algorithm md5/],
    [`h.io/${'a'.repeat(256)}`, /longer than 255/],
    [`h.io/${'a/'.repeat(600)}a`, /longer than 1024/],
  ];
  for (const [input, why] of cases) {
    assert.throws(() => normalizeImageReference(input), (e: unknown) => e instanceof AdmissionError && e.code === 'IMAGE_INVALID' && why.test(e.message), `${JSON.stringify(input)} should be refused (${why})`);
  }
});

test('a hostile name is refused fast (the regular expressions do not backtrack for long)', () => {
  const started = performance.now();
  for (const input of [`${'a-'.repeat(400)}!/x`, `${'a'.repeat(1000)}.-/x`, `h.io/${'a-'.repeat(500)}`, `h.io/a:${'-'.repeat(900)}`]) {
    assert.throws(() => normalizeImageReference(input));
  }
  assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`);
});

test('patched tags: <tag><suffix> and <tag><suffix>-N, with a tag before the suffix', () => {
  assert.ok(patchedTag('1.4-patched', '-patched'));
  assert.ok(patchedTag('1.4-patched-2', '-patched'));
  assert.ok(patchedTag('latest.hardened', '.hardened'));
  assert.ok(!patchedTag('-patched', '-patched'));
  assert.ok(!patchedTag('1.4', '-patched'));
  assert.ok(!patchedTag('1.4-patched-x', '-patched'));
  assert.ok(!patchedTag('1.4-patchedx', '-patched'));
  assert.ok(!patchedTag('1.4.patched', '-patched'), 'the suffix is literal, not a pattern');
});

test('JSON pointers escape ~ and / (RFC 6901) and read back', () => {
  assert.equal(jsonPointer(['spec', 'containers', '0', 'image']), '/spec/containers/0/image');
  assert.equal(jsonPointer(['metadata', 'annotations', 'example.com/a~b']), '/metadata/annotations/example.com~1a~0b');
  assert.equal(jsonPointer(['~1']), '/~01', '~ is escaped before /, so ~1 stays two characters');
  assert.deepEqual(pointerTokens('/metadata/annotations/example.com~1a~0b'), ['metadata', 'annotations', 'example.com/a~b']);
  assert.deepEqual(pointerTokens('/~01'), ['~1']);
  assert.deepEqual(JSON.parse(Buffer.from(encodePatch([{ op: 'replace', path: '/a~1b', value: 'x' }]), 'base64').toString()), [{ op: 'replace', path: '/a~1b', value: 'x' }]);
});
