// Benchmark (run on demand: `npm run bench:libraries`): Python and Node
// library fixes patched end to end by `patchd patch --pkg-types library`,
// in-process and through BuildKit (`--executor buildkit`: the image's own pip
// and npm in a real buildkitd), against the same registry and the same
// loopback package indexes. Prints wall time, client peak RSS and the patch
// layer's size for each run; run it twice to see warm caches.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBuildkitd } from '../test/harness/buildkitd.js';
import { pushRootfsImage } from '../test/harness/fixture-image.js';
import { startNpmMirror, startSimpleIndex } from '../test/harness/package-indexes.js';
import { startRegistry } from '../test/harness/registry.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;
const fixture = async (script: string, ...args: string[]) => (await run('bash', [join(repoRoot, 'test/fixtures', script), ...args], { timeoutMs: 60 * 60_000 })).stdout.trim().split('\n').at(-1)!;
const [registry, buildkitd, npmMirror, scratch] = await Promise.all([startRegistry(), startBuildkitd(), startNpmMirror(), tmpDir('patchd-library-bench')]);

async function timed(label: string, image: string, tag: string, args: string[]): Promise<void> {
  const timeFile = join(scratch.path, 'time.txt');
  const result = await run('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', 'node', join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '-t', tag, '--pkg-types', 'library', '--cache-dir', join(scratch.path, 'cache'), ...args], { cwd: repoRoot, allowFailure: true, env: { ...process.env, PATCHD_ADVISORIES: '' } });
  const [seconds, rssKiB] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  if (result.code !== 0) { console.log(`${label.padEnd(40)} failed: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`); return; }
  const repo = image.replace(/:[^:/]+$/, '');
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${repo}:${tag}`])).stdout) as { layers: { size: number }[] };
  console.log(`${label.padEnd(40)} ${seconds!.toFixed(2).padStart(7)} s  ${String(Math.round(rssKiB! / 1024)).padStart(5)} MiB RSS  ${(manifest.layers.at(-1)!.size / 1e3).toFixed(1).padStart(8)} kB patch layer`);
}

try {
  // Python: the venv's urllib3 2.0.5 and certifi from a private simple index holding the fixed wheels.
  const pythonRoot = await fixture('build-python-app.sh');
  await pushRootfsImage({ tarPath: pythonRoot, registryHost: registry.host, repository: 'bench/python', tag: 'v1' });
  const wheels = join(scratch.path, 'wheels');
  await run('python3', ['-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:', '--python-version', '3.11', '--disable-pip-version-check', '-d', wheels, 'urllib3==2.0.7', 'requests==2.32.3'], { env: { ...process.env, PIP_FIND_LINKS: '' } });
  const index = await startSimpleIndex((await readdir(wheels)).map((f) => join(wheels, f)));
  const venv = 'opt/app/venv/lib/python3.11/site-packages';
  const pyReport = join(scratch.path, 'python.json');
  await writeFile(pyReport, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
    { VulnerabilityID: 'GHSA-g4mx-q9vg-27p4', PkgName: 'urllib3', PkgPath: `${venv}/urllib3-2.0.5.dist-info/METADATA`, InstalledVersion: '2.0.5', FixedVersion: '2.0.7', Severity: 'MODERATE' },
    { VulnerabilityID: 'GHSA-9wx4-h78v-vm56', PkgName: 'requests', PkgPath: `${venv}/requests-2.31.0.dist-info/METADATA`, InstalledVersion: '2.31.0', FixedVersion: '2.32.3', Severity: 'MODERATE' },
  ] }] }));
  const python = `${registry.host}/bench/python:v1`;
  const pyArgs = ['-r', pyReport, '--pypi-index', index.url];
  console.log(`python: 2 libraries in a venv (bookworm + Debian's python3); buildkitd ${buildkitd.address}`);
  await timed('python in-process', python, 'inproc-1', pyArgs);
  await timed('python in-process (again)', python, 'inproc-2', pyArgs);
  await timed('python buildkit (pip in the image)', python, 'bk-1', [...pyArgs, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address]);
  await timed('python buildkit (again)', python, 'bk-2', [...pyArgs, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address]);
  await index.close();

  // Node: node-fetch 2.6.0 -> 2.6.1 in an app on a base with Debian's nodejs and npm (its dependencies are met: in-process can do it).
  const nodeBase = await fixture('build-node-app.sh', 'node-base');
  const fetchApp = await fixture('build-node-app.sh', 'fetch-app');
  await pushRootfsImage({ tarPath: nodeBase, extraLayers: [fetchApp], registryHost: registry.host, repository: 'bench/node', tag: 'v1' });
  const nodeReport = join(scratch.path, 'node.json');
  await writeFile(nodeReport, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Node.js', Class: 'lang-pkgs', Type: 'node-pkg', Vulnerabilities: [
    { VulnerabilityID: 'GHSA-w7rc-rwvf-8q5r', PkgName: 'node-fetch', PkgPath: 'srv/fetchapp/node_modules/node-fetch/package.json', InstalledVersion: '2.6.0', FixedVersion: '2.6.1', Severity: 'MODERATE' },
  ] }] }));
  const node = `${registry.host}/bench/node:v1`;
  const nodeArgs = ['-r', nodeReport, '--npm-registry', npmMirror.url];
  console.log('node: 1 transitive dependency in an app (bookworm + Debian\'s nodejs and npm)');
  await timed('node in-process', node, 'inproc-1', nodeArgs);
  await timed('node in-process (again)', node, 'inproc-2', nodeArgs);
  await timed('node buildkit (npm in the image)', node, 'bk-1', [...nodeArgs, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address]);
  await timed('node buildkit (again)', node, 'bk-2', [...nodeArgs, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address]);
} finally {
  await scratch.remove();
  await Promise.all([registry.stop(), buildkitd.stop(), npmMirror.close()]);
}
