import type { Job } from '../../queue/types.js';
import { Layout, Time } from './layout.js';
import { advisoryUrl, imageHref, imageName, stillExposed } from './results.js';

export interface ExposedImage {
  /** The newest finished job that scanned the image. */
  readonly job: Job;
  readonly findings: ReturnType<typeof stillExposed>;
}

export function ExposedPage(props: { images: readonly ExposedImage[] }) {
  const total = props.images.reduce((n, i) => n + i.findings.length, 0);
  return (
    <Layout title="Still exposed" section="exposed">
      <p class="muted">Findings of each image's latest scan that no patch can fix yet: no fixed version published, or the fix is not installable from the image's sources. {total} in {props.images.length} images.</p>
      {props.images.length === 0 ? <p class="muted">Nothing known to be exposed.</p> : (
        <div class="table-wrap">
          <table id="exposed">
            <thead><tr><th>image</th><th>package</th><th>vulnerability</th><th>why</th><th class="hide-narrow">scanned</th></tr></thead>
            <tbody>
              {props.images.flatMap(({ job, findings }) => findings.map((f) => (
                <tr>
                  <td class="wrap"><a href={imageHref(job)}>{imageName(job)}</a></td>
                  <td class="wrap">{f.package} <span class="muted mono">{f.version}</span></td>
                  <td>{f.id ? <a href={advisoryUrl(f.id)} rel="noopener noreferrer">{f.id}</a> : <span class="muted">–</span>}</td>
                  <td class="wrap">{f.why}</td>
                  <td class="hide-narrow"><Time iso={job.finishedAt} /></td>
                </tr>
              )))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
