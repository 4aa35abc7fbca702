import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromThisSite, isAdminToken } from '../../src/app/dashboard/admin.js';
import { advisoryUrl, fixedVulnerabilities, stillExposed } from '../../src/app/dashboard/results.js';
import { overview } from '../../src/app/dashboard/stats.js';
import { stageTimer } from '../../src/lib/stage-timings.js';
import { loadConfig } from '../../src/config.js';
import type { Job } from '../../src/queue/types.js';

// The dashboard's pure parts: the admin token check, the CSRF rule, what a
// job's result says was fixed or is still exposed, the per-day totals, and
// the worker's stage timer. The pages themselves are driven in a real
// browser by test/e2e/dashboard.test.ts.

test('the admin token: only the configured one, never when none is configured', () => {
  const token = 'a-long-enough-admin-token';
  assert.equal(isAdminToken(token, token), true, 'the token itself');
  assert.equal(isAdminToken(token, `${token}x`), false, 'a longer one');
  assert.equal(isAdminToken(token, token.slice(1)), false, 'a shorter one');
  assert.equal(isAdminToken(token, ''), false, 'an empty one');
  assert.equal(isAdminToken(token, undefined), false, 'none given');
  assert.equal(isAdminToken(token, ['x']), false, 'not a string (a repeated form field)');
  assert.equal(isAdminToken(undefined, ''), false, 'no token configured: not even an empty one passes');
  assert.equal(isAdminToken(undefined, 'anything'), false, 'no token configured: nothing passes');
});

test('CSRF: browsers\' cross-site posts are refused, same-origin ones and non-browsers pass', () => {
  const url = 'http://127.0.0.1:8080/dashboard/failures/x/retry';
  assert.equal(fromThisSite(url, 'http://127.0.0.1:8080', 'same-origin'), true, 'same origin');
  assert.equal(fromThisSite(url, 'https://evil.example', 'cross-site'), false, 'cross-site');
  assert.equal(fromThisSite(url, 'http://127.0.0.1:9999', 'same-site'), false, 'same site, other origin');
  assert.equal(fromThisSite(url, 'https://evil.example', undefined), false, 'an older browser: Origin alone');
  assert.equal(fromThisSite(url, 'null', undefined), false, 'an opaque origin');
  assert.equal(fromThisSite(url, undefined, undefined), true, 'curl: the token alone decides');
});

const result = {
  status: 'patched',
  platforms: [{
    platform: 'linux/amd64',
    findings: [
      { id: 'DEBIAN-CVE-2026-1', aliases: ['CVE-2026-1'], severity: 'HIGH', package: 'libexpat1', version: '1', fixed: ['2'] },
      { id: 'DEBIAN-TEST-NOFIX', aliases: [], package: 'zlib1g', version: '1', fixed: [] },
      { id: 'update', aliases: [], package: 'tzdata', version: '1', fixed: ['2'] },
    ],
    packages: [
      { name: 'libexpat1', from: '1', to: '2', reasons: ['DEBIAN-CVE-2026-1'] },
      { name: 'tzdata', from: '1', to: '2', reasons: ['newer version in bookworm-updates'] },
    ],
    libraries: [{ ecosystem: 'PyPI', name: 'requests', from: '2.0', to: '2.1', reasons: ['GHSA-aaaa-bbbb-cccc'] }],
    unavailable: [{ name: 'openssl', installed: '3.0', fixedVersion: '3.1', reason: 'not in the image\'s repositories' }],
  }],
};

test('what a patch fixed (CVE ids from aliases) and what is still exposed', () => {
  assert.deepEqual(fixedVulnerabilities(result), [
    { id: 'DEBIAN-CVE-2026-1', cve: 'CVE-2026-1', package: 'libexpat1', severity: 'HIGH' },
    { id: 'GHSA-aaaa-bbbb-cccc', package: 'requests' },
  ], 'named vulnerabilities only, not plain reasons');
  assert.deepEqual(stillExposed(result).map((e) => `${e.package} ${e.id}: ${e.why}`), [
    'zlib1g DEBIAN-TEST-NOFIX: no fixed version published yet',
    'openssl : not in the image\'s repositories',
  ], 'no fix published, or not installable');
  assert.equal(advisoryUrl('CVE-2026-1'), 'https://nvd.nist.gov/vuln/detail/CVE-2026-1', 'CVEs at NVD');
  assert.equal(advisoryUrl('GHSA-aaaa-bbbb-cccc'), 'https://github.com/advisories/GHSA-aaaa-bbbb-cccc', 'GHSAs at GitHub');
  assert.equal(advisoryUrl('DEBIAN-CVE-2026-1'), 'https://osv.dev/vulnerability/DEBIAN-CVE-2026-1', 'the rest at OSV');
  assert.equal(advisoryUrl('x/../"y'), 'https://osv.dev/vulnerability/x%2F..%2F%22y', 'an odd id stays inside the URL path');
});

test('per-day totals: patched today, this week, vulnerabilities closed, failures', () => {
  const now = new Date('2026-11-28T12:00:00Z');
  const job = (id: string, status: Job['status'], finishedAt: string, r: unknown = result): Job => ({
    id, registry: 'r', repository: 'a', tag: 't', source: 's', trigger: 'push', status, attempts: 1, createdAt: finishedAt, updatedAt: finishedAt, finishedAt, result: r,
  });
  const totals = overview([
    job('1', 'succeeded', '2026-11-28T08:00:00Z'),
    job('2', 'succeeded', '2026-11-27T08:00:00Z'),
    job('3', 'succeeded', '2026-11-16T08:00:00Z'), // outside the week, inside the 14 days
    job('4', 'skipped', '2026-11-28T09:00:00Z', { status: 'up-to-date' }),
    job('5', 'dead', '2026-11-26T09:00:00Z', undefined),
    job('6', 'succeeded', '2026-10-01T08:00:00Z'), // outside the chart
  ], now);
  assert.equal(totals.patchedToday, 1, 'today');
  assert.equal(totals.patchedThisWeek, 2, 'last 7 days');
  assert.equal(totals.cvesFixedThisWeek, 2, 'distinct vulnerabilities (CVE-2026-1 twice counts once)');
  assert.equal(totals.failedThisWeek, 1, 'failures');
  assert.equal(totals.days.length, 14, '14 days');
  assert.deepEqual(totals.days.at(-1), { day: '2026-11-28', patches: 1, cves: 2 }, 'today\'s bar');
  assert.deepEqual(totals.days.find((d) => d.day === '2026-11-16'), { day: '2026-11-16', patches: 1, cves: 2 }, 'an older day');
  assert.equal(totals.days.reduce((n, d) => n + d.patches, 0), 3, 'nothing outside the window');
});

test('the stage timer adds up each stage until the next one starts; package events are not stages', () => {
  let clock = 0;
  const timer = stageTimer(['resolve', 'scan', 'plan', 'build'], () => clock);
  timer.event({ stage: 'resolve' }); clock = 10;
  timer.event({ stage: 'scan' }); clock = 40;
  timer.event({ stage: 'plan' }); clock = 45;
  timer.event({ stage: 'scan' }); clock = 60; // a second platform
  timer.event({ stage: 'build' }); clock = 70;
  timer.event({ stage: 'package' }); clock = 100;
  assert.deepEqual(timer.done(), { resolve: 10, scan: 45, plan: 5, build: 40 }, 'per stage');
});

test('config: the dashboard is on and read-only by default; the admin token comes from the file or PATCHD_DASHBOARD_ADMIN_TOKEN', () => {
  const registries = 'registries: { local: { url: "http://127.0.0.1:5000" } }';
  assert.deepEqual(loadConfig({}, registries).dashboard, { enabled: true }, 'on, no token');
  assert.equal(loadConfig({}, `dashboard: { adminToken: "from-the-file-0123456789" }\n${registries}`).dashboard.adminToken, 'from-the-file-0123456789', 'from the file');
  assert.equal(loadConfig({ PATCHD_DASHBOARD_ADMIN_TOKEN: 'from-the-environment-0123' }, `dashboard: { adminToken: "from-the-file-0123456789" }\n${registries}`).dashboard.adminToken, 'from-the-environment-0123', 'the environment wins');
  assert.throws(() => loadConfig({}, `dashboard: { adminToken: short }\n${registries}`), /at least 16 characters/, 'a short token in the file is refused');
  assert.throws(() => loadConfig({ PATCHD_DASHBOARD_ADMIN_TOKEN: 'short' }, registries), /at least 16 characters/, 'and in the environment');
  assert.equal(loadConfig({}, `dashboard: { enabled: false }\n${registries}`).dashboard.enabled, false, 'can be turned off');
});
