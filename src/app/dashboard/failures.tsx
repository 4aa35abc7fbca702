import type { Job } from '../../queue/types.js';
import { Layout, Time } from './layout.js';
import { imageHref, imageName } from './results.js';

export interface FailuresData {
  readonly dead: readonly Job[];
  /** Failed at least once and queued to run again (backoff). */
  readonly retrying: readonly Job[];
  /** Whether an admin token is configured: without one the page is read-only. */
  readonly canRetry: boolean;
  readonly notice?: { readonly text: string; readonly bad?: boolean };
}

export function FailuresPage(props: FailuresData) {
  return (
    <Layout title="Failures" section="failures">
      {props.notice ? <p class={props.notice.bad ? 'notice bad' : 'notice'} id="notice" role="status">{props.notice.text}</p> : null}
      {props.canRetry ? null : <p class="notice">Read-only: set <code>dashboard.adminToken</code> (or PATCHD_DASHBOARD_ADMIN_TOKEN) to retry failed jobs from here.</p>}
      <h2>Failed for good</h2>
      {props.dead.length === 0 ? <p class="muted">No failed jobs.</p> : (
        <div class="table-wrap">
          <table id="dead">
            <thead><tr><th class="hide-narrow">failed</th><th>image</th><th>reason</th><th class="hide-narrow">attempts</th>{props.canRetry ? <th>retry</th> : null}</tr></thead>
            <tbody>
              {props.dead.map((job) => (
                <tr id={`failed-${job.id}`}>
                  <td class="hide-narrow"><Time iso={job.finishedAt ?? job.updatedAt} /></td>
                  <td class="wrap"><a href={imageHref(job)}>{imageName(job)}</a><br /><span class="muted">{job.trigger}</span></td>
                  <td class="wrap"><code>{job.lastError ?? ''}</code></td>
                  <td class="hide-narrow">{job.attempts}</td>
                  {props.canRetry ? (
                    <td>
                      {/* The token travels in the form body, never in a URL or a cookie: a cross-site page cannot submit it. */}
                      <form class="retry" method="post" action={`/dashboard/failures/${encodeURIComponent(job.id)}/retry`}>
                        <input type="password" name="token" autocomplete="current-password" placeholder="admin token" aria-label="admin token" />
                        <button type="submit">Retry</button>
                      </form>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>Failed, will be retried</h2>
      {props.retrying.length === 0 ? <p class="muted">None.</p> : (
        <div class="table-wrap">
          <table id="retrying">
            <thead><tr><th>image</th><th>last error</th><th>attempts</th></tr></thead>
            <tbody>
              {props.retrying.map((job) => (
                <tr><td class="wrap"><a href={imageHref(job)}>{imageName(job)}</a></td><td class="wrap"><code>{job.lastError ?? ''}</code></td><td>{job.attempts}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
