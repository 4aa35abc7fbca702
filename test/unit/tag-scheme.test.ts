import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorFromResponse } from '../../src/oci/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { platformFilter } from '../../src/pipeline/platform-filter.js';
import { isTagRefusal, nextIncrementalTag } from '../../src/publish/tags.js';

test('incremental tags number on from the highest existing -N of the same floating tag', () => {
  const floating = parseReference('r.example/app:1.2-patched');
  assert.equal(nextIncrementalTag(floating, []).tag, '1.2-patched-1', 'first');
  assert.equal(nextIncrementalTag(floating, ['1.2', '1.2-patched', '1.2-patched-2', '1.2-patched-10', '1.2-patched-9']).tag, '1.2-patched-11', 'numeric, not lexical');
  assert.equal(nextIncrementalTag(floating, ['1x2-patched-40', '1.2-patched-x', '1.2-patched-3-patched-7']).tag, '1.2-patched-1', 'other tags do not count (the dot is literal)');
});

test("registries' refusals to move a tag are recognised; other failures are not", () => {
  const what = 'put manifest r/app:main-patched';
  const harbor = errorFromResponse(412, JSON.stringify({ errors: [{ code: 'PRECONDITION', message: "Failed to process request due to 'app:main-patched' configured as immutable." }] }), what);
  const ecr = errorFromResponse(400, JSON.stringify({ errors: [{ code: 'TAG_INVALID', message: "The image tag 'main-patched' already exists in the 'app' repository and cannot be overwritten because the tag is immutable." }] }), what);
  const acr = errorFromResponse(405, JSON.stringify({ errors: [{ code: 'DENIED', message: 'The operation is disallowed on this registry, repository or image.' }] }), what);
  const denied = errorFromResponse(403, JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }), what);
  const invalid = errorFromResponse(400, JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid' }] }), what);
  assert.deepEqual([harbor, ecr, acr].map(isTagRefusal), [true, true, true], 'Harbor, ECR, ACR');
  assert.deepEqual([denied, invalid, new Error('x')].map(isTagRefusal), [false, false, false], 'plain denials and invalid manifests');
});

test('platform filters: os/arch[/variant], arm64 defaults to v8, malformed ones refused', () => {
  assert.equal(platformFilter(undefined), undefined, 'no filter');
  const amd = platformFilter(['linux/amd64'])!;
  assert.deepEqual(['linux/amd64', 'linux/arm64/v8', 'windows/amd64'].map(amd), [true, false, false], 'exact os and arch');
  const arm = platformFilter(['linux/arm64'])!;
  assert.deepEqual(['linux/arm64', 'linux/arm64/v8', 'linux/arm/v7'].map(arm), [true, true, false], 'arm64 is arm64/v8');
  const v7 = platformFilter(['linux/arm/v7'])!;
  assert.deepEqual(['linux/arm/v7', 'linux/arm/v6'].map(v7), [true, false], 'variant compared when given');
  assert.throws(() => platformFilter(['linux']), /PLATFORM_INVALID|not os\/arch/, 'no arch');
});
