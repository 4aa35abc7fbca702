import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { codedError, type ErrorCodes } from './lib/errors.js';
import { copaTagSuffix } from './publish/tag-suffix.js';

export const configCodes = { CONFIG_INVALID: 'input', CONFIG_UNREADABLE: 'input' } as const satisfies ErrorCodes;
export type ConfigCode = keyof typeof configCodes;

export class ConfigError extends codedError(configCodes) {}

/** A mirror's own URL: http(s), and never with credentials in it (they go in `credentials` or the environment, which are never logged). */
const mirrorUrl = z.url({ protocol: /^https?$/ }).refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), 'put credentials in `credentials` or the environment, not in the URL');
const BasicCredentialsSchema = z.object({ username: z.string().min(1), password: z.string() }).strict();
const PackageIndexSchema = z.object({
  url: mirrorUrl,
  /** Basic, or a bearer token (npm's _authToken). */
  credentials: z.union([BasicCredentialsSchema, z.object({ token: z.string().min(1) }).strict()]).optional(),
}).strict();

/**
 * Where packages are fetched from instead of their public sources. apt and
 * rpm: URL prefixes as the image's sources name them, mapped to a mirror (the
 * image's sources files are not changed; signatures are still checked with
 * the image's own keys). Library indexes: a mirror or private index each.
 */
const MirrorsSchema = z.object({
  apt: z.array(z.object({ from: z.url(), to: mirrorUrl, credentials: BasicCredentialsSchema.optional() }).strict()).optional(),
  rpm: z.array(z.union([
    z.object({ from: z.url(), to: mirrorUrl }).strict(),
    /** A repository (by id) given a baseurl outright: for repositories that only name a metalink. */
    z.object({ repo: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/), to: mirrorUrl }).strict(),
  ])).optional(),
  pypi: PackageIndexSchema.optional(),
  npm: PackageIndexSchema.optional(),
  goProxy: PackageIndexSchema.optional(),
  nuget: PackageIndexSchema.optional(),
}).strict();
export type MirrorsConfig = z.infer<typeof MirrorsSchema>;

/**
 * ACR with Microsoft Entra (workload identity or a client secret): exchanged
 * at the registry's /oauth2/exchange for a refresh token. Fields left out are
 * taken from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE,
 * AZURE_AUTHORITY_HOST and AZURE_CLIENT_SECRET (as workload identity injects them).
 */
const EntraCredentialsSchema = z.object({
  tenantId: z.string().min(1).optional(),
  clientId: z.string().min(1).optional(),
  federatedTokenFile: z.string().min(1).optional(),
  clientSecret: z.string().min(1).optional(),
  authorityHost: z.url({ protocol: /^https?$/ }).optional(),
}).strict();
export type EntraCredentials = z.infer<typeof EntraCredentialsSchema>;

const RegistrySchema = z.object({
  /** Where patchd reaches the registry: 'https://harbor.example.com', 'http://127.0.0.1:5000'. */
  url: z.url(),
  /** Host names the registry's webhooks use for it; the url's own host is always included. */
  hosts: z.array(z.string().min(1)).default([]),
  webhookSecret: z.string().min(1).optional(),
  credentials: z.union([z.object({ username: z.string(), password: z.string() }), z.object({ entra: EntraCredentialsSchema }).strict()]).optional(),
  /** docker config.json with credentials for this registry. */
  dockerConfig: z.string().optional(),
  /** Registry identities that are patchd itself (e.g. Harbor robot account): their pushes are never patched. */
  ownActors: z.array(z.string()).default([]),
  /**
   * Where findings come from. `builtin`: patchd scans every push itself.
   * `harbor`: pushes wait for Harbor's SCANNING_COMPLETED, and Harbor's own
   * report (read from its API with these credentials) drives the plan.
   */
  scanner: z.enum(['builtin', 'harbor']).default('builtin'),
  /** Harbor's API base when it is not served at `url` (same host in a standard install). */
  harborUrl: z.url().optional(),
  policy: z.object({
    include: z.array(z.string()).default(['**']),
    exclude: z.array(z.string()).default([]),
    /** Copa's rule: joined to the tag with `-` (`patched` and `-patched` both give `<tag>-patched`); holds the literal text appended. */
    tagSuffix: z.string().regex(/^[A-Za-z0-9._-]+$/).default('-patched').transform(copaTagSuffix),
    /** floating: `<tag><suffix>`, moved on every re-patch; incremental: also `<tag><suffix>-N` (N from the registry's tag list), as ACR does. */
    tagScheme: z.enum(['floating', 'incremental']).default('floating'),
    ignoreErrors: z.boolean().default(false),
    /** Copa's --pkg-types: which packages a patch may touch. */
    pkgTypes: z.array(z.enum(['os', 'library'])).min(1).default(['os']),
    /** Copa's --library-patch-level: the biggest version bump a library may take. */
    libraryPatchLevel: z.enum(['patch', 'minor', 'major']).default('patch'),
    /** auto: in-process, BuildKit for packages whose maintainer scripts must run; or one executor for all. */
    executor: z.enum(['auto', 'inprocess', 'buildkit']).default('auto'),
    /** Copa's --toolchain-patch-level: how far a Go binary's toolchain may move to fix stdlib findings; unset, they are not patched. */
    toolchainPatchLevel: z.enum(['patch', 'minor', 'major']).optional(),
    /** How patch layers are compressed; unset, gzip. zstd needs OCI image manifests (a Docker schema 2 image fails its job). */
    compression: z.enum(['gzip', 'zstd']).optional(),
    /** Attach an OpenVEX document and CycloneDX SBOMs to each patched image as OCI referrers; false turns it off. */
    evidence: z.boolean().default(true),
    /** Package mirrors for this registry's images; each kind given here replaces the top-level `mirrors` one. */
    mirrors: MirrorsSchema.optional(),
  }).default({ include: ['**'], exclude: [], tagSuffix: '-patched', tagScheme: 'floating', ignoreErrors: false, pkgTypes: ['os'], libraryPatchLevel: 'patch', executor: 'auto', evidence: true }),
}).strict();

/** BuildKit's address: buildkitd's --addr. */
const buildkitAddress = z.string().regex(/^(unix:\/\/\/|tcp:\/\/)/, 'unix:///path or tcp://host:port');

/** Image globs name images by their normalised name ('docker.io/library/nginx', never 'nginx'), so they start with a host or a glob. */
const imageGlob = z.string().min(1).refine((g) => /^(\*|[^/]*[.:][^/]*\/|localhost\/)/.test(g), 'image globs match normalised names: start with the registry host (docker.io/library/nginx, not nginx) or a *');

/**
 * The Kubernetes admission webhooks (AdmissionReview v1), on their own TLS
 * listener. `tag`: an image passes when its tag is `<tag><suffix>[-N]`;
 * `verified`: when its digest is one patchd produced (job store or patchd's
 * annotations on the manifest). `enforce: false` allows with warnings (audit);
 * `failOpen: false` denies when a lookup fails or mutate has nothing patched.
 */
const AdmissionSchema = z.object({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8443),
  /** PEM files (a cert-manager Secret's tls.crt / tls.key), read at start and re-read every reloadSeconds (0: never). */
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  reloadSeconds: z.number().int().min(0).default(60),
  mode: z.enum(['tag', 'verified']).default('tag'),
  enforce: z.boolean().default(true),
  failOpen: z.boolean().default(true),
  /** Registry lookups (HEAD of a tag, a manifest's annotations) give up after this long, then fail open or closed. */
  lookupTimeoutMs: z.number().int().min(50).max(25_000).default(2000),
  /** How long answers from the job store and registries are reused. */
  cacheTtlSeconds: z.number().int().min(0).max(3600).default(10),
  exempt: z.object({
    namespaces: z.array(z.string().min(1)).default([]),
    /** Registry hosts as images name them ('registry.k8s.io', 'localhost:5000'). */
    registries: z.array(z.string().min(1)).default([]),
    /** '*' within a path segment, '**' across segments, as in policy.include. */
    images: z.array(imageGlob).default([]),
  }).strict().default({ namespaces: [], registries: [], images: [] }),
}).strict();
export type AdmissionConfig = z.infer<typeof AdmissionSchema>;

const RedisQueueSchema = z.object({
  url: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be a redis:// or rediss:// URL'),
  /** Prefix of every key patchd writes, so several installations can share one Redis. */
  prefix: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('patchd'),
  /**
   * How long a claimed job stays locked to its replica without a heartbeat (renewed every third of it):
   * a replica that dies mid-job loses the job to another replica this long after its last renewal.
   */
  lockSeconds: z.number().min(0.5).max(3600).default(30),
}).strict();
export type RedisQueueConfig = z.infer<typeof RedisQueueSchema>;

export const ConfigSchema = z.object({
  admission: AdmissionSchema.optional(),
  server: z.object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8080) }).strict().default({ host: '127.0.0.1', port: 8080 }),
  dataDir: z.string().default('./data'),
  cacheDir: z.string().optional(),
  worker: z.object({
    concurrency: z.number().int().min(1).max(64).default(2),
    maxAttempts: z.number().int().min(1).max(50).default(5),
    retryBaseMs: z.number().int().min(1).default(2000),
  }).strict().default({ concurrency: 2, maxAttempts: 5, retryBaseMs: 2000 }),
  webhooks: z.object({ bodyLimitBytes: z.number().int().min(1024).default(1024 * 1024) }).strict().default({ bodyLimitBytes: 1024 * 1024 }),
  /** The BuildKit sidecar for installs that need a package manager or scripts. */
  buildkit: z.object({
    /** Each replica talks to its own buildkitd: a pod-local socket, or PATCHD_BUILDKIT_ADDRESS per pod (one ConfigMap for every replica). */
    address: buildkitAddress,
    tls: z.object({ caFile: z.string().optional(), certFile: z.string().optional(), keyFile: z.string().optional(), serverName: z.string().optional() }).strict().optional(),
    /** Images BuildKit runs package managers from, for images that have none (rpm: dnf + rpm; deb: Debian with apt, for distroless; go: a Go toolchain at /usr/local/go, for go.mod updates and binary rebuilds; dotnet: a .NET SDK image with curl and node, for NuGet packages patchd cannot fetch and verify itself). */
    toolingImages: z.object({ rpm: z.string().optional(), deb: z.string().optional(), go: z.string().optional(), dotnet: z.string().optional() }).strict().default({}),
  }).strict().optional(),
  /** OSV advisories: directories of records or per-ecosystem all.zip files, loaded at start and reloaded when they change (continuous.watchAdvisories). */
  advisories: z.object({ osv: z.array(z.string()).default([]) }).strict().default({ osv: [] }),
  /**
   * Continuous patching: images patchd patched are re-evaluated (and patched
   * again when there is something new to fix) when `advisories.osv` changes on
   * disk (watchAdvisories, default on when it is set; checked every
   * pollSeconds) and every intervalMinutes (fractions allowed; unset: no schedule).
   */
  continuous: z.object({
    watchAdvisories: z.boolean().optional(),
    pollSeconds: z.number().min(0.2).max(86_400).default(60),
    intervalMinutes: z.number().min(0.01).optional(),
  }).strict().default({ pollSeconds: 60 }),
  /** Where library fixes are checked to exist (mirrors welcome). */
  libraryIndex: z.object({
    pypi: z.url().optional(), npm: z.url().optional(), goProxy: z.url().optional(), nuget: z.url().optional(),
  }).strict().default({}),
  /** Package mirrors for every registry's images (a registry's policy.mirrors overrides them kind by kind). */
  mirrors: MirrorsSchema.default({}),
  /**
   * Sign every patched image in cosign's format: an EC P-256 key, PKCS#8 PEM or `cosign generate-key-pair`'s
   * encrypted key, whose password is read from the environment variable `passwordEnv` names (never from this file).
   */
  signing: z.object({
    keyFile: z.string().min(1),
    passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('PATCHD_SIGNING_PASSWORD'),
  }).strict().optional(),
  /**
   * The dashboard at /dashboard: read-only for everyone who can reach the port; retrying a failed job
   * needs `adminToken` (or PATCHD_DASHBOARD_ADMIN_TOKEN); without one configured, nothing can be changed from it.
   */
  dashboard: z.object({
    enabled: z.boolean().default(true),
    adminToken: z.string().min(16, 'the dashboard admin token needs at least 16 characters').optional(),
  }).strict().default({ enabled: true }),
  /**
   * The job queue: SQLite in dataDir (the default; one process), or Redis through BullMQ so several
   * replicas share one queue. `redis.url` may carry a password (redis://:PASSWORD@host:6379/0, rediss:// for
   * TLS); PATCHD_REDIS_URL replaces it (keep the password in a Secret); it is never logged.
   */
  queue: z.object({ redis: RedisQueueSchema.optional() }).strict().default({}),
  registries: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'registry names are lower-case words'), RegistrySchema),
}).strict();

export type Config = z.infer<typeof ConfigSchema>;
export type RegistryConfig = Config['registries'][string];

/** Reads and validates the config file at `path`. */
export async function readConfigFile(env: Readonly<Record<string, string | undefined>>, path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError('CONFIG_UNREADABLE', `cannot read config ${path}: ${(error as Error).message}`, { cause: error });
  }
  return loadConfig(env, text, path);
}

/**
 * Parses the YAML config and applies secret overrides from the environment
 * (PATCHD_<NAME>_WEBHOOK_SECRET, PATCHD_<NAME>_USERNAME / _PASSWORD, NAME upper-cased,
 * '-' as '_'), and mirror credentials: PATCHD_[<NAME>_]<KIND>_USERNAME / _PASSWORD
 * (KIND: APT, PYPI, NPM, GOPROXY, NUGET) or _TOKEN (the library indexes), for
 * mirrors the file configures. Entra credentials: PATCHD_<NAME>_CLIENT_SECRET, and the
 * AZURE_* variables for fields the file leaves out; PATCHD_BUILDKIT_ADDRESS for buildkit.address; PATCHD_REDIS_URL for queue.redis.url. Pure: the caller reads the file and passes the environment.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, yamlText: string, origin = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseYaml(yamlText);
  } catch (error) {
    throw new ConfigError('CONFIG_INVALID', `${origin} is not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError('CONFIG_INVALID', `${origin}: ${z.prettifyError(parsed.error)}`);
  const config = parsed.data;
  applyMirrorCredentials(config.mirrors, env, 'PATCHD_');
  applyBuildkitAddress(config, env, origin);
  const redisUrl = env.PATCHD_REDIS_URL;
  if (redisUrl) {
    const parsedUrl = RedisQueueSchema.shape.url.safeParse(redisUrl);
    if (!parsedUrl.success) throw new ConfigError('CONFIG_INVALID', `${origin}: PATCHD_REDIS_URL must be a redis:// or rediss:// URL`);
    config.queue.redis = { prefix: 'patchd', lockSeconds: 30, ...config.queue.redis, url: parsedUrl.data };
  }
  const dashboardToken = env.PATCHD_DASHBOARD_ADMIN_TOKEN;
  if (dashboardToken) {
    if (dashboardToken.length < 16) throw new ConfigError('CONFIG_INVALID', `${origin}: PATCHD_DASHBOARD_ADMIN_TOKEN needs at least 16 characters`);
    config.dashboard.adminToken = dashboardToken;
  }
  for (const [name, registry] of Object.entries(config.registries)) {
    const prefix = `PATCHD_${name.toUpperCase().replace(/-/g, '_')}_`;
    if (registry.policy.mirrors) applyMirrorCredentials(registry.policy.mirrors, env, prefix);
    const secret = env[`${prefix}WEBHOOK_SECRET`];
    if (secret) registry.webhookSecret = secret;
    const username = env[`${prefix}USERNAME`];
    if (username) registry.credentials = { username, password: env[`${prefix}PASSWORD`] ?? '' };
    if (registry.credentials && 'entra' in registry.credentials) applyEntraEnvironment(registry.credentials.entra, env, prefix, `${origin}: registries.${name}.credentials.entra`);
    const own = new URL(registry.url).host;
    if (!registry.hosts.includes(own)) registry.hosts.push(own);
  }
  return config;
}

/**
 * PATCHD_BUILDKIT_ADDRESS replaces (or supplies) buildkit.address, so replicas sharing one config file
 * each reach their own buildkitd (an address set per pod or per process) rather than one daemon they would all share.
 */
function applyBuildkitAddress(config: Config, env: Readonly<Record<string, string | undefined>>, origin: string): void {
  const address = env.PATCHD_BUILDKIT_ADDRESS;
  if (!address) return;
  const parsed = buildkitAddress.safeParse(address);
  if (!parsed.success) throw new ConfigError('CONFIG_INVALID', `${origin}: PATCHD_BUILDKIT_ADDRESS: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  config.buildkit = { toolingImages: {}, ...config.buildkit, address: parsed.data };
}

/** Entra fields the file leaves out, from the environment (a registry's own client secret wins over the file's). */
function applyEntraEnvironment(entra: EntraCredentials, env: Readonly<Record<string, string | undefined>>, prefix: string, where: string): void {
  const secret = env[`${prefix}CLIENT_SECRET`];
  if (secret) entra.clientSecret = secret;
  entra.tenantId ??= env.AZURE_TENANT_ID || undefined;
  entra.clientId ??= env.AZURE_CLIENT_ID || undefined;
  entra.federatedTokenFile ??= env.AZURE_FEDERATED_TOKEN_FILE || undefined;
  entra.authorityHost ??= env.AZURE_AUTHORITY_HOST || undefined;
  if (!entra.federatedTokenFile) entra.clientSecret ??= env.AZURE_CLIENT_SECRET || undefined;
  if (!entra.tenantId || !entra.clientId) throw new ConfigError('CONFIG_INVALID', `${where}: tenantId and clientId are needed (in the file, or AZURE_TENANT_ID and AZURE_CLIENT_ID)`);
  if (!entra.federatedTokenFile && !entra.clientSecret) throw new ConfigError('CONFIG_INVALID', `${where}: a federatedTokenFile (or AZURE_FEDERATED_TOKEN_FILE) or a clientSecret is needed`);
}

const indexKinds = { pypi: 'PYPI', npm: 'NPM', goProxy: 'GOPROXY', nuget: 'NUGET' } as const;

/** Credentials from the environment for the mirrors `mirrors` configures (the environment wins over the file). */
function applyMirrorCredentials(mirrors: MirrorsConfig, env: Readonly<Record<string, string | undefined>>, prefix: string): void {
  const username = env[`${prefix}APT_USERNAME`];
  if (username) for (const m of mirrors.apt ?? []) m.credentials = { username, password: env[`${prefix}APT_PASSWORD`] ?? '' };
  for (const [key, kind] of Object.entries(indexKinds) as [keyof typeof indexKinds, string][]) {
    const index = mirrors[key];
    if (!index) continue;
    const token = env[`${prefix}${kind}_TOKEN`];
    const user = env[`${prefix}${kind}_USERNAME`];
    if (token) index.credentials = { token };
    else if (user) index.credentials = { username: user, password: env[`${prefix}${kind}_PASSWORD`] ?? '' };
  }
}

/** The mirrors one registry's images are patched through: its policy's, kind by kind, else the top-level ones. */
export function mirrorsForRegistry(config: Config, registry: RegistryConfig): MirrorsConfig {
  const own = registry.policy.mirrors ?? {};
  const merged: MirrorsConfig = { ...config.mirrors };
  for (const [key, value] of Object.entries(own)) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  return merged;
}

/** The configured registry a webhook's host belongs to, if any: nothing else is ever contacted. */
export function registryForHost(config: Config, host: string): { name: string; registry: RegistryConfig } | undefined {
  const wanted = host.toLowerCase();
  for (const [name, registry] of Object.entries(config.registries)) {
    if (registry.hosts.some((h) => h.toLowerCase() === wanted)) return { name, registry };
  }
  return undefined;
}

const compiledPolicies = new WeakMap<RegistryConfig['policy'], { include: RegExp[]; exclude: RegExp[] }>();

/** Repository include/exclude globs: '*' within a path segment, '**' across segments (compiled once per policy). */
export function repositoryAllowed(policy: RegistryConfig['policy'], repository: string): boolean {
  let compiled = compiledPolicies.get(policy);
  if (!compiled) {
    const compile = (glob: string) => new RegExp(`^${glob.split('**').map((part) => part.split('*').map(escape).join('[^/]*')).join('.*')}$`);
    compiled = { include: policy.include.map(compile), exclude: policy.exclude.map(compile) };
    compiledPolicies.set(policy, compiled);
  }
  return compiled.include.some((re) => re.test(repository)) && !compiled.exclude.some((re) => re.test(repository));
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}
