import type { Job } from '../../queue/types.js';
import { Layout, Status, Time } from './layout.js';
import { imageHref, imageName, resultOf } from './results.js';

/** What the live list shows of a job (the SSE payload; no result details, no secrets: none are in a job). */
export interface LiveJob {
  readonly id: string;
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly image: string;
  readonly status: string;
  readonly trigger: string;
  readonly updatedAt: string;
  readonly detail: string;
}

export function liveJob(job: Job): LiveJob {
  const result = resultOf(job);
  const detail = job.status === 'dead' ? job.lastError ?? ''
    : job.status === 'succeeded' ? `→ ${result.target ?? ''}`
      : job.status === 'skipped' ? result.reevaluation?.reason ?? result.reason ?? result.status ?? ''
        : job.lastError ? `retrying after: ${job.lastError}` : job.reason ?? '';
  return {
    id: job.id, registry: job.registry, repository: job.repository, ...(job.tag ? { tag: job.tag } : {}),
    image: imageName(job), status: job.status, trigger: job.trigger, updatedAt: job.updatedAt, detail,
  };
}

export function JobsPage(props: { jobs: readonly Job[] }) {
  return (
    <Layout title="Live jobs" section="jobs" scripts={['/dashboard/assets/live.js']}>
      <p class="muted">Newest first; rows change as jobs run (<span id="live-state">connecting…</span>).</p>
      <div class="table-wrap">
        <table id="jobs">
          <thead><tr><th class="hide-narrow">updated</th><th>image</th><th class="hide-narrow">trigger</th><th>status</th><th>detail</th></tr></thead>
          <tbody id="jobs-body">
            {props.jobs.length === 0 ? <tr id="jobs-empty"><td colspan={5} class="muted">No jobs yet.</td></tr> : null}
            {props.jobs.map((job) => {
              const live = liveJob(job);
              return (
                <tr id={`job-${job.id}`} data-status={job.status}>
                  <td class="hide-narrow"><Time iso={job.updatedAt} /></td>
                  <td class="wrap"><a href={imageHref(job)}>{live.image}</a></td>
                  <td class="hide-narrow">{job.trigger}</td>
                  <td><Status status={job.status} /></td>
                  <td class="wrap">{live.detail}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}
