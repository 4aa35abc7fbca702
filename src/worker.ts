import type { Dispatcher } from 'undici';
import type { Metrics } from './lib/metrics.js';
import { ConfigError, mirrorsForRegistry, type Config, type EntraCredentials } from './config.js';
import { PatchdError } from './lib/errors.js';
import { stageTimer } from './lib/stage-timings.js';
import type { Logger } from './lib/log.js';
import { acrEntraKeychain } from './oci/acr.js';
import { createRegistryClient, type RegistryClient } from './oci/client.js';
import { dockerConfigKeychain, staticKeychain, type Keychain } from './oci/keychain.js';
import { patchImage } from './pipeline/patch-image.js';
import { reevaluation } from './continuous/reevaluate-job.js';
import { defaultLibraryIndexUrls, httpLibraryIndex, type LibraryIndex, type PackageIndexes } from './plan/library-index.js';
import type { PackageMirrors, PatchOutcome } from './pipeline/patch-image.js';
import type { BuildkitClient } from './executors/buildkit/client.js';
import type { ManifestSigner } from './publish/signing-key.js';
import type { AdvisorySources } from './scan/scan.js';
import { fetchHarborReport } from './scan/sources/harbor.js';
import type { OsvDatabase } from './scan/sources/osv.js';
import type { Job, JobQueue } from './queue/types.js';

export interface WorkerDependencies {
  readonly config: Config;
  readonly queue: JobQueue;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly dispatcher: Dispatcher;
  readonly cacheDir: string;
  readonly tmpDir: string;
  /** OSV advisories (config `advisories.osv`) as currently loaded: continuous patching reloads them when they change. */
  readonly osv?: () => OsvDatabase | undefined;
  readonly libraryIndex: LibraryIndex;
  readonly buildkit?: BuildkitClient;
  /** Config `signing`: every patched image is signed in cosign's format. */
  readonly signer?: ManifestSigner;
}

/** What the worker talks to one configured registry with. */
export interface RegistryAccess {
  /** host[:port] of the registry's URL: how image references name it. */
  readonly host: string;
  readonly keychain: Keychain;
  readonly client: RegistryClient;
}

/**
 * One client per configured registry, built once: its challenge and tokens
 * (per scope) are fetched once and serve every job, not fetched again per job.
 */
export function connectRegistries(config: Config, deps: { dispatcher: Dispatcher; logger: Logger }): ReadonlyMap<string, RegistryAccess> {
  return new Map(Object.entries(config.registries).map(([name, registry]) => {
    const endpoint = new URL(registry.url);
    const credentials = registry.credentials;
    const keychain: Keychain = credentials && 'entra' in credentials
      ? acrKeychain(endpoint, credentials.entra, deps.dispatcher)
      : credentials
        ? staticKeychain({ [endpoint.host]: credentials })
        : dockerConfigKeychain(registry.dockerConfig ?? '/nonexistent/config.json');
    const client = createRegistryClient({
      logger: deps.logger.child({ registry: name }), dispatcher: deps.dispatcher, keychain,
      plainHttp: (host) => host === endpoint.host && endpoint.protocol === 'http:',
    });
    return [name, { host: endpoint.host, keychain, client }] as const;
  }));
}

/** ACR's Entra exchange for a registry; the config layer has filled in the environment's values. */
function acrKeychain(endpoint: URL, entra: EntraCredentials, dispatcher: Dispatcher): Keychain {
  const { tenantId, clientId, federatedTokenFile, clientSecret, authorityHost } = entra;
  if (!tenantId || !clientId) throw new ConfigError('CONFIG_INVALID', `${endpoint.host}: Entra credentials need tenantId and clientId`);
  return acrEntraKeychain({
    registry: endpoint.host, endpoint: endpoint.origin, tenantId, clientId, dispatcher,
    ...(federatedTokenFile ? { tokenFile: federatedTokenFile } : {}), ...(clientSecret ? { clientSecret } : {}), ...(authorityHost ? { authorityHost } : {}),
  });
}

/** Where one registry's images get their packages from: its policy's mirrors, else the top-level ones, else the public sources. */
export interface PackageSources {
  readonly mirrors: PackageMirrors;
  readonly packageIndexes: PackageIndexes;
  /** Asks the same indexes the downloads come from (one per registry with its own, so answers are never shared across credentials). */
  readonly libraryIndex: LibraryIndex;
}

export function packageSources(config: Config, deps: { dispatcher: Dispatcher; libraryIndex: LibraryIndex }): ReadonlyMap<string, PackageSources> {
  return new Map(Object.entries(config.registries).map(([name, registry]) => {
    const m = mirrorsForRegistry(config, registry);
    const index = (key: keyof PackageIndexes) => m[key] ?? { url: config.libraryIndex[key] ?? defaultLibraryIndexUrls[key] };
    const packageIndexes: PackageIndexes = { pypi: index('pypi'), npm: index('npm'), goProxy: index('goProxy'), nuget: index('nuget') };
    const ownIndexes = m.pypi || m.npm || m.goProxy || m.nuget;
    return [name, {
      mirrors: { ...(m.apt ? { apt: m.apt } : {}), ...(m.rpm ? { rpm: m.rpm } : {}) },
      packageIndexes,
      libraryIndex: ownIndexes ? httpLibraryIndex({ dispatcher: deps.dispatcher, indexes: packageIndexes }) : deps.libraryIndex,
    }] as const;
  }));
}

/**
 * Runs queued patch jobs, `concurrency` at a time: resolves tag-only pushes
 * to a digest (a second job for the same digest is skipped), patches, records
 * the outcome; transient failures are retried with exponential backoff and a
 * job that keeps failing ends dead with its last error. stop() stops claiming
 * and waits for running jobs; any it cuts short are requeued on the next start.
 */
export function startWorker(deps: WorkerDependencies): { stop(timeoutMs?: number): Promise<void>; wake(): void } {
  const { config, queue, logger, metrics } = deps;
  const registries = connectRegistries(config, deps);
  const sources = packageSources(config, deps);
  let stopping = false;
  let wakeUp: (() => void) | undefined;
  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    wakeUp = () => { clearTimeout(timer); resolve(); };
  });

  const slots = Array.from({ length: config.worker.concurrency }, async () => {
    while (!stopping) {
      try {
        const job = await queue.claim();
        if (!job) { await sleep(250); continue; }
        await runJob(job);
      } catch (error) {
        // The queue itself failed (Redis unreachable): the job stays where the queue has it (a lapsed lock is taken over); try again shortly.
        logger.warn({ err: (error as Error).message }, 'job queue unavailable; trying again in a second');
        await sleep(1000);
      }
    }
  });

  /** Whether the job is still this replica's; when the queue cannot say, as before (recording then fails as it would). */
  const stillHeld = (id: string) => queue.holds(id).catch(() => true);

  async function runJob(job: Job): Promise<void> {
    const started = Date.now();
    const log = logger.child({ job: job.id, registry: job.registry, repository: job.repository });
    const registry = config.registries[job.registry];
    const access = registries.get(job.registry);
    if (!registry || !access) { await queue.fail(job.id, `registry ${job.registry} is no longer configured`, undefined); return; }
    const { client, keychain, host } = access;
    const packages = sources.get(job.registry)!;
    try {
      if (!job.tag) {
        await queue.succeed(job.id, 'skipped', { reason: 'pushed by digest only: no tag to name the patched image after' });
        return;
      }
      let digest = job.digest;
      if (!digest) {
        const head = await client.headManifest({ registry: host, repository: job.repository, tag: job.tag });
        if (!head) { await queue.succeed(job.id, 'skipped', { reason: `${job.repository}:${job.tag} no longer exists` }); return; }
        digest = head.digest;
        if (!(await queue.attachDigest(job.id, digest))) { await queue.succeed(job.id, 'skipped', { reason: `duplicate: ${digest} is already handled by another job` }); return; }
      }
      let report: AdvisorySources['report'];
      if (registry.scanner === 'harbor') {
        // Harbor scanned this artifact: its report, not ours, says what is vulnerable.
        const credentials = await keychain.resolve(host);
        const basic = credentials && 'username' in credentials && credentials.username ? { username: credentials.username, password: credentials.password ?? '' } : undefined;
        report = { kind: 'harbor', json: await fetchHarborReport({ baseUrl: registry.harborUrl ?? registry.url, repository: job.repository, digest, dispatcher: deps.dispatcher, ...(basic ? { credentials: basic } : {}) }) };
      }
      // A re-evaluation (continuous patching) pushes only when there is something new to fix.
      const reevaluating = job.revision ? reevaluation(queue, job) : undefined;
      const osv = deps.osv?.();
      // Per-stage wall-clock time, for the dashboard's image page.
      const timer = stageTimer(['resolve', 'scan', 'plan', 'build', 'verify', 'publish']);
      const outcome = await (reevaluating?.patch ?? patchImage)(
        {
          client, dispatcher: deps.dispatcher, logger: log, cacheDir: deps.cacheDir, tmpDir: deps.tmpDir,
          libraryIndex: packages.libraryIndex, packageIndexes: packages.packageIndexes, mirrors: packages.mirrors,
          ...(deps.buildkit ? { buildkit: { client: deps.buildkit, keychain, ...(config.buildkit ? { toolingImages: config.buildkit.toolingImages } : {}) } } : {}),
          ...(deps.signer ? { signer: deps.signer } : {}),
        },
        {
          image: { registry: host, repository: job.repository, tag: job.tag, digest }, tagSuffix: registry.policy.tagSuffix, ignoreErrors: registry.policy.ignoreErrors, dryRun: false,
          advisories: { ...(report ? { report } : {}), ...(osv && !report ? { osv } : {}) },
          pkgTypes: { os: registry.policy.pkgTypes.includes('os'), library: registry.policy.pkgTypes.includes('library') },
          libraryPatchLevel: registry.policy.libraryPatchLevel, executor: registry.policy.executor,
          ...(registry.policy.toolchainPatchLevel ? { toolchainPatchLevel: registry.policy.toolchainPatchLevel } : {}),
          tagScheme: registry.policy.tagScheme,
          ...(registry.policy.compression ? { compression: registry.policy.compression } : {}),
          evidence: registry.policy.evidence,
          onProgress: (event) => timer.event(event),
          // A replica that stalled past its lock may have lost the job to another: it must publish nothing then.
          beforePublish: async () => { if (!(await stillHeld(job.id))) throw new ClaimLost(job.id); },
        },
      );
      const stageMs = timer.done();
      const summary = {
        ...reevaluating?.summary(),
        status: outcome.status, target: outcome.target, digest: outcome.digest, sourceDigest: outcome.sourceDigest,
        ...(outcome.tags ? { tags: outcome.tags } : {}), ...(whyNotPatched(outcome) ? { reason: whyNotPatched(outcome) } : {}), ...(outcome.notes ? { notes: outcome.notes } : {}),
        ...(outcome.evidence ? { evidence: outcome.evidence } : {}),
        ...(outcome.signature ? { signature: outcome.signature } : {}),
        stageMs,
        platforms: outcome.platforms.map(({ plan, findings, ...p }) => ({
          ...p, findings: findings?.map((f) => ({ id: f.id, aliases: f.aliases, severity: f.severity, package: f.package.name, version: f.package.version, fixed: f.fixedVersions, source: f.source })),
          packages: plan?.packages.map(({ candidate: _c, ...rest }) => rest), heldBack: plan?.heldBack, unavailable: plan?.unavailable,
          libraries: plan?.libraries, notPatched: plan?.skipped,
        })),
      };
      if (!(await stillHeld(job.id))) throw new ClaimLost(job.id);
      await queue.succeed(job.id, outcome.status === 'patched' ? 'succeeded' : 'skipped', summary);
      metrics.count('patchd_patch_outcomes_total', { outcome: outcome.status });
      log.info({ status: outcome.status, target: outcome.target }, 'job done');
    } catch (error) {
      // A job lost to another replica is that replica's to record: this one's error would overwrite its outcome.
      if (error instanceof ClaimLost || !(await stillHeld(job.id))) {
        // Another replica runs this job now (this one stalled past its lock): it records the outcome, not us.
        await queue.abandon(job.id).catch(() => undefined);
        metrics.count('patchd_patch_outcomes_total', { outcome: 'claim-lost' });
        log.warn({ err: (error as Error).message }, 'claim lost to another replica: its outcome is not recorded here');
        return;
      }
      const code = error instanceof PatchdError ? error.code : 'INTERNAL';
      const message = error instanceof Error ? error.message : String(error);
      // The error says whether it is worth another attempt (registries, mirrors, BuildKit busy or unreachable); anything else, bugs included, ends the job.
      const transient = error instanceof PatchdError && error.transient;
      const retryAt = transient && job.attempts < config.worker.maxAttempts
        ? new Date(Date.now() + config.worker.retryBaseMs * 2 ** (job.attempts - 1) * (0.75 + Math.random() / 2)) : undefined;
      await queue.fail(job.id, `${code}: ${message}`, retryAt);
      metrics.count('patchd_patch_outcomes_total', { outcome: retryAt ? 'retry' : 'dead' });
      log.warn({ code, err: message, retryAt }, retryAt ? 'job failed, will retry' : 'job failed for good');
    } finally {
      metrics.observe('patchd_job_duration_seconds', { registry: job.registry }, (Date.now() - started) / 1000);
    }
  }

  return {
    wake: () => wakeUp?.(),
    async stop(timeoutMs = 30_000) {
      stopping = true;
      wakeUp?.();
      let timer: NodeJS.Timeout | undefined;
      // The bound must not outlive the wait: a pending timer would hold the process for its whole length.
      await Promise.race([Promise.all(slots), new Promise((r) => { timer = setTimeout(r, timeoutMs); })]);
      clearTimeout(timer);
    },
  };
}

/** Why a job pushed nothing: the outcome's reason, else what its platforms say (no dpkg database, nothing selected, ...). */
function whyNotPatched(outcome: PatchOutcome): string | undefined {
  if (outcome.reason) return outcome.reason;
  if (outcome.status === 'patched') return undefined;
  const skipped = [...new Set(outcome.platforms.map((p) => p.skipped).filter((r): r is string => r !== undefined))];
  return skipped.length > 0 ? skipped.join('; ') : undefined;
}

/** The job's claim went to another replica while this one ran it (see JobQueue.holds). */
class ClaimLost extends Error {
  constructor(id: string) {
    super(`job ${id} is no longer this replica's (its lock lapsed and another replica took it over)`);
  }
}
