import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parseParagraphs } from '../../src/build/deb/control.js';
import { formatStatus, installedStanza, parseConffiles } from '../../src/build/deb/dpkg-database.js';

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
