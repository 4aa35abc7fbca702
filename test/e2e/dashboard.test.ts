import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// The dashboard in a real browser (Debian's chromium, driven by
// playwright-core) against a real `patchd serve`, a real docker-registry and
// the outdated bookworm fixture with one OSV advisory (expat) and one that
// has no fix yet (zlib). A push notified during the test shows up in the live
// list without a reload and ends succeeded; the image page names the fixed
// package and CVE; a failed job is retried with the admin token and refused
// without it; HTML in a repository name stays text. Every page is
// screenshotted (desktop and phone width) and the PNG checked to be non-blank.

const repoRoot = new URL('../..', import.meta.url).pathname;
const expatRecord = 'DEBIAN-CVE-2026-102633.json'; // expat, fixed in 2.5.0-1+deb12u5 (the image has deb12u2)
const adminToken = 'dashboard-admin-token-0123456789';
const webhookSecret = 's3cret-webhook-value';
const registryPassword = 'never-rendered-registry-password';

let work: TempDir;
let registry: RunningRegistry;
let patchd: RunningPatchd | undefined;
let browser: Browser | undefined;
let original: string;

interface Job { id: string; repository: string; tag?: string; digest?: string; status: string; trigger: string; lastError?: string; result?: { target?: string } }

before(async () => {
  work = await tmpDir('patchd-dashboard');
  const osvDir = join(work.path, 'osv');
  await mkdir(osvDir);
  await copyFile(join(repoRoot, 'fixtures/osv/Debian', expatRecord), join(osvDir, expatRecord));
  // An advisory nobody has fixed yet: what "still exposed" lists.
  await writeFile(join(osvDir, 'DEBIAN-TEST-NOFIX.json'), JSON.stringify({
    id: 'DEBIAN-TEST-NOFIX', modified: '2026-11-01T00:00:00Z', aliases: ['CVE-2026-999001'],
    affected: [{ package: { ecosystem: 'Debian:12', name: 'zlib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }],
  }));
  const registryPort = await freePort();
  const patchdPort = await freePort();
  const tarPath = await bookwormRootfsTar(); // built (or taken from the cache) before anything is timed
  patchd = await startPatchdServe({
    dir: work.path,
    port: patchdPort,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      'worker: { concurrency: 1, maxAttempts: 1, retryBaseMs: 500 }',
      `advisories: { osv: [${JSON.stringify(osvDir)}] }`,
      'registries:',
      '  local:',
      `    url: http://127.0.0.1:${registryPort}`,
      `    credentials: { username: patchd, password: ${registryPassword} }`,
    ],
    env: { PATCHD_DASHBOARD_ADMIN_TOKEN: adminToken, PATCHD_LOCAL_WEBHOOK_SECRET: webhookSecret },
    logs: 'inherit',
  });
  registry = await startRegistry({ port: registryPort, notifications: { url: `${patchd.url}/webhooks/distribution`, headers: { Authorization: [`Bearer ${webhookSecret}`] } } });
  void tarPath;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await patchd?.stop();
  await registry?.stop();
  await work?.remove();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jobs = async (): Promise<Job[]> => ((await (await fetch(`${patchd!.url}/jobs`)).json()) as { jobs: Job[] }).jobs;
async function waitForJob(what: string, found: (j: Job) => boolean, seconds: number): Promise<Job> {
  for (let i = 0; i < seconds * 4; i++) {
    const job = (await jobs()).find(found);
    if (job) return job;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await jobs())}`);
}

/** A distribution notification for a manifest push, as the registry sends it (signed with the configured secret). */
async function deliverPush(target: { repository: string; tag: string; digest?: string }): Promise<Response> {
  return fetch(`${patchd!.url}/webhooks/distribution`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json', authorization: `Bearer ${webhookSecret}` },
    body: JSON.stringify({ events: [{ action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...target }, request: { host: registry.host } }] }),
  });
}

async function newPage(width = 1280, height = 900): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width, height } });
  return context.newPage();
}

/** Screenshots the page and checks the PNG really shows something: decoded, its pixels are far from one flat colour. */
async function screenshotIsNotBlank(page: Page, name: string): Promise<void> {
  // PATCHD_TEST_SCREENSHOTS=<dir> keeps them (CI artifacts, a look by eye); else they go with the temp dir.
  const path = join(process.env.PATCHD_TEST_SCREENSHOTS ?? work.path, `${name}.png`);
  const png = PNG.sync.read(await page.screenshot({ path, fullPage: true }));
  let sum = 0, sumSquares = 0, n = 0;
  const distinct = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4 * 7) {
    const luma = 0.299 * png.data[i]! + 0.587 * png.data[i + 1]! + 0.114 * png.data[i + 2]!;
    sum += luma; sumSquares += luma * luma; n++;
    if (distinct.size < 64) distinct.add((png.data[i]! << 16) | (png.data[i + 1]! << 8) | png.data[i + 2]!);
  }
  const mean = sum / n;
  const deviation = Math.sqrt(Math.max(0, sumSquares / n - mean * mean));
  assert.ok(png.width >= 300 && png.height >= 300, `${name}: a real screenshot (${png.width}x${png.height})`);
  assert.ok(deviation > 10, `${name}: the screenshot is not blank (luma standard deviation ${deviation.toFixed(1)})`);
  assert.ok(distinct.size >= 8, `${name}: more than a couple of colours (${distinct.size})`);
}

/** Nothing a page shows may contain a configured secret. */
async function assertNoSecrets(page: Page, where: string): Promise<void> {
  const html = await page.content();
  for (const secret of [adminToken, webhookSecret, registryPassword]) assert.ok(!html.includes(secret), `${where}: no secret in the page`);
}

test('the overview loads: totals, the chart and the registry\'s health, readable at phone width', { timeout: 60_000 }, async () => {
  const page = await newPage();
  const response = await page.goto(`${patchd!.url}/dashboard`);
  assert.equal(response?.status(), 200, 'the overview answers 200');
  assert.equal(await page.locator('h1').textContent(), 'Overview', 'the overview heading');
  assert.match(await page.locator('#registries').innerText(), /local\s+127\.0\.0\.1:\d+\s+ok reachable/, 'the registry is shown healthy (what /readyz probes)');
  assert.equal(await page.locator('.chart svg rect').count(), 28, 'the chart has two bars for each of 14 days');
  assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/, 'no inline script is allowed');
  await assertNoSecrets(page, 'overview');
  await screenshotIsNotBlank(page, 'overview');
  const phone = await newPage(390, 844);
  await phone.goto(`${patchd!.url}/dashboard`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `nothing wider than a phone screen (${overflow}px too wide)`);
  await screenshotIsNotBlank(phone, 'overview-phone');
  await phone.context().close();
  await page.context().close();
});

test('a push notified during the test appears in the live list without a reload and ends as succeeded', { timeout: 150_000 }, async () => {
  const page = await newPage();
  await page.goto(`${patchd!.url}/dashboard/jobs`);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent === 'live', undefined, { timeout: 10_000 });
  await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true; });
  assert.equal(await page.locator('#jobs-body tr[data-status]').count(), 0, 'no job before the push');
  original = (await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' })).digest;
  const row = page.locator('#jobs-body tr', { hasText: 'local/fixtures/bookworm:main' });
  await row.waitFor({ timeout: 30_000 });
  await page.locator('#jobs-body tr[data-status="succeeded"]', { hasText: 'local/fixtures/bookworm:main' }).waitFor({ timeout: 120_000 });
  assert.equal(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), true, 'the page was never reloaded');
  assert.match(await row.innerText(), /succeeded[\s\S]*main-patched/, 'the row says where the patch went');
  const job = await waitForJob('the push job', (j) => j.digest === original && j.trigger === 'push', 5);
  assert.equal(job.status, 'succeeded', `the job store agrees: ${JSON.stringify(job)}`);
  await screenshotIsNotBlank(page, 'jobs');
  await page.context().close();
});

test('the image page shows the fixed package and CVE, the digests, evidence and timings; still exposed lists the unfixed one', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(`${patchd!.url}/dashboard`);
  assert.equal(await page.locator('#patched-today .n').textContent(), '1', 'the overview counts today\'s patch');
  assert.equal(await page.locator('#cves-fixed .n').textContent(), '1', 'and the CVE it closed');
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(await page.locator('rect.bar-patches', { has: page.locator('title', { hasText: `${today}: 1 patched` }) }).count(), 1, 'today\'s bar in the chart');
  assert.ok(Number(await page.locator('rect.bar-patches').last().getAttribute('height')) > 50, 'drawn at full height (the busiest day)');
  await screenshotIsNotBlank(page, 'overview-patched');
  await page.locator('#recent a', { hasText: 'local/fixtures/bookworm:main' }).click();
  await page.waitForURL(/\/dashboard\/image\?/);
  assert.equal(await page.locator('h1').textContent(), 'local/fixtures/bookworm:main', 'the image page');
  assert.match(await page.locator('#packages').innerText(), /libexpat1\s+2\.5\.0-1\+deb12u2 → 2\.5\.0-1\+deb12u5/, 'the package and its versions from → to');
  const vulnerabilities = await page.locator('#vulnerabilities').innerText();
  assert.match(vulnerabilities, /DEBIAN-CVE-2026-102633\s+CVE-2026-102633\s+libexpat1/, `the vulnerability fixed: ${vulnerabilities}`);
  assert.equal(await page.locator('#vulnerabilities a', { hasText: /^CVE-2026-102633$/ }).getAttribute('href'), 'https://nvd.nist.gov/vuln/detail/CVE-2026-102633', 'linked to its advisory');
  assert.match(await page.locator('#history').innerText(), new RegExp(`${original.slice(7, 19)} → [0-9a-f]{12}`), 'original → patched digest');
  assert.match(await page.locator('#vex').innerText(), /yes/, 'the VEX document is attached');
  assert.match(await page.locator('#signature').innerText(), /no/, 'no signing key configured: not signed');
  assert.match(await page.locator('.card.layer').innerText(), /\d+(\.\d)? (B|KiB|MiB)\s+patch layer \(inprocess\)/, 'the patch layer\'s size');
  assert.match(await page.locator('#stages').innerText(), /scan[\s\S]*plan[\s\S]*build[\s\S]*publish/, 'stage timings');
  await assertNoSecrets(page, 'image page');
  await screenshotIsNotBlank(page, 'image');
  const phone = await newPage(390, 844);
  await phone.goto(page.url());
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the image page fits a phone screen');
  await screenshotIsNotBlank(phone, 'image-phone');
  await phone.context().close();

  await page.locator('nav a', { hasText: 'Still exposed' }).click();
  assert.match(await page.locator('#exposed').innerText(), /local\/fixtures\/bookworm:main\s+zlib1g [^\n]*\s+DEBIAN-TEST-NOFIX\s+no fixed version published yet/, 'the finding with no fix');
  assert.doesNotMatch(await page.locator('#exposed').innerText(), /DEBIAN-CVE-2026-102633/, 'the fixed one is not exposed');
  await screenshotIsNotBlank(page, 'exposed');
  await page.context().close();
});

test('a failed job is retried with the admin token, and not without it', { timeout: 150_000 }, async () => {
  // A push notice for a repository the image is not in yet: fetching it fails for good (maxAttempts 1).
  const delivered = await deliverPush({ repository: 'fixtures/later', tag: 'v1', digest: original });
  assert.equal(delivered.status, 202, 'the notice is accepted');
  const failed = await waitForJob('the failed job', (j) => j.repository === 'fixtures/later' && j.status === 'dead', 60);
  // Now the image is there; the registry's own notice for it is a duplicate of the dead job, so only a retry patches it.
  await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry.host}/fixtures/bookworm:main`, `docker://${registry.host}/fixtures/later:v1`]);

  const page = await newPage();
  await page.goto(`${patchd!.url}/dashboard/failures`);
  const row = page.locator(`#failed-${failed.id}`);
  assert.match(await row.innerText(), /local\/fixtures\/later:v1[\s\S]*(MANIFEST_UNKNOWN|NAME_UNKNOWN|NOT_FOUND)/, `the reason is shown: ${await row.innerText()}`);
  await screenshotIsNotBlank(page, 'failures');

  await row.locator('input[name=token]').fill('not-the-admin-token-at-all');
  const refused = page.waitForResponse((r) => r.request().method() === 'POST');
  await row.locator('button', { hasText: 'Retry' }).click();
  assert.equal((await refused).status(), 403, 'a wrong token is refused');
  assert.match(await page.locator('#notice').innerText(), /missing or wrong admin token/, 'and says so');
  const empty = page.waitForResponse((r) => r.request().method() === 'POST');
  await page.locator(`#failed-${failed.id} button`).click();
  assert.equal((await empty).status(), 403, 'no token is refused');
  // Nor can a plain cross-origin form post (no Origin of ours) do it, even with the token.
  const forged = await fetch(`${patchd!.url}/dashboard/failures/${failed.id}/retry`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' }, body: `token=${adminToken}` });
  assert.equal(forged.status, 403, 'a cross-site form post is refused');
  // The same from a real page elsewhere (the browser sends Sec-Fetch-Site: cross-site).
  const elsewhere = await newPage();
  await elsewhere.setContent(`<form method="post" action="${patchd!.url}/dashboard/failures/${failed.id}/retry"><input name="token" value="${adminToken}"><button>go</button></form>`);
  const crossSite = elsewhere.waitForResponse((r) => r.request().method() === 'POST');
  await elsewhere.locator('button').click();
  assert.equal((await crossSite).status(), 403, 'a form on another site is refused, even with the token');
  await elsewhere.context().close();
  assert.equal((await jobs()).filter((j) => j.trigger === 'retry').length, 0, 'nothing was retried');

  await page.locator(`#failed-${failed.id} input[name=token]`).fill(adminToken);
  await page.locator(`#failed-${failed.id} button`).click();
  await page.waitForURL(/\/dashboard\/failures\?retried=/);
  assert.match(await page.locator('#notice').innerText(), /Queued again as job/, 'the retry is confirmed');
  await assertNoSecrets(page, 'failures page after a retry');
  const retried = await waitForJob('the retried job to finish', (j) => j.trigger === 'retry' && ['succeeded', 'skipped', 'dead'].includes(j.status), 120);
  assert.equal(retried.status, 'succeeded', `the retry patched the image: ${JSON.stringify(retried)}`);
  assert.match(retried.result?.target ?? '', /fixtures\/later:v1-patched$/, 'under the failed job\'s tag');
  await page.context().close();
});

test('a repository name carrying HTML is shown as text, live and server-rendered', { timeout: 60_000 }, async () => {
  const hostile = 'fixtures/<img src=x id=injected onerror="document.title=1">';
  const page = await newPage();
  await page.goto(`${patchd!.url}/dashboard/jobs`);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent === 'live', undefined, { timeout: 10_000 });
  assert.equal((await deliverPush({ repository: hostile, tag: 'v1' })).status, 202, 'the notice is accepted');
  const row = page.locator('#jobs-body tr', { hasText: `local/${hostile}:v1` });
  await row.waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#injected').count(), 0, 'live list: no element injected');
  await page.reload();
  assert.equal(await page.locator('#jobs-body tr', { hasText: `local/${hostile}:v1` }).count(), 1, 'server-rendered list: shown as text');
  assert.equal(await page.locator('#injected').count(), 0, 'server-rendered list: no element injected');
  await page.locator('#jobs-body a', { hasText: hostile }).click();
  await page.waitForURL(/\/dashboard\/image\?/);
  assert.equal(await page.locator('h1').textContent(), `local/${hostile}:v1`, 'the image page names it as text');
  assert.equal(await page.locator('#injected').count(), 0, 'image page: no element injected');
  assert.notEqual(await page.title(), '1', 'no handler ran');
  await screenshotIsNotBlank(page, 'hostile-image');
  await page.context().close();
});
