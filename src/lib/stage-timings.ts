/**
 * Wall-clock time per pipeline stage, from the stage events a patch emits in
 * order (resolve, scan, plan, build, verify, publish; a stage that comes back,
 * as scan and plan do per platform, adds up). Finer events (per package) are
 * not stages and do not end one.
 */
export function stageTimer(stages: readonly string[], now: () => number = () => performance.now()) {
  const spent: Record<string, number> = {};
  let current: { stage: string; since: number } | undefined;
  const close = (at: number) => {
    if (current) spent[current.stage] = (spent[current.stage] ?? 0) + (at - current.since);
  };
  return {
    /** Feed every progress event; only the listed stages count. */
    event(event: { readonly stage: string }): void {
      if (!stages.includes(event.stage) || event.stage === current?.stage) return;
      const at = now();
      close(at);
      current = { stage: event.stage, since: at };
    },
    /** Milliseconds per stage (rounded), ending the running one. */
    done(): Record<string, number> {
      close(now());
      current = undefined;
      return Object.fromEntries(Object.entries(spent).map(([stage, ms]) => [stage, Math.round(ms)]));
    },
  };
}
