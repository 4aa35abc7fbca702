// Benchmark (on demand: `npm run bench:copa`): patchd against Copa v0.14.2
// (built from the Go module proxy by scripts/build-copa.sh), side by side in
// one run, on the same bookworm fixture, local registry and buildkitd:
//   cold:   empty caches (a fresh buildkitd per run, an empty --cache-dir);
//   steady: a new image digest (the fixture plus one small layer) with warm
//           caches (one buildkitd, one cache dir), as a running service sees
//           each push; `patchd serve` is timed from the webhook's arrival to
//           the `-patched` tag answering in the registry.
// Both tools patch everything outdated (no report): Copa's update-all mode
// (`apt-get upgrade` in the image) and patchd's default. Copa's Debian tooling
// image (debian:12-slim, first tried at ghcr.io/project-copacetic/copacetic/debian:12-slim)
// is the fixture served from the local registry, through a BuildKit source
// policy (EXPERIMENTAL_BUILDKIT_SOURCE_POLICY, as Copa's FAQ shows); its
// endoflife.date lookup goes to a loopback stand-in (--eol-api-url).
// Prints medians, ratios copa/patchd, patch-layer sizes, the packages each
// tool upgraded (read back from each result's dpkg status) and where patchd's
// time goes (patchd patch from its --progress events, patchd serve from the
// stage times its job records). Asserts nothing. Environment: COPA_BENCH_RUNS
// (default 3); COPA_BENCH_COPA=0 times patchd alone (while working on it: no ratios).
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { startBuildkitd, type RunningBuildkitd } from '../test/harness/buildkitd.js';
import { bookwormRootfsTar, pushRootfsImage } from '../test/harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../test/harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../test/harness/registry.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;
const runs = Number(process.env.COPA_BENCH_RUNS ?? 3);
const withCopa = process.env.COPA_BENCH_COPA !== '0';
const benchStarted = Date.now();
const log = (text: string) => console.log(`[${((Date.now() - benchStarted) / 1000).toFixed(0).padStart(4)}s] ${text}`);

interface Timed { readonly seconds: number; readonly ok: boolean; readonly stdout: string; readonly stderr: string }

/** Runs a whole process and times it (wall clock, spawn to exit). */
function timedRun(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 10 * 60_000): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ seconds: (performance.now() - started) / 1000, ok: code === 0, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (s: number) => `${s.toFixed(2)} s`;
const tail = (text: string, lines = 25) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** `Package: version` of every installed package in a dpkg status file. */
function parseStatus(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const stanza of text.split(/\n\n+/)) {
    const pkg = /^Package: (.+)$/m.exec(stanza)?.[1];
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    if (pkg && version && /^Status: .* installed$/m.test(stanza)) result.set(pkg, version);
  }
  return result;
}

interface Result { readonly layers: number; readonly layerBytes: number; readonly upgraded: Map<string, string> }

type Manifest = { layers: { digest: string; size: number; mediaType: string }[] };
const manifestOf = async (registry: RunningRegistry, repository: string, ref: string): Promise<Manifest> =>
  JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/${repository}:${ref}`])).stdout) as Manifest;

/**
 * The patch: the result's layers that the source image does not have (compressed
 * sizes from the result manifest), and the packages the newest dpkg status among
 * them shows newer than the fixture's.
 */
async function inspectResult(registry: RunningRegistry, repository: string, tag: string, base: Map<string, string>, scratch: string): Promise<Result> {
  const source = new Set((await manifestOf(registry, repository, tag)).layers.map((l) => l.digest));
  const added = (await manifestOf(registry, repository, `${tag}-patched`)).layers.filter((l) => !source.has(l.digest));
  let status = '';
  for (const layer of [...added].reverse()) {
    const blob = join(scratch, 'layer');
    const response = await fetch(`${registry.url}/v2/${repository}/blobs/${layer.digest}`);
    await writeFile(blob, Buffer.from(await response.arrayBuffer()));
    const dir = join(scratch, 'layer.d');
    await run('rm', ['-rf', dir]);
    await mkdir(dir);
    // GNU tar recognises gzip and zstd by their magic bytes.
    await run('tar', ['-xf', blob, '-C', dir, '--wildcards', '*var/lib/dpkg/status'], { allowFailure: true });
    status = await readFile(join(dir, 'var/lib/dpkg/status'), 'utf8').catch(() => '');
    if (status) break;
  }
  const upgraded = new Map<string, string>();
  for (const [pkg, version] of parseStatus(status)) if (base.get(pkg) !== version) upgraded.set(pkg, `${base.get(pkg) ?? '(new)'} -> ${version}`);
  return { layers: added.length, layerBytes: added.reduce((sum, l) => sum + l.size, 0), upgraded };
}

/** patchd's --progress rawjson events on stderr: seconds per stage (each event lasts until the next; the last until exit). */
function patchdStages(timed: Timed, startedAtMs: number): Map<string, number> {
  const events: { t: number; key: string }[] = [];
  for (const line of timed.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as { time?: string; stage?: string; phase?: string; detail?: string };
      if (typeof e.time === 'string' && e.stage) events.push({ t: Date.parse(e.time), key: e.stage === 'package' ? `package ${e.phase}` : e.stage === 'build' && e.detail && e.detail !== 'single' && !e.detail.includes('/') ? `build: ${e.detail}` : e.stage });
    } catch { /* a log line that is not an event */ }
  }
  const stages = new Map<string, number>();
  const add = (key: string, ms: number) => stages.set(key, (stages.get(key) ?? 0) + ms / 1000);
  if (events.length === 0) return stages;
  add('process start (spawn to first event)', events[0]!.t - startedAtMs);
  const end = startedAtMs + timed.seconds * 1000;
  events.forEach((e, i) => add(e.key, (events[i + 1]?.t ?? end) - e.t));
  return stages;
}

/** Copa's `--progress plain` BuildKit output: seconds per named step (`#N name` … `#N DONE 1.2s`). */
function copaSteps(timed: Timed): [string, number][] {
  const names = new Map<string, string>();
  const steps: [string, number][] = [];
  for (const line of `${timed.stdout}\n${timed.stderr}`.split('\n')) {
    const named = /^#(\d+) (.+)$/.exec(line);
    if (named && !/^(DONE|CACHED|ERROR)\b/.test(named[2]!) && !names.has(named[1]!)) names.set(named[1]!, named[2]!.slice(0, 90));
    const done = /^#(\d+) DONE (\d+(?:\.\d+)?)s$/.exec(line);
    if (done) steps.push([names.get(done[1]!) ?? `#${done[1]}`, Number(done[2])]);
  }
  return steps;
}

/** A loopback stand-in for endoflife.date: Debian 12 maintained (what the real API answered for bookworm in 2026). */
async function startEolStub(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (/\/debian\/releases\/12$/.test(req.url ?? '')) res.end(JSON.stringify({ schema_version: '1.2.0', result: { isEol: false, eolFrom: '2026-06-10', isMaintained: true } }));
    else { res.statusCode = 404; res.end('{}'); }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, server };
}

const scratch = await tmpDir('patchd-copa-bench');
const registry = await startRegistry();
const eol = await startEolStub();
const daemons: RunningBuildkitd[] = [];
let serve: RunningPatchd | undefined;
try {
  log('building Copa v0.14.2 (scripts/build-copa.sh; cached after the first time) and buildkitd ...');
  const copa = (await run('bash', [join(repoRoot, 'scripts/build-copa.sh')], { cwd: repoRoot })).stdout.trim().split('\n').at(-1)!;
  const copaVersion = (await run(copa, ['--version'])).stdout.trim();
  const tar = await bookwormRootfsTar();
  const base = parseStatus((await run('tar', ['-xOf', tar, './var/lib/dpkg/status'])).stdout);

  // Copa's Debian tooling image, served locally: the fixture itself (bookworm with apt).
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'library/debian', tag: '12-slim' });
  const policy = join(scratch.path, 'source-policy.json');
  const local = `docker-image://${registry.host}/library/debian:12-slim`;
  await writeFile(policy, JSON.stringify({
    rules: ['docker.io/library/debian:12-slim', 'ghcr.io/project-copacetic/copacetic/debian:12-slim'].map((from) => ({
      action: 'CONVERT', selector: { identifier: `docker-image://${from}` }, updates: { identifier: local },
    })),
  }, null, 2));
  const dockerConfig = join(scratch.path, 'docker');
  await mkdir(dockerConfig);
  await writeFile(join(dockerConfig, 'config.json'), '{}');
  const copaEnv = { ...process.env, EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: policy, DOCKER_CONFIG: dockerConfig };
  const patchdEnv = { ...process.env, PATCHD_LOG_LEVEL: 'info' };

  // Every timed run patches an image no tool has patched before (its own tag, and in steady its own digest).
  let counter = 0;
  const pushTarget = async (repository: string, extraLayer: boolean): Promise<string> => {
    const tag = `t${++counter}`;
    const extraLayers: string[] = [];
    if (extraLayer) {
      const dir = join(scratch.path, `extra-${tag}`);
      await mkdir(join(dir, 'root/etc'), { recursive: true });
      await writeFile(join(dir, 'root/etc/bench-build'), `build ${tag} ${Date.now()}\n`);
      await run('tar', ['--numeric-owner', '-C', join(dir, 'root'), '-cf', join(dir, 'layer.tar'), '.']);
      extraLayers.push(join(dir, 'layer.tar'));
    }
    await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository, tag, extraLayers });
    return tag;
  };

  const runCopa = async (bk: RunningBuildkitd, repository: string, tag: string): Promise<Timed> => {
    const timed = await timedRun(copa, ['patch', '-i', `${registry.host}/${repository}:${tag}`, '-t', `${tag}-patched`, '--push', '-a', bk.address,
      '--progress', 'plain', '--eol-api-url', eol.url, '--timeout', '8m'], copaEnv);
    if (!timed.ok) throw new Error(`copa failed after ${fmt(timed.seconds)}:\n${tail(timed.stderr, 60)}\n${tail(timed.stdout, 20)}`);
    return timed;
  };
  const runPatchd = async (bk: RunningBuildkitd, cacheDir: string, repository: string, tag: string): Promise<{ timed: Timed; stages: Map<string, number> }> => {
    const startedAt = Date.now();
    const timed = await timedRun('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/${repository}:${tag}`, '-t', `${tag}-patched`,
      '-a', bk.address, '--cache-dir', cacheDir, '--progress', 'rawjson'], patchdEnv);
    if (!timed.ok) throw new Error(`patchd patch failed after ${fmt(timed.seconds)}:\n${tail(timed.stderr, 40)}`);
    return { timed, stages: patchdStages(timed, startedAt) };
  };

  const results: { copa?: Result; patchd?: Result; serve?: Result } = {};
  const coldCopa: number[] = [];
  const coldPatchd: number[] = [];
  const steadyCopa: number[] = [];
  const steadyPatchd: number[] = [];
  const steadyServe: number[] = [];
  const stageRuns: { label: string; stages: Map<string, number> }[] = [];
  let copaStepsShown: [string, number][] = [];
  let copaTooling: string[] = [];

  // ---- cold: a fresh buildkitd (empty state) per run; patchd with an empty cache dir; a repository of its own per run.
  for (let i = 1; i <= runs; i++) {
    if (withCopa) {
      const repository = `cold/copa-${i}`;
      const tag = await pushTarget(repository, false);
      const bk = await startBuildkitd();
      daemons.push(bk);
      const timed = await runCopa(bk, repository, tag);
      coldCopa.push(timed.seconds);
      log(`cold   copa         #${i}: ${fmt(timed.seconds)}`);
      if (i === 1) {
        results.copa = await inspectResult(registry, repository, tag, base, scratch.path);
        copaStepsShown = copaSteps(timed);
        // Evidence that the source policy took: the tooling image BuildKit resolved is the local one.
        copaTooling = [...new Set(`${timed.stdout}\n${timed.stderr}`.match(/\S*debian:12-slim\S*/g) ?? [])];
      }
      await bk.stop();
      daemons.pop();
    }
    {
      const repository = `cold/patchd-${i}`;
      const tag = await pushTarget(repository, false);
      const bk = await startBuildkitd();
      daemons.push(bk);
      const { timed, stages } = await runPatchd(bk, join(scratch.path, `cold-cache-${i}`), repository, tag);
      coldPatchd.push(timed.seconds);
      stageRuns.push({ label: `cold #${i}`, stages });
      log(`cold   patchd patch #${i}: ${fmt(timed.seconds)}`);
      if (i === 1) results.patchd = await inspectResult(registry, repository, tag, base, scratch.path);
      await bk.stop();
      daemons.pop();
    }
  }

  // ---- steady: one buildkitd and one patchd cache dir, warmed by one untimed run of each tool; then new digests.
  const bk = await startBuildkitd();
  daemons.push(bk);
  const warmCache = join(scratch.path, 'steady-cache');
  if (withCopa) await runCopa(bk, 'steady/app', await pushTarget('steady/app', true));
  await runPatchd(bk, warmCache, 'steady/app', await pushTarget('steady/app', true));
  const serveDir = join(scratch.path, 'serve');
  await mkdir(serveDir);
  serve = await startPatchdServe({
    dir: serveDir,
    logs: 'pipe',
    env: { PATCHD_LOG_LEVEL: 'info' },
    config: () => [
      `dataDir: ${JSON.stringify(join(serveDir, 'data'))}`,
      `cacheDir: ${JSON.stringify(warmCache)}`,
      `buildkit: { address: "${bk.address}" }`,
      'worker: { concurrency: 1 }',
      'registries:',
      `  local: { url: "${registry.url}", webhookSecret: s3cret }`,
    ],
  });
  let serveLog = '';
  serve.child.stderr?.on('data', (c: Buffer) => { serveLog += c.toString(); });
  const serveOnce = async (repository: string, tag: string): Promise<{ seconds: number; lines: string[]; stages: { stage: string; seconds: number }[] }> => {
    const manifest = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const digest = manifest.headers.get('docker-content-digest')!;
    const body = JSON.stringify({ events: [{ id: `bench-${tag}`, timestamp: new Date().toISOString(), action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, length: 1, repository, tag }, request: { id: 'r', host: registry.host, method: 'PUT', useragent: 'bench' }, actor: {}, source: { addr: registry.host, instanceID: 'i' } }] });
    const logFrom = serveLog.length;
    const started = performance.now();
    const startedAt = Date.now();
    const answer = await fetch(`${serve!.url}/webhooks/distribution`, { method: 'POST', body, headers: { 'content-type': 'application/vnd.docker.distribution.events.v2+json', authorization: 'Bearer s3cret' } });
    if (answer.status !== 202) throw new Error(`webhook answered ${answer.status}: ${await answer.text()}`);
    const jobId = ((await answer.json()) as { jobs: { id: string }[] }).jobs[0]!.id;
    for (;;) {
      const head = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}-patched`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json' } });
      if (head.status === 200) break;
      if (performance.now() - started > 5 * 60_000) throw new Error(`patchd serve: no ${tag}-patched after 5 min:\n${tail(serveLog.slice(logFrom), 30)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - started) / 1000;
    // The job goes on after the tag (signature, VEX and SBOM referrers): its stage times once it has finished.
    let stages: { stage: string; seconds: number }[] = [];
    for (let waited = 0; waited < 120_000; waited += 50) {
      const job = (await (await fetch(`${serve!.url}/jobs/${jobId}`)).json()) as { status: string; result?: { stageMs?: Record<string, number> } };
      if (job.status !== 'queued' && job.status !== 'running') { stages = Object.entries(job.result?.stageMs ?? {}).map(([stage, ms]) => ({ stage, seconds: ms / 1000 })); break; }
      await new Promise((r) => setTimeout(r, 50));
    }
    const lines = serveLog.slice(logFrom).split('\n').filter((l) => l.startsWith('{')).map((l) => {
      try {
        const e = JSON.parse(l) as { time?: number; msg?: string };
        return `+${(((e.time ?? startedAt) - startedAt) / 1000).toFixed(3)} s  ${e.msg ?? l.slice(0, 100)}`;
      } catch { return l.slice(0, 120); }
    });
    return { seconds, lines, stages };
  };
  await serveOnce('steady/app', await pushTarget('steady/app', true)); // the service's own warm-up (first job)
  let serveLines: string[] = [];
  const serveStages: Map<string, number>[] = [];
  for (let i = 1; i <= runs; i++) {
    if (withCopa) {
      const copaTimed = await runCopa(bk, 'steady/app', await pushTarget('steady/app', true));
      steadyCopa.push(copaTimed.seconds);
      log(`steady copa         #${i}: ${fmt(copaTimed.seconds)}`);
    }
    const tag = await pushTarget('steady/app', true);
    const { timed, stages } = await runPatchd(bk, warmCache, 'steady/app', tag);
    steadyPatchd.push(timed.seconds);
    stageRuns.push({ label: `steady #${i}`, stages });
    log(`steady patchd patch #${i}: ${fmt(timed.seconds)}`);
    const serveTag = await pushTarget('steady/app', true);
    const served = await serveOnce('steady/app', serveTag);
    steadyServe.push(served.seconds);
    serveLines = served.lines;
    serveStages.push(new Map(served.stages.map((s) => [s.stage, s.seconds])));
    log(`steady patchd serve #${i}: ${fmt(served.seconds)} (webhook POST to ${serveTag}-patched answering HEAD)`);
    if (i === runs) results.serve = await inspectResult(registry, 'steady/app', serveTag, base, scratch.path);
  }

  // ---- report
  const c = (xs: number[]) => (xs.length ? median(xs) : Number.NaN);
  console.log('');
  console.log(`${copaVersion} vs patchd, bookworm fixture (${base.size} packages), ${runs} runs each, medians; one registry, one buildkitd build, loopback`);
  console.log(`                              copa        patchd      copa/patchd`);
  console.log(`cold   (fresh buildkitd, empty caches)   ${fmt(c(coldCopa)).padStart(9)}   ${fmt(c(coldPatchd)).padStart(9)}   ${(c(coldCopa) / c(coldPatchd)).toFixed(2)}x   (patchd patch, whole process)`);
  console.log(`steady (new digest, warm caches)         ${fmt(c(steadyCopa)).padStart(9)}   ${fmt(c(steadyPatchd)).padStart(9)}   ${(c(steadyCopa) / c(steadyPatchd)).toFixed(2)}x   (patchd patch, whole process)`);
  console.log(`steady, patchd serve webhook -> tag      ${fmt(c(steadyCopa)).padStart(9)}   ${fmt(c(steadyServe)).padStart(9)}   ${(c(steadyCopa) / c(steadyServe)).toFixed(2)}x   (patchd serve, webhook POST to -patched tag visible)`);
  console.log(`all runs: cold copa [${coldCopa.map(fmt).join(', ')}]  cold patchd [${coldPatchd.map(fmt).join(', ')}]`);
  console.log(`          steady copa [${steadyCopa.map(fmt).join(', ')}]  steady patchd [${steadyPatchd.map(fmt).join(', ')}]  serve [${steadyServe.map(fmt).join(', ')}]`);
  console.log('');
  const size = (r?: Result) => (r ? `${(r.layerBytes / 1e6).toFixed(2)} MB (${r.layerBytes} bytes in ${r.layers} layer${r.layers === 1 ? '' : 's'})` : 'n/a');
  console.log(`patch (compressed; the result's layers the source image does not have): copa ${size(results.copa)}   patchd patch ${size(results.patchd)}   patchd serve ${size(results.serve)}`);
  for (const [name, r] of Object.entries(results)) {
    console.log(`${name} upgraded ${r?.upgraded.size ?? 0} packages (from the result's dpkg status):`);
    for (const [pkg, change] of [...(r?.upgraded ?? new Map<string, string>())].sort()) console.log(`    ${pkg.padEnd(24)} ${change}`);
  }
  const same = (a?: Result, b?: Result) => a && b && a.upgraded.size === b.upgraded.size && [...a.upgraded].every(([k, v]) => b.upgraded.get(k) === v);
  console.log(`same packages and versions: copa vs patchd patch ${same(results.copa, results.patchd) ? 'yes' : 'NO'}; patchd patch vs serve ${same(results.patchd, results.serve) ? 'yes' : 'NO'}`);
  console.log('');
  console.log('where patchd patch\'s time goes (seconds per stage, from --progress rawjson; median over runs):');
  for (const kind of ['cold', 'steady']) {
    const of = stageRuns.filter((s) => s.label.startsWith(kind));
    const keys = [...new Set(of.flatMap((s) => [...s.stages.keys()]))];
    console.log(`  ${kind}:`);
    for (const k of keys) console.log(`    ${k.padEnd(40)} ${median(of.map((s) => s.stages.get(k) ?? 0)).toFixed(2).padStart(6)} s`);
  }
  console.log('where patchd serve\'s time goes (seconds per stage, from the job\'s recorded stage times; median over runs; publish includes the signature and referrers pushed after the tag):');
  for (const k of [...new Set(serveStages.flatMap((m) => [...m.keys()]))]) console.log(`    ${k.padEnd(40)} ${median(serveStages.map((m) => m.get(k) ?? 0)).toFixed(2).padStart(6)} s`);
  console.log(`patchd serve's log (last steady run; offsets from the webhook POST; the tag answered at +${steadyServe.at(-1)!.toFixed(3)} s):`);
  for (const l of serveLines) console.log(`    ${l}`);
  console.log(`Copa's tooling image as its BuildKit output names it (source policy ${local}): ${copaTooling.join(' ') || '(not named)'}`);
  console.log('Copa\'s BuildKit steps (cold run #1, --progress plain, DONE times):');
  for (const [name, s] of copaStepsShown) if (s >= 0.05) console.log(`    ${s.toFixed(1).padStart(6)} s  ${name}`);
  console.log(`total bench time ${((Date.now() - benchStarted) / 1000).toFixed(0)} s`);
} finally {
  await serve?.stop();
  for (const bk of daemons) await bk.stop().catch(() => {});
  eol.server.close();
  await registry.stop();
  await scratch.remove();
}
