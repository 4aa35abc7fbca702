import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseParagraphs, field } from '../../src/distro/deb/control.js';
import type { InstalledPackage } from '../../src/distro/deb/dpkg-database.js';
import type { AptRepositories, PackageCandidate } from '../../src/distro/deb/repository/index.js';
import { resolveDebUpgrades } from '../../src/plan/deb-upgrades.js';

// Package sets written as dpkg stanzas; the resolver only reads their fields.
function installed(text: string): InstalledPackage[] {
  return parseParagraphs(text).map((p) => ({
    name: field(p, 'Package')!, version: field(p, 'Version')!, architecture: field(p, 'Architecture') ?? 'amd64',
    status: field(p, 'Status') ?? 'install ok installed', infoKey: field(p, 'Package')!, conffiles: [], paragraph: p,
  }));
}

function repositories(text: string, release: Partial<PackageCandidate['release']> = {}): AptRepositories {
  const candidates: PackageCandidate[] = parseParagraphs(text).map((p) => ({
    name: field(p, 'Package')!, version: field(p, 'Version')!, architecture: field(p, 'Architecture') ?? 'amd64',
    filename: 'pool/x.deb', size: 1, sha256: '0'.repeat(64), paragraph: p, url: 'http://127.0.0.1/x.deb',
    release: { suite: 'bookworm-security', notAutomatic: false, butAutomaticUpgrades: false, ...release },
  }));
  return {
    candidates: (name) => candidates.filter((c) => c.name === name),
    openDeb: () => { throw new Error('not used'); },
    stats: { bytesDownloaded: 0, indexCacheHits: 0, indexFetches: 0 },
  };
}

const base = `Package: apt
Version: 2.6.1
Depends: libapt-pkg6.0 (>= 2.6.1), libc6

Package: libapt-pkg6.0
Version: 2.6.1
Depends: libc6

Package: libc6
Version: 2.36-9

Package: tzdata
Version: 2026b-0
Architecture: all
`;

test('upgrades everything with a newer version, pulling in what new versions need', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: apt\nVersion: 2.6.2\nDepends: libapt-pkg6.0 (>= 2.6.2), libc6\n\nPackage: libapt-pkg6.0\nVersion: 2.6.2\nDepends: libc6\n\nPackage: tzdata\nVersion: 2026f-0\nArchitecture: all\n`),
    request: { kind: 'all' },
  });
  assert.deepEqual(plan.packages.map((p) => `${p.name} ${p.from}->${p.to}`), ['apt 2.6.1->2.6.2', 'libapt-pkg6.0 2.6.1->2.6.2', 'tzdata 2026b-0->2026f-0']);
  assert.deepEqual(plan.heldBack, []);
});

test('a requested package pulls in the dependency upgrade it needs', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: apt\nVersion: 2.6.2\nDepends: libapt-pkg6.0 (>= 2.6.2), libc6\n\nPackage: libapt-pkg6.0\nVersion: 2.6.2\nDepends: libc6\n`),
    request: { kind: 'packages', packages: new Map([['apt', { fixedVersion: '2.6.2', reasons: ['CVE-2099-0001'] }]]) },
  });
  assert.deepEqual(plan.packages.map((p) => p.name), ['apt', 'libapt-pkg6.0']);
  assert.deepEqual(plan.packages.find((p) => p.name === 'libapt-pkg6.0')!.reasons, ['needed by apt']);
});

test('an upgrade whose dependency is not installed is held back, never installs new packages', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: apt\nVersion: 2.7.0\nDepends: libapt-pkg7.0, libc6\n`),
    request: { kind: 'all' },
  });
  assert.deepEqual(plan.packages, []);
  assert.equal(plan.heldBack[0]?.name, 'apt');
  assert.match(plan.heldBack[0]!.reason, /libapt-pkg7\.0/);
});

test('an upgrade that breaks an installed package that cannot move is held back', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: libc6\nVersion: 2.37-1\nBreaks: apt (<< 2.7)\n`),
    request: { kind: 'all' },
  });
  assert.deepEqual(plan.packages, []);
  assert.equal(plan.heldBack[0]?.name, 'libc6');
});

test('an upgrade that would leave an unchanged dependent unsatisfied is held back', () => {
  const plan = resolveDebUpgrades({
    installed: installed(`Package: a\nVersion: 1\nDepends: b (= 1)\n\nPackage: b\nVersion: 1\n`),
    repositories: repositories(`Package: b\nVersion: 2\n`),
    request: { kind: 'all' },
  });
  assert.deepEqual(plan.packages, []);
  assert.equal(plan.heldBack[0]?.name, 'b');
});

test('report fixes that the repositories cannot satisfy are reported, not attempted', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: tzdata\nVersion: 2026c-0\nArchitecture: all\n`),
    request: { kind: 'packages', packages: new Map([['tzdata', { fixedVersion: '2026f-0', reasons: ['X'] }], ['openssl', { fixedVersion: '3', reasons: ['Y'] }]]) },
  });
  assert.deepEqual(plan.packages, []);
  assert.deepEqual(plan.unavailable.map((u) => u.name).sort(), ['openssl', 'tzdata']);
});

test('NotAutomatic suites (backports, experimental) are not upgrade sources', () => {
  const plan = resolveDebUpgrades({
    installed: installed(base),
    repositories: repositories(`Package: tzdata\nVersion: 2027a-0\nArchitecture: all\n`, { notAutomatic: true, suite: 'bookworm-backports' }),
    request: { kind: 'all' },
  });
  assert.deepEqual(plan.packages, []);
});
