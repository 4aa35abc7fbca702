import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { diff, image, marshal, merge, scratchFile } from '../../src/executors/buildkit/llb.js';
import { aptInstall } from '../../src/executors/buildkit/strategies/apt.js';
import { ProtoReader, ProtoWriter } from '../../src/executors/buildkit/proto/wire.js';
import { run } from '../harness/tools.js';

// patchd writes BuildKit's protobuf messages by hand: BuildKit's own buildctl
// (built from the same pinned module as buildkitd) decodes them here.

const repoRoot = new URL('../..', import.meta.url).pathname;
const buildctl = async () => join((await run('bash', [join(repoRoot, 'scripts/build-buildkitd.sh')])).stdout.trim().split('\n').at(-1)!, '..', 'buildctl-v0.32.2');

interface Dumped { Op: { inputs?: { digest: string; index?: number }[]; Op: Record<string, unknown>; platform?: { Architecture: string; OS: string } }; Digest: string; OpMetadata: { caps?: Record<string, boolean>; description?: Record<string, string> } }

async function dump(def: Buffer): Promise<Dumped[]> {
  const { stdout } = await run(await buildctl(), ['debug', 'dump-llb'], { input: def });
  return stdout.trim().split('\n').map((l) => JSON.parse(l) as Dumped);
}

test('buildctl decodes an apt patch graph exactly as built, with the same op digests', async () => {
  const base = image('127.0.0.1:5000/app@sha256:' + 'a'.repeat(64), { platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
  const { lower, upper } = aptInstall(base, [{ name: 'libssl3', version: '3.0.22-1~deb12u2', architecture: 'arm64' }, { name: 'libc6', version: '2.36-9+deb12u14', architecture: 'i386' }], 'arm64');
  const marshaled = marshal(diff(lower, upper, 'patch layer'));
  const ops = await dump(marshaled.definition.finish());
  assert.deepEqual(ops.map((o) => o.Digest), marshaled.digests);
  const [source, update, install, diffOp, terminal] = ops;
  assert.deepEqual(source!.Op.Op, { source: { identifier: `docker-image://127.0.0.1:5000/app@sha256:${'a'.repeat(64)}` } });
  assert.deepEqual(source!.Op.platform, { Architecture: 'arm64', OS: 'linux', Variant: 'v8' });
  const exec = (install!.Op.Op as { exec: { meta: { args: string[]; env: string[] }; mounts: { dest: string; mountType?: number; cacheOpt?: { ID: string; sharing: number } }[] } }).exec;
  assert.deepEqual(exec.meta.args.slice(-2), ['libssl3=3.0.22-1~deb12u2', 'libc6:i386=2.36-9+deb12u14']);
  assert.ok(exec.meta.env.includes('DEBIAN_FRONTEND=noninteractive'));
  assert.deepEqual(exec.mounts.map((m) => [m.dest, m.mountType ?? 0, m.cacheOpt?.ID, m.cacheOpt?.sharing]), [['/', 0, undefined, undefined], ['/var/cache/apt', 3, 'patchd-apt-cache', 2]]);
  assert.deepEqual(install!.Op.inputs?.map((i) => i.digest), [update!.Digest]);
  assert.deepEqual(diffOp!.Op.Op, { diff: { lower: {}, upper: { input: 1 } } });
  assert.deepEqual(diffOp!.Op.inputs?.map((i) => i.digest), [update!.Digest, install!.Digest]);
  assert.deepEqual(diffOp!.OpMetadata.caps, { diffop: true });
  assert.equal(diffOp!.OpMetadata.description?.['llb.customname'], 'patch layer');
  assert.deepEqual(terminal!.Op.inputs?.map((i) => i.digest), [diffOp!.Digest]);
});

test('merge, scratch files and deterministic digests', async () => {
  const build = () => marshal(merge([scratchFile('/a', 'x'), scratchFile('/b', Buffer.from([0, 1, 2]))]));
  assert.deepEqual(build().digests, build().digests);
  const ops = await dump(build().definition.finish());
  assert.deepEqual(ops[2]!.Op.Op, { merge: { inputs: [{}, { input: 1 }] } });
  assert.deepEqual((ops[1]!.Op.Op as { file: { actions: { Action: { mkfile: { data: string } } }[] } }).file.actions[0]!.Action.mkfile.data, Buffer.from([0, 1, 2]).toString('base64'));
  assert.throws(() => aptInstall(image('x@sha256:' + 'b'.repeat(64), { platform: { architecture: 'amd64', os: 'linux' } }), [{ name: 'evil; rm -rf /', version: '1' }], 'amd64'), /refusing to pass/);
});

test('the wire format round-trips varints (incl. negative int64), strings, maps and nested messages', () => {
  const nested = new ProtoWriter().string(1, 'inner').int(2, -1);
  const bytes = new ProtoWriter().string(1, 'héllo').int(2, 300).bool(3, true).stringMap(4, { b: '2', a: '1' }).message(5, nested, true).strings(6, ['x', '']).finish();
  const r = new ProtoReader(bytes);
  assert.deepEqual([r.string(1), r.int(2), r.bool(3), r.stringMap(4)], ['héllo', 300, true, { a: '1', b: '2' }]);
  assert.deepEqual([r.message(5)!.string(1), r.message(5)!.int(2)], ['inner', -1]);
  assert.deepEqual(r.repeatedBytes(6).map((b) => b.toString()), ['x', '']);
  assert.throws(() => new ProtoReader(Buffer.from([0x0a, 0x05, 0x61])), /truncated protobuf field/);
  // Map entries are written in key order, so equal maps encode to equal bytes.
  assert.deepEqual(new ProtoWriter().stringMap(1, { b: '2', a: '1' }).finish(), new ProtoWriter().stringMap(1, { a: '1', b: '2' }).finish());
});
