import { join } from 'node:path';
import { run } from './tools.js';

// Pinned Kubernetes and policy tools (and Toxiproxy), built from the Go module proxy by
// scripts/build-go-tools.sh and cached; a cached tool costs one fast script run.

const repoRoot = new URL('../..', import.meta.url).pathname;

export type GoToolName = 'kube-apiserver' | 'kubectl' | 'etcd' | 'helm' | 'gator' | 'kyverno' | 'cosign' | 'toxiproxy';

const paths = new Map<GoToolName, Promise<string>>();

/** The path of a built tool, building it first when it is not cached (minutes for kube-apiserver). */
export function goTool(name: GoToolName): Promise<string> {
  let path = paths.get(name);
  if (!path) {
    path = locate(name);
    // A failed build is not remembered: the next caller retries and sees the error itself.
    path.catch(() => paths.delete(name));
    paths.set(name, path);
  }
  return path;
}

async function locate(name: GoToolName): Promise<string> {
  const { stdout } = await run('bash', [join(repoRoot, 'scripts/build-go-tools.sh'), name], { cwd: repoRoot });
  const line = stdout.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`build-go-tools.sh ${name} printed no path: ${stdout}`);
  return line.slice(name.length + 1).trim();
}
