import { join } from 'node:path';
import { bookwormRootfsTar, pushRootfsImage, type PushedImage } from './fixture-image.js';
import { run } from './tools.js';

// A stand-in for docker.io/library/node:24-bookworm-slim (Docker Hub is not
// reachable from the tests): the bookworm fixture plus one layer with the
// official Node.js 24 binary and npm in the official image's places
// (test/fixtures/build-node-base.sh, cached outside the repo).

const repoRoot = new URL('../..', import.meta.url).pathname;

let nodeLayer: Promise<string> | undefined;

/** Path of the cached /usr/local layer (node, its headers, npm, the npm and npx links). */
export function nodeBaseLayerTar(): Promise<string> {
  nodeLayer ??= run('bash', [join(repoRoot, 'test/fixtures/build-node-base.sh')], { cwd: repoRoot, timeoutMs: 10 * 60_000 }).then(
    ({ stdout }) => {
      const path = stdout.trim().split('\n').at(-1);
      if (!path?.endsWith('.tar')) throw new Error(`build-node-base.sh printed no tar path: ${stdout}`);
      return path;
    },
    (err: unknown) => {
      nodeLayer = undefined; // let a later caller retry
      throw err;
    },
  );
  return nodeLayer;
}

export interface PushedNodeBase extends PushedImage {
  /** `<registryHost>/node:24-bookworm-slim`, for a Dockerfile's `FROM`. */
  readonly reference: string;
}

/** Pushes the Node.js 24 base to `registryHost` (a plain-HTTP registry) as `node:24-bookworm-slim`. */
export async function pushNodeBaseImage(registryHost: string): Promise<PushedNodeBase> {
  const [rootfs, layer] = await Promise.all([bookwormRootfsTar(), nodeBaseLayerTar()]);
  const pushed = await pushRootfsImage({ tarPath: rootfs, extraLayers: [layer], registryHost, repository: 'node', tag: '24-bookworm-slim' });
  return { ...pushed, reference: `${registryHost}/node:24-bookworm-slim` };
}
