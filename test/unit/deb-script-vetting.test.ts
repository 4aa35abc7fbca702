import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { DebControlMember } from '../../src/distro/deb/deb-archive.js';
import { DpkgDatabase, readUserDatabase } from '../../src/distro/deb/dpkg-database.js';
import { DebError } from '../../src/distro/deb/errors.js';
import { checkMaintainerScripts } from '../../src/executors/deb/scripts/handlers.js';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import type { Layer } from '../../src/image/layer.js';
import { MediaType } from '../../src/oci/media-types.js';

// What dpkg would run is vetted before anything is unpacked: unknown script
// work and other packages' triggers stop the package with SCRIPTS_REQUIRED.

async function image(files: Record<string, string>): Promise<ImageFilesystem> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const blob = gzipSync(Buffer.concat(chunks));
  const layer: Layer = { mediaType: MediaType.ociLayerGzip, digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, size: blob.length, open: async () => Readable.from([blob]) };
  return ImageFilesystem.load([layer], { capture: () => true });
}

const status = 'Package: demo\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: all\nDescription: d\n\nPackage: man-db\nStatus: install ok installed\nVersion: 2.11\nArchitecture: amd64\nDescription: m\n\n';
const control = (members: Record<string, string>): Map<string, DebControlMember> =>
  new Map(Object.entries({ control: 'Package: demo\nVersion: 1.0-2\n', ...members }).map(([name, content]) => [name, { name, mode: 0o755, content: Buffer.from(content) }]));
const required = (pattern: RegExp) => (e: unknown) => e instanceof DebError && e.code === 'SCRIPTS_REQUIRED' && pattern.test(e.message);

async function vet(files: Record<string, string>, members: Record<string, string>) {
  const base = await image({ 'var/lib/dpkg/status': status, ...files });
  const db = (await DpkgDatabase.read(base, await readUserDatabase(base)))!;
  await checkMaintainerScripts({ db, installed: db.get('demo')!, control: control(members), newVersion: '1.0-2', base });
}

test('inert scripts pass', async () => {
  await vet({}, { postinst: '#!/bin/sh\nset -e\n# Automatically added by dh_installsystemd/13.11.4\nsystemctl daemon-reload\n# End automatically added section\nexit 0\n' });
});

test('a new postinst doing unknown work is refused, naming the package and the statement', async () => {
  await assert.rejects(vet({}, { postinst: '#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/x x /usr/bin/y 10\n' }),
    required(/^demo: its postinst runs "update-alternatives --install/));
});

test('the old version\'s prerm counts too', async () => {
  await assert.rejects(vet({ 'var/lib/dpkg/info/demo.prerm': '#!/bin/sh\nrm -rf /var/cache/demo\n' }, {}), required(/its prerm runs "rm -rf \/var\/cache\/demo"/));
});

test('activating a trigger another package is interested in is refused; ldconfig is handled', async () => {
  await vet({}, { triggers: 'activate-noawait ldconfig\n' });
  await assert.rejects(vet({ 'var/lib/dpkg/triggers/update-foo': 'foo-pkg\n' }, { triggers: 'activate update-foo\n' }), required(/activates trigger "update-foo"/));
});

test('shipping a file under another package\'s file-trigger path is refused, unless the trigger only feeds a cache', async () => {
  const triggers = '/usr/share/man man-db/noawait\n/usr/share/applications desktop-file-utils/noawait\n';
  await vet({ 'var/lib/dpkg/triggers/File': triggers }, { md5sums: `${'0'.repeat(32)}  usr/share/man/man1/demo.1.gz\n` });
  await assert.rejects(vet({ 'var/lib/dpkg/triggers/File': triggers }, { md5sums: `${'0'.repeat(32)}  usr/share/applications/demo.desktop\n` }),
    required(/desktop-file-utils's file trigger on \/usr\/share\/applications/));
});

test('pam: its scripts are accounted for on an upgrade from a current version, and refused from old ones or with a changed profile', async () => {
  const { libpamModulesHandler, libpamRuntimeHandler, libpam0gHandler } = await import('../../src/executors/deb/scripts/pam.js');
  const profile = 'Name: Unix authentication\nDefault: yes\nPriority: 256\n';
  const base = await image({ 'usr/share/pam-configs/unix': profile });
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');
  const ctx = (version: string, name: string, shipped = profile) => ({
    pkg: { name, version } as never, newVersion: '1.5.2-6+deb12u3', base,
    control: new Map([['md5sums', { name: 'md5sums', mode: 0o644, content: Buffer.from(`${md5(shipped)}  usr/share/pam-configs/unix\n`) }]]),
  });
  await libpam0gHandler.precheck!(ctx('1.5.2-6+deb12u2', 'libpam0g'));
  await libpamModulesHandler.precheck!(ctx('1.5.2-6+deb12u2', 'libpam-modules'));
  await libpamRuntimeHandler.precheck!(ctx('1.5.2-6+deb12u2', 'libpam-runtime'));
  await assert.rejects(libpam0gHandler.precheck!(ctx('1.1.8-3.6', 'libpam0g')), required(/restart services/));
  await assert.rejects(libpamModulesHandler.precheck!(ctx('1.3.1-5', 'libpam-modules')), required(/screensavers/));
  await assert.rejects(libpamRuntimeHandler.precheck!(ctx('1.5.2-6+deb12u2', 'libpam-runtime', `${profile}Auth: pam_unix.so\n`)), required(/changed profile \/usr\/share\/pam-configs\/unix/));
});
