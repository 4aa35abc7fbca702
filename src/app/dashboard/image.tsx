import type { Job } from '../../queue/types.js';
import { Layout, Status, Time } from './layout.js';
import { advisoryUrl, fixedVulnerabilities, formatBytes, resultOf, shortDigest, stillExposed } from './results.js';

const stageOrder = ['resolve', 'scan', 'plan', 'build', 'verify', 'publish'];

/** One image (registry, repository, tag): its jobs newest first, and what its newest patch changed. */
export function ImagePage(props: { name: string; jobs: readonly Job[] }) {
  const patches = props.jobs.filter((j) => j.status === 'succeeded' && resultOf(j).status === 'patched');
  const latest = patches[0];
  const result = latest ? resultOf(latest) : undefined;
  return (
    <Layout title={props.name} section="image">
      {props.jobs.length === 0 ? <p class="muted">patchd has no job for this image.</p> : null}
      <h2>Patches over time</h2>
      {patches.length === 0 ? <p class="muted">Never patched.</p> : (
        <div class="table-wrap">
          <table id="history">
            <thead><tr><th>finished</th><th>original → patched</th><th class="hide-narrow">tags</th><th>fixed</th></tr></thead>
            <tbody>
              {patches.map((job) => {
                const r = resultOf(job);
                return (
                  <tr>
                    <td><Time iso={job.finishedAt} /></td>
                    <td class="mono" title={`${job.digest ?? ''} → ${r.digest ?? ''}`}>{shortDigest(job.digest)} → {shortDigest(r.digest)}</td>
                    <td class="hide-narrow wrap">{(r.tags ?? [r.target ?? '']).join(', ')}</td>
                    <td>{fixedVulnerabilities(r).length}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {latest && result ? <LatestPatch job={latest} /> : null}
      <h2>All jobs</h2>
      <div class="table-wrap">
        <table id="image-jobs">
          <thead><tr><th>created</th><th>trigger</th><th>status</th><th>detail</th></tr></thead>
          <tbody>
            {props.jobs.map((job) => {
              const r = resultOf(job);
              return (
                <tr>
                  <td><Time iso={job.createdAt} /></td>
                  <td>{job.trigger}</td>
                  <td><Status status={job.status} /></td>
                  <td class="wrap">{job.lastError ?? r.reevaluation?.reason ?? r.reason ?? job.reason ?? ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

function LatestPatch(props: { job: Job }) {
  const result = resultOf(props.job);
  const vulnerabilities = fixedVulnerabilities(result);
  const platforms = result.platforms ?? [];
  const packages = platforms.flatMap((p) => (p.packages ?? []).map((pkg) => ({ ...pkg, platform: p.platform })));
  const libraries = platforms.flatMap((p) => (p.libraries ?? []).map((lib) => ({ ...lib, platform: p.platform })));
  const stages = Object.entries(result.stageMs ?? {}).sort(([a], [b]) => stageOrder.indexOf(a) - stageOrder.indexOf(b));
  const slowest = Math.max(1, ...stages.map(([, ms]) => ms));
  const exposed = stillExposed(result);
  return (
    <section id="latest">
      <h2>Newest patch</h2>
      <p>
        <span class="mono">{props.job.digest ?? ''}</span> → <span class="mono">{result.digest ?? ''}</span><br />
        pushed as <code>{result.target ?? ''}</code> at <Time iso={props.job.finishedAt} />
      </p>
      <div class="cards">
        <div class="card" id="vex"><span class="n">{result.evidence?.vex ? 'yes' : 'no'}</span><span class="label">VEX attached{result.evidence?.vex ? ` (${result.evidence.vex.statements} statements)` : ''}</span></div>
        <div class="card" id="signature"><span class="n">{result.signature ? 'yes' : 'no'}</span><span class="label">signed{result.signature ? ` (${result.signature.tag})` : ''}</span></div>
        <div class="card" id="sbom"><span class="n">{result.evidence?.sbom?.length ?? 0}</span><span class="label">SBOMs attached</span></div>
        {platforms.map((p) => (
          <div class="card layer"><span class="n">{p.layer ? formatBytes(p.layer.size) : '–'}</span><span class="label">patch layer{p.platform === 'single' ? '' : `, ${p.platform}`}{p.executor ? ` (${p.executor})` : ''}</span></div>
        ))}
      </div>
      {result.evidence?.error ? <p class="notice bad">Evidence not attached: {result.evidence.error}</p> : null}
      {(result.notes ?? []).map((n) => <p class="notice">{n}</p>)}

      <h2>Vulnerabilities fixed</h2>
      {vulnerabilities.length === 0 ? <p class="muted">None named (packages updated to newer versions).</p> : (
        <div class="table-wrap">
          <table id="vulnerabilities">
            <thead><tr><th>advisory</th><th>CVE</th><th>package</th><th class="hide-narrow">severity</th></tr></thead>
            <tbody>
              {vulnerabilities.map((v) => (
                <tr>
                  <td><a href={advisoryUrl(v.id)} rel="noopener noreferrer">{v.id}</a></td>
                  <td>{v.cve && v.cve !== v.id ? <a href={advisoryUrl(v.cve)} rel="noopener noreferrer">{v.cve}</a> : v.cve ?? ''}</td>
                  <td>{v.package}</td>
                  <td class="hide-narrow">{v.severity ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Packages</h2>
      {packages.length === 0 ? <p class="muted">No OS package changed.</p> : (
        <div class="table-wrap">
          <table id="packages">
            <thead><tr><th>package</th><th>from → to</th><th class="hide-narrow">why</th></tr></thead>
            <tbody>
              {packages.map((p) => (
                <tr><td>{p.name}</td><td class="mono">{p.from} → {p.to}</td><td class="hide-narrow wrap">{(p.reasons ?? []).join(', ')}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {libraries.length === 0 ? null : (
        <>
          <h2>Libraries</h2>
          <div class="table-wrap">
            <table id="libraries">
              <thead><tr><th>library</th><th>from → to</th><th class="hide-narrow">where</th></tr></thead>
              <tbody>
                {libraries.map((l) => (
                  <tr><td>{l.ecosystem} {l.name}</td><td class="mono">{l.from} → {l.to}</td><td class="hide-narrow mono">{l.path ?? ''}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}

      <h2>Stage timings</h2>
      {stages.length === 0 ? <p class="muted">Not recorded for this job.</p> : (
        <div class="stages" id="stages">
          {stages.map(([stage, ms]) => (
            <>
              <span>{stage}</span>
              <meter min={0} max={slowest} value={ms}>{`${ms} ms`}</meter>
              <span class="mono">{ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}</span>
            </>
          ))}
        </div>
      )}

      {exposed.length === 0 ? null : (
        <>
          <h2>Still exposed</h2>
          <ul id="image-exposed">
            {exposed.map((e) => <li>{e.package} {e.version}{e.id ? <> — <a href={advisoryUrl(e.id)} rel="noopener noreferrer">{e.id}</a></> : null}: {e.why}</li>)}
          </ul>
        </>
      )}
    </section>
  );
}
