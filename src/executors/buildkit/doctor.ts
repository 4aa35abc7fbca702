import { access, constants, stat } from 'node:fs/promises';
import { BuildkitClient, type BuildkitAddress } from './client.js';
import { BuildkitError } from './errors.js';
import { diff, marshal, merge, scratchFile } from './llb.js';

export interface DaemonReport {
  readonly address: string;
  readonly version: string;
  readonly workers: readonly { readonly id: string; readonly platforms: readonly string[]; readonly executor?: string; readonly snapshotter?: string }[];
}

/** MergeOp and DiffOp arrived in BuildKit v0.10. */
const minimumVersion = [0, 10, 0];

/**
 * What `patchd doctor` and start-up check: the socket is there and ours to
 * use, the daemon answers Info, has a worker, and solves a Diff and a Merge
 * (the ops every patch layer is built from); an older daemon gets an error
 * that names the version it needs.
 */
export async function checkDaemon(address: BuildkitAddress): Promise<DaemonReport> {
  if (address.address.startsWith('unix://')) {
    const path = address.address.slice('unix://'.length);
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new BuildkitError('BUILDKIT_UNAVAILABLE', `no BuildKit socket at ${path} (is buildkitd running with --addr unix://${path}?)`);
    if (!info.isSocket()) throw new BuildkitError('BUILDKIT_UNAVAILABLE', `${path} is not a socket`);
    await access(path, constants.R_OK | constants.W_OK).catch(() => {
      throw new BuildkitError('BUILDKIT_PERMISSION', `${path} is not readable and writable by uid ${process.getuid?.() ?? '?'} (buildkitd's --group option or the socket's mode decides who may connect)`);
    });
  }
  const client = new BuildkitClient(address);
  try {
    const info = await client.info();
    const version = info.version || 'unknown';
    const parsed = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version)?.slice(1).map(Number);
    // Builds from source without release ldflags say v0.0.0+unknown: judge those by the probe alone.
    if (parsed && !version.startsWith('v0.0.0') && compare(parsed, minimumVersion) < 0) {
      throw new BuildkitError('BUILDKIT_TOO_OLD', `buildkitd ${version} is too old: patchd needs v${minimumVersion.join('.')} or newer (MergeOp and DiffOp)`);
    }
    const workers = (await client.listWorkers()).map((w) => ({
      id: w.id,
      platforms: w.platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/')),
      ...(w.labels['org.mobyproject.buildkit.worker.executor'] ? { executor: w.labels['org.mobyproject.buildkit.worker.executor'] } : {}),
      ...(w.labels['org.mobyproject.buildkit.worker.snapshotter'] ? { snapshotter: w.labels['org.mobyproject.buildkit.worker.snapshotter'] } : {}),
    }));
    if (workers.length === 0) throw new BuildkitError('BUILDKIT_NO_WORKER', `buildkitd ${version} has no worker to run builds`);
    const probe = marshal(merge([diff(scratchFile('/a', 'a'), scratchFile('/b', 'b')), scratchFile('/c', 'c')], 'patchd capability probe'));
    try {
      await client.solve({ ref: `patchd-probe-${Date.now()}`, definition: probe.definition, session: '', exporters: [] });
    } catch (error) {
      throw new BuildkitError('BUILDKIT_TOO_OLD', `buildkitd ${version} cannot run a Diff/Merge build (needs v${minimumVersion.join('.')}+): ${(error as Error).message}`, { cause: error });
    }
    return { address: address.address, version, workers };
  } finally {
    client.close();
  }
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0) ? -1 : 1;
  return 0;
}
