import { registryForHost, type AdmissionConfig, type Config, type RegistryConfig } from '../../config.js';
import { formatReference, type Reference } from '../../oci/reference.js';
import { Annotation } from '../../publish/annotations.js';
import { AdmissionError } from './errors.js';
import { normalizeImageReference } from './image-reference.js';
import type { PatchJob, PatchRecords } from './patch-records.js';
import type { RegistryLookups } from './registry-lookups.js';

/** What admission makes of one image. */
export interface ImageJudgement {
  /** Why it may not run; absent when it may. */
  readonly denial?: string;
  /** Something the user should know while it runs (a lookup that failed open). */
  readonly warning?: string;
  /** mutate: the patched image to run instead. */
  readonly replacement?: string;
}

export interface AdmissionPolicy {
  exemptNamespace(namespace: string | undefined): boolean;
  /** validate: is this image one patchd patched (tag mode: named so; verified mode: proven so)? */
  validate(image: string): Promise<ImageJudgement>;
  /** mutate: the patched image to run instead, when patchd has patched this one. */
  mutate(image: string): Promise<ImageJudgement>;
}

const defaultSuffix = '-patched';
const allowed: ImageJudgement = {};

/**
 * The admission rules. Exempt images pass untouched. Tag mode reads the
 * tag; verified mode proves the digest is patchd's output (the job store, or
 * patchd's annotations on the manifest), resolving a tag with a HEAD, and
 * denies registries patchd does not patch without contacting them. Lookups
 * that fail or time out fail open (allowed, with a warning) or closed.
 */
export function createAdmissionPolicy(deps: { readonly config: Config; readonly settings: AdmissionConfig; readonly records: PatchRecords; readonly lookups: RegistryLookups }): AdmissionPolicy {
  const { config, settings, records, lookups } = deps;
  const exemptNamespaces = new Set(settings.exempt.namespaces);
  const exemptRegistries = new Set(settings.exempt.registries.map((h) => (h.toLowerCase() === 'index.docker.io' ? 'docker.io' : h.toLowerCase())));
  const exemptImages = settings.exempt.images.map(compileGlob);
  // How users name each registry: its first host name (an alias such as the public name), else its URL's host.
  const configuredHosts = Object.values(config.registries).map((r) => r.hosts[0] ?? new URL(r.url).host);

  const parse = (image: string): Reference | ImageJudgement => {
    try {
      return normalizeImageReference(image);
    } catch (error) {
      if (error instanceof AdmissionError) return { denial: error.message };
      throw error;
    }
  };
  const exempt = (ref: Reference) => {
    if (exemptRegistries.has(ref.registry.toLowerCase())) return true;
    const name = `${ref.registry}/${ref.repository}`;
    const full = formatReference(ref);
    return exemptImages.some((re) => re.test(name) || re.test(full));
  };
  const failed = (error: unknown, image: string): ImageJudgement => {
    if (!(error instanceof AdmissionError) || error.code !== 'LOOKUP_FAILED') throw error;
    return settings.failOpen
      ? { warning: `patchd could not check ${image} (${error.message}); allowed because admission.failOpen is true` }
      : { denial: `cannot check it: ${error.message}` };
  };

  /** Why an image is not (yet) patched: its job when there is one, else what to do. */
  const notPatched = async (ref: Reference, target: { name: string; registry: RegistryConfig } | undefined, digest?: string): Promise<string> => {
    const suffix = target?.registry.policy.tagSuffix ?? defaultSuffix;
    const originalTag = ref.tag && patchedTag(ref.tag, suffix) ? stripSuffix(ref.tag, suffix) : ref.tag;
    const namedPatched = originalTag !== ref.tag;
    if (target) {
      // A -patched name that is not patchd's output: what became of its original tag.
      const job = namedPatched
        ? await records.latestFor({ registry: target.name, repository: ref.repository, tag: originalTag })
        : await records.latestFor({ registry: target.name, repository: ref.repository, digest: digest ?? ref.digest, tag: ref.tag });
      if (job) return jobStory(job);
      if (namedPatched) {
        return `tagged ${ref.tag} but not patchd's output (${digest ?? 'its digest'} is neither in patchd's job store nor annotated by patchd): push ${originalTag} to ${ref.registry} so patchd patches it`;
      }
    }
    const pushTo = target ? ref.registry : configuredHosts.join(' or ');
    return `not patched by patchd: push it to ${pushTo} so patchd patches it, or use ${ref.registry}/${ref.repository}:${originalTag ?? '<tag>'}${suffix}`;
  };

  /** Verified mode's proof: the job store produced this digest, or its manifest carries patchd's annotations. */
  const producedByPatchd = async (name: string, repository: string, digest: string, base?: string): Promise<boolean | 'absent'> => {
    if (!base && await records.producerOf(digest)) return true;
    const annotations = await lookups.annotationsOf(name, repository, digest);
    if (!annotations) return 'absent';
    const baseDigest = annotations[Annotation.baseDigest];
    return annotations[Annotation.patched] === 'true' && !!baseDigest && (base === undefined || baseDigest === base);
  };

  /** One image's lookups (a HEAD, then a manifest) share one lookupTimeoutMs, so a review answers within it. */
  const withinBound = (image: string, work: Promise<ImageJudgement>): Promise<ImageJudgement> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ImageJudgement>((resolve) => {
      timer = setTimeout(() => resolve(failed(new AdmissionError('LOOKUP_FAILED', `lookups gave no answer within ${settings.lookupTimeoutMs} ms`), image)), settings.lookupTimeoutMs);
    });
    return Promise.race([work, late]).finally(() => clearTimeout(timer));
  };

  const judge = {
    async validate(image: string): Promise<ImageJudgement> {
      const ref = parse(image);
      if (!('registry' in ref)) return ref;
      if (exempt(ref)) return allowed;
      const target = registryForHost(config, ref.registry);
      const suffix = target?.registry.policy.tagSuffix ?? defaultSuffix;
      if (settings.mode === 'tag') {
        return ref.tag && patchedTag(ref.tag, suffix) ? allowed : { denial: await notPatched(ref, target) };
      }
      if (!target) return { denial: `${ref.registry} is not a registry patchd patches (configured: ${configuredHosts.join(', ') || 'none'})` };
      let digest = ref.digest;
      try {
        digest ??= await lookups.digestOf(target.name, ref.repository, ref.tag!);
        if (!digest) return { denial: `${ref.repository}:${ref.tag} does not exist in ${ref.registry}` };
        const proof = await producedByPatchd(target.name, ref.repository, digest);
        if (proof === 'absent') return { denial: `${ref.repository}@${digest} does not exist in ${ref.registry}` };
        if (proof) return allowed;
      } catch (error) {
        return failed(error, image);
      }
      return { denial: await notPatched(ref, target, digest) };
    },

    async mutate(image: string): Promise<ImageJudgement> {
      const ref = parse(image);
      if (!('registry' in ref)) return settings.failOpen ? allowed : ref;
      if (exempt(ref)) return allowed;
      const target = registryForHost(config, ref.registry);
      if (!target) return settings.failOpen ? allowed : { denial: `${ref.registry} is not a registry patchd patches` };
      if (ref.tag && patchedTag(ref.tag, target.registry.policy.tagSuffix)) return allowed;
      const leave = (why: string): ImageJudgement => (settings.failOpen ? allowed : { denial: why });
      try {
        const digest = ref.digest ?? await lookups.digestOf(target.name, ref.repository, ref.tag!);
        if (!digest) return leave(`${ref.repository}:${ref.tag} does not exist in ${ref.registry}`);
        if (await records.producerOf(digest)) return allowed; // already patchd's output, named by digest
        const job = await records.latestFor({ registry: target.name, repository: ref.repository, digest, tag: ref.tag });
        if (!job?.patched) return leave(job ? jobStory(job) : await notPatched(ref, target, digest));
        const output = parse(job.patched.target);
        if (!('registry' in output)) return leave(`job ${job.job.id} recorded a target patchd cannot read: ${output.denial ?? ''}`);
        if (settings.mode === 'verified') {
          const proof = await producedByPatchd(target.name, output.repository, job.patched.digest, digest);
          if (proof !== true) return leave(`${job.patched.target}@${job.patched.digest} ${proof === 'absent' ? 'is gone from the registry' : `does not carry patchd's annotations for ${digest}`}`);
        }
        // Keep the host the Pod names the registry by (an alias of the configured URL's host).
        const host = target.registry.hosts.some((h) => h.toLowerCase() === output.registry.toLowerCase()) ? ref.registry : output.registry;
        return { replacement: `${host}/${output.repository}:${output.tag}@${job.patched.digest}` };
      } catch (error) {
        return failed(error, image);
      }
    },
  };

  return {
    exemptNamespace: (namespace) => namespace !== undefined && exemptNamespaces.has(namespace),
    validate: (image) => withinBound(image, judge.validate(image)),
    mutate: (image) => withinBound(image, judge.mutate(image)),
  };
}

/** `<tag><suffix>` or `<tag><suffix>-N`, with a tag before the suffix. */
export function patchedTag(tag: string, suffix: string): boolean {
  return new RegExp(`^.+${escapeRegExp(suffix)}(-\\d+)?$`).test(tag);
}

function stripSuffix(tag: string, suffix: string): string {
  return tag.replace(new RegExp(`${escapeRegExp(suffix)}(-\\d+)?$`), '');
}

function jobStory({ job, patched, reason }: PatchJob): string {
  switch (job.status) {
    case 'queued':
    case 'running':
      return `patch pending: job ${job.id} (${job.status})`;
    case 'succeeded':
      return patched ? `patched by patchd as ${patched.target}@${patched.digest} (job ${job.id}): use that image` : `job ${job.id} (succeeded) recorded no patched image`;
    case 'skipped':
      return `patchd did not patch it: job ${job.id} (skipped${reason ? `: ${reason}` : ''})`;
    case 'dead':
      return `patching failed: job ${job.id} (dead${job.lastError ? `: ${job.lastError}` : ''})`;
  }
}

/** '*' within a path segment, '**' across segments (as policy.include does), anchored. */
function compileGlob(glob: string): RegExp {
  return new RegExp(`^${glob.split('**').map((part) => part.split('*').map(escapeRegExp).join('[^/]*')).join('.*')}$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
