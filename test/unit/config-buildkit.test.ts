import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

// Each replica talks to its own buildkitd: replicas share one config file (one
// ConfigMap), and PATCHD_BUILDKIT_ADDRESS, set per pod or per process, says
// which buildkitd this one uses.

const base = 'registries: {}\n';
const withBuildkit = 'buildkit:\n  address: unix:///run/buildkit/buildkitd.sock\n  toolingImages: { rpm: registry.example/tools/dnf:1 }\nregistries: {}\n';

test('PATCHD_BUILDKIT_ADDRESS replaces the file\'s address and keeps the rest of the buildkit block', () => {
  const config = loadConfig({ PATCHD_BUILDKIT_ADDRESS: 'tcp://10.0.0.7:1234' }, withBuildkit);
  assert.equal(config.buildkit?.address, 'tcp://10.0.0.7:1234', 'the environment wins over the file');
  assert.deepEqual(config.buildkit?.toolingImages, { rpm: 'registry.example/tools/dnf:1' }, 'toolingImages stay as the file says');
});

test('PATCHD_BUILDKIT_ADDRESS alone turns BuildKit on; unset or empty, the file decides', () => {
  assert.deepEqual(loadConfig({ PATCHD_BUILDKIT_ADDRESS: 'unix:///run/replica-2/buildkitd.sock' }, base).buildkit,
    { address: 'unix:///run/replica-2/buildkitd.sock', toolingImages: {} }, 'a buildkit block from the environment alone');
  assert.equal(loadConfig({}, base).buildkit, undefined, 'no BuildKit without file or environment');
  assert.equal(loadConfig({ PATCHD_BUILDKIT_ADDRESS: '' }, withBuildkit).buildkit?.address, 'unix:///run/buildkit/buildkitd.sock', 'an empty variable changes nothing');
});

test('a PATCHD_BUILDKIT_ADDRESS that is not unix:/// or tcp:// is refused, naming the variable', () => {
  assert.throws(() => loadConfig({ PATCHD_BUILDKIT_ADDRESS: 'buildkitd:1234' }, withBuildkit, 'patchd.yaml'),
    (error: unknown) => error instanceof ConfigError && error.code === 'CONFIG_INVALID' && /patchd\.yaml: PATCHD_BUILDKIT_ADDRESS: unix:\/\/\/path or tcp:\/\/host:port/.test(error.message),
    'a bare host:port is refused with the variable named');
});
