import type { Job } from '../../queue/types.js';
import { fixedVulnerabilities, resultOf, vulnerabilityKey } from './results.js';

export interface DayTotals {
  /** YYYY-MM-DD (UTC). */
  readonly day: string;
  readonly patches: number;
  /** Distinct vulnerabilities closed by that day's patches. */
  readonly cves: number;
}

export interface Overview {
  readonly patchedToday: number;
  readonly patchedThisWeek: number;
  /** Distinct vulnerabilities the last seven days' patches closed. */
  readonly cvesFixedThisWeek: number;
  readonly failedThisWeek: number;
  readonly days: readonly DayTotals[];
}

const dayOf = (iso: string) => iso.slice(0, 10);

/** Totals over jobs that finished in the last `days` days (UTC days, today included), from the jobs given. */
export function overview(jobs: readonly Job[], now: Date, days = 14): Overview {
  const today = dayOf(now.toISOString());
  const dayList = Array.from({ length: days }, (_, i) => dayOf(new Date(now.getTime() - (days - 1 - i) * 86_400_000).toISOString()));
  const weekStart = dayList[Math.max(0, days - 7)]!;
  const perDay = new Map(dayList.map((d) => [d, { patches: 0, cves: new Set<string>() }]));
  const weekCves = new Set<string>();
  let patchedToday = 0, patchedThisWeek = 0, failedThisWeek = 0;
  for (const job of jobs) {
    const day = job.finishedAt ? dayOf(job.finishedAt) : undefined;
    if (!day) continue;
    if (job.status === 'dead' && day >= weekStart) failedThisWeek++;
    if (job.status !== 'succeeded' || resultOf(job).status !== 'patched') continue;
    const fixed = fixedVulnerabilities(resultOf(job)).map(vulnerabilityKey);
    const bucket = perDay.get(day);
    if (bucket) { bucket.patches++; for (const id of fixed) bucket.cves.add(id); }
    if (day === today) patchedToday++;
    if (day >= weekStart) { patchedThisWeek++; for (const id of fixed) weekCves.add(id); }
  }
  return {
    patchedToday, patchedThisWeek, cvesFixedThisWeek: weekCves.size, failedThisWeek,
    days: dayList.map((day) => ({ day, patches: perDay.get(day)!.patches, cves: perDay.get(day)!.cves.size })),
  };
}
