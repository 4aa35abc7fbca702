/** The parts of a succeeded job's result (the worker's summary) that say what it fixed. */
export interface PatchResultSummary {
  readonly target?: string;
  readonly digest?: string;
  readonly platforms?: readonly { readonly packages?: readonly { readonly reasons?: readonly string[] }[]; readonly libraries?: readonly { readonly reasons?: readonly string[] }[] }[];
}

/** Finding ids the patch fixed (its plan's reasons), sorted. */
export function fixedIds(result: PatchResultSummary): string[] {
  const ids = new Set<string>();
  for (const p of result.platforms ?? []) for (const item of [...(p.packages ?? []), ...(p.libraries ?? [])]) for (const r of item.reasons ?? []) ids.add(r);
  return [...ids].sort();
}
