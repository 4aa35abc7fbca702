// The dashboard's stylesheet and its one script, served as files from /dashboard/assets/ so the pages'
// Content-Security-Policy can forbid every inline script and style.

export const stylesheet = `
:root { --fg: #1d2329; --muted: #5b6670; --line: #d8dee4; --bg: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --accent: #2f6fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
header { background: #24292f; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; align-items: center; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; margin-right: .5rem; }
header nav { display: flex; flex-wrap: wrap; gap: .3rem 1rem; }
header nav a[aria-current="page"] { text-decoration: underline; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; word-break: break-all; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); gap: .7rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .7rem .8rem; background: var(--bg); }
.card .n { font-size: 1.8rem; font-weight: 700; display: block; }
.card .label { color: var(--muted); font-size: .85rem; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.wrap { word-break: break-word; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; word-break: break-all; }
.status { display: inline-block; padding: 0 .45rem; border-radius: 1rem; font-size: .8rem; border: 1px solid var(--line); white-space: nowrap; }
.status-succeeded, .status-ok { color: var(--ok); border-color: var(--ok); }
.status-dead, .status-bad { color: var(--bad); border-color: var(--bad); }
.status-running, .status-queued { color: var(--warn); border-color: var(--warn); }
.status-skipped { color: var(--muted); }
.muted { color: var(--muted); }
.notice { border-left: 4px solid var(--accent); background: var(--bg); padding: .5rem .8rem; margin: .8rem 0; }
.notice.bad { border-color: var(--bad); }
.chart svg { width: 100%; height: 10rem; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.chart figcaption { font-size: .8rem; color: var(--muted); }
.chart { margin: 0; }
.key-patches { color: #2f6fb3; } .key-cves { color: #d9822b; }
form.retry { display: flex; flex-wrap: wrap; gap: .3rem; }
form.retry input { min-width: 8rem; flex: 1; padding: .3rem; }
button { padding: .3rem .8rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
.stages { display: grid; grid-template-columns: max-content 1fr max-content; gap: .2rem .6rem; align-items: center; font-size: .9rem; }
.stages meter { width: 100%; }
@media (max-width: 40rem) {
  main { padding: .6rem; }
  th, td { padding: .3rem .3rem; }
  .hide-narrow { display: none; }
}
`;

/**
 * The live job list: one EventSource on /dashboard/jobs/events; each `job`
 * event replaces (or adds) that job's row. Built with textContent only, so a
 * repository name is never parsed as HTML.
 */
export const liveScript = `
(() => {
  const body = document.getElementById('jobs-body');
  const state = document.getElementById('live-state');
  if (!body) return;
  const cell = (text, cls) => { const td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text; return td; };
  const render = (job) => {
    const tr = document.createElement('tr');
    tr.id = 'job-' + job.id;
    tr.dataset.status = job.status;
    tr.appendChild(cell((job.updatedAt || '').replace('T', ' ').slice(0, 19), 'mono hide-narrow'));
    const image = document.createElement('td');
    image.className = 'wrap';
    const link = document.createElement('a');
    const query = new URLSearchParams({ registry: job.registry, repository: job.repository });
    if (job.tag) query.set('tag', job.tag);
    link.href = '/dashboard/image?' + query.toString();
    link.textContent = job.image;
    image.appendChild(link);
    tr.appendChild(image);
    tr.appendChild(cell(job.trigger, 'hide-narrow'));
    const status = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = 'status status-' + job.status;
    badge.textContent = job.status;
    status.appendChild(badge);
    tr.appendChild(status);
    tr.appendChild(cell(job.detail || '', 'wrap'));
    return tr;
  };
  const source = new EventSource('/dashboard/jobs/events');
  source.addEventListener('open', () => { if (state) state.textContent = 'live'; });
  source.addEventListener('error', () => { if (state) state.textContent = 'reconnecting…'; });
  source.addEventListener('job', (event) => {
    const job = JSON.parse(event.data);
    const row = render(job);
    const old = document.getElementById(row.id);
    if (old) old.replaceWith(row); else body.prepend(row);
    const empty = document.getElementById('jobs-empty');
    if (empty) empty.remove();
  });
})();
`;
