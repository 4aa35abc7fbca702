import type { Job, JobStatus } from '../../queue/types.js';
import { DailyChart } from './chart.js';
import { Layout, Status, Time } from './layout.js';
import { imageHref, imageName, resultOf, fixedVulnerabilities, shortDigest } from './results.js';
import type { Overview } from './stats.js';

export interface OverviewData {
  readonly totals: Overview;
  readonly counts: Record<JobStatus, number>;
  /** Configured registry name → whether it answered /v2/ (what /readyz reports). */
  readonly registries: Record<string, boolean>;
  /** Registry name → host (never the URL: it could carry credentials). */
  readonly hosts: Record<string, string>;
  readonly recent: readonly Job[];
}

export function OverviewPage(props: OverviewData) {
  const { totals, counts } = props;
  return (
    <Layout title="Overview" section="overview">
      <section class="cards" aria-label="totals">
        <div class="card" id="patched-today"><span class="n">{totals.patchedToday}</span><span class="label">images patched today</span></div>
        <div class="card" id="patched-week"><span class="n">{totals.patchedThisWeek}</span><span class="label">patched in the last 7 days</span></div>
        <div class="card" id="cves-fixed"><span class="n">{totals.cvesFixedThisWeek}</span><span class="label">vulnerabilities fixed (7 days)</span></div>
        <div class="card" id="failures"><a href="/dashboard/failures"><span class="n">{counts.dead}</span></a><span class="label">failed jobs ({totals.failedThisWeek} in 7 days)</span></div>
        <div class="card"><span class="n">{counts.queued + counts.running}</span><span class="label">queued or running</span></div>
      </section>

      <h2>Patches and vulnerabilities closed per day</h2>
      <DailyChart days={totals.days} />

      <h2>Registries</h2>
      <div class="table-wrap">
        <table id="registries">
          <thead><tr><th>registry</th><th>host</th><th>health</th></tr></thead>
          <tbody>
            {Object.entries(props.hosts).map(([name, host]) => {
              const up = props.registries[name];
              return (
                <tr>
                  <td>{name}</td>
                  <td class="mono">{host}</td>
                  <td>{up === undefined ? <span class="muted">not probed</span> : <Status status={up ? 'ok' : 'bad'} />}{up === false ? ' unreachable' : up ? ' reachable' : ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <h2>Recently patched</h2>
      {props.recent.length === 0 ? <p class="muted">Nothing patched yet.</p> : (
        <div class="table-wrap">
          <table id="recent">
            <thead><tr><th class="hide-narrow">finished</th><th>image</th><th>patched</th><th>fixed</th></tr></thead>
            <tbody>
              {props.recent.map((job) => {
                const result = resultOf(job);
                return (
                  <tr>
                    <td class="hide-narrow"><Time iso={job.finishedAt} /></td>
                    <td class="wrap"><a href={imageHref(job)}>{imageName(job)}</a></td>
                    <td class="mono">{shortDigest(job.digest)} → {shortDigest(result.digest)}</td>
                    <td>{fixedVulnerabilities(result).length}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
