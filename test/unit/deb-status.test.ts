import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parseParagraphs } from '../../src/distro/deb/control.js';
import { DpkgDatabase, formatStatus, installedStanza, parseConffiles } from '../../src/distro/deb/dpkg-database.js';

const fixture = (name: string) => readFile(new URL(`../../fixtures/deb/${name}`, import.meta.url), 'utf8');

for (const pkg of ['apt_2.6.2', 'tzdata_2026f']) {
  test(`status stanza for ${pkg} is byte-identical to what dpkg wrote`, async () => {
    const control = parseParagraphs(await fixture(`${pkg}.control`))[0]!;
    const expected = await fixture(`${pkg}.status`);
    const conffiles = parseConffiles(parseParagraphs(expected)[0]!.fields.find(([n]) => n === 'Conffiles')?.[1]);
    assert.equal(formatStatus([installedStanza(control, conffiles)]), expected);
  });
}

test('Essential: no is dropped and Essential: yes kept, as dpkg does', () => {
  const control = { fields: [['Package', 'x'], ['Essential', 'no'], ['Version', '1'], ['Description', 'd']] as const };
  assert.equal(formatStatus([installedStanza(control, [])]), 'Package: x\nStatus: install ok installed\nVersion: 1\nDescription: d\n\n');
  const essential = { fields: [['Package', 'x'], ['Version', '1'], ['Essential', 'yes']] as const };
  assert.equal(formatStatus([installedStanza(essential, [])]), 'Package: x\nEssential: yes\nStatus: install ok installed\nVersion: 1\n\n');
});

test('obsolete conffiles keep their flag', () => {
  const stanza = installedStanza({ fields: [['Package', 'x'], ['Version', '1']] }, [{ path: '/etc/x', md5: 'abc', obsolete: true }]);
  assert.match(formatStatus([stanza]), /Conffiles:\n \/etc\/x abc obsolete\n/);
});

test('distroless status.d: every stanza file is read, dotted names included; md5sums files are not stanzas', async () => {
  const files: Record<string, string> = {
    'var/lib/dpkg/status.d/libapt-pkg6.0': 'Package: libapt-pkg6.0\nVersion: 2.6.1\nArchitecture: amd64\n',
    'var/lib/dpkg/status.d/libapt-pkg6.0.md5sums': 'd41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0.0\n',
    'var/lib/dpkg/status.d/base-files': 'Package: base-files\nVersion: 12.4+deb12u15\nArchitecture: amd64\n',
  };
  const root = {
    readFile: async (p: string) => (files[p] !== undefined ? Buffer.from(files[p]!) : undefined),
    readdir: (p: string) => Object.keys(files).filter((f) => f.startsWith(`${p}/`)).map((f) => f.slice(p.length + 1)),
  };
  const db = await DpkgDatabase.read(root, { uid: () => undefined, gid: () => undefined });
  assert.equal(db?.layout, 'status.d');
  assert.deepEqual(db?.packages.map((p) => `${p.name} ${p.version}`).sort(), ['base-files 12.4+deb12u15', 'libapt-pkg6.0 2.6.1']);
});
