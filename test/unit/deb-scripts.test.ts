import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { residualStatements } from '../../src/executors/deb/scripts/analyze.js';

const fixture = (name: string) => readFile(new URL(`../../fixtures/deb/${name}`, import.meta.url), 'utf8');

test('dpkg-maintscript-helper calls guarded by an older prior-version are inert', async () => {
  const script = await fixture('perl-base_5.36.0-7+deb12u4.preinst');
  assert.deepEqual(residualStatements(script, '5.36.0-7+deb12u3'), []);
  // Upgrading from before the guard, the helper would act: it must be reported.
  assert.equal(residualStatements(script, '5.28.1-6').length, 1);
});

test('apt postinst: systemd snippets are inert, user creation and migration remain', async () => {
  const residual = residualStatements(await fixture('apt_2.6.2.postinst'), '2.6.1');
  assert.ok(residual.some((l) => l.startsWith('adduser ')));
  assert.ok(!residual.some((l) => l.includes('deb-systemd-helper')));
  assert.ok(!residual.some((l) => l.includes('dpkg-maintscript-helper')));
});

test('unknown statements survive analysis', () => {
  const script = '#!/bin/sh\nset -e\n# comment\nupdate-alternatives --install /usr/bin/x x /usr/bin/y 10\nexit 0\n';
  assert.deepEqual(residualStatements(script, '1.0'), ['update-alternatives --install /usr/bin/x x /usr/bin/y 10']);
});

test('an unguarded dpkg-maintscript-helper call is not inert', () => {
  assert.equal(residualStatements('dpkg-maintscript-helper rm_conffile /etc/foo -- "$@"\n', '1.0').length, 1);
});
