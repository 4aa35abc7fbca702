import type { PatchOutcome } from '../pipeline/types.js';

/** What an earlier job recorded (the worker's summary of its outcome): only the parts a comparison reads. */
interface RecordedPlatform {
  readonly platform?: string;
  readonly packages?: readonly { readonly name?: string; readonly to?: string }[];
  readonly libraries?: readonly { readonly ecosystem?: string; readonly name?: string; readonly path?: string; readonly to?: string }[];
  readonly findings?: readonly { readonly id?: string }[];
}

/**
 * What a plan (of a patch or a dry run) holds that the earlier patch of the
 * same original did not: a package or library at a version it did not
 * install. Where a dry run cannot plan (rpm, distroless: planned while
 * building in BuildKit), a fixable finding the earlier job did not see counts.
 */
export function newFixes(previousResult: unknown, trial: PatchOutcome): string[] {
  const recorded = ((previousResult ?? {}) as { platforms?: readonly RecordedPlatform[] }).platforms ?? [];
  const fresh: string[] = [];
  for (const platform of trial.platforms) {
    const before = recorded.find((p) => p.platform === platform.platform) ?? {};
    const had = new Set([
      ...(before.packages ?? []).map((p) => `${p.name} ${p.to}`),
      ...(before.libraries ?? []).map((l) => `${l.ecosystem}:${l.name}@${l.path} ${l.to}`),
    ]);
    const plan = platform.plan;
    for (const p of plan?.packages ?? []) {
      if (!had.has(`${p.name} ${p.to}`)) fresh.push(`${p.name} ${p.from} -> ${p.to}${p.reasons.length ? ` (${p.reasons.join(', ')})` : ''}`);
    }
    for (const l of plan?.libraries ?? []) {
      if (!had.has(`${l.ecosystem}:${l.name}@${l.path} ${l.to}`)) fresh.push(`${l.name} ${l.from} -> ${l.to} in ${l.path}${l.reasons.length ? ` (${l.reasons.join(', ')})` : ''}`);
    }
    const plannedNothing = (plan?.packages.length ?? 0) === 0 && (plan?.libraries?.length ?? 0) === 0;
    if (plannedNothing && platform.skipped?.startsWith('dry run')) {
      const seen = new Set((before.findings ?? []).map((f) => f.id));
      for (const f of platform.findings ?? []) if (f.fixedVersions.length > 0 && !seen.has(f.id)) fresh.push(`${f.id} in ${f.package.name} ${f.package.version}`);
    }
  }
  return [...new Set(fresh)];
}
