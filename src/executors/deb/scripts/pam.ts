import { createHash } from 'node:crypto';
import { splitLines } from '../../../distro/deb/dpkg-database.js';
import { compareDpkgVersions } from '../../../versions/dpkg.js';
import { scriptsRequired, type PackageHandler } from './package-handler.js';
import {
  libpam0gPostinstLines, libpamModulesPostinstLines, libpamModulesPreinstLines, libpamRuntimePostinstLines, libpamRuntimePostrmLines,
} from './pam-script-lines.js';

/** Every branch of pam's scripts that does work is guarded by "upgrading from a version older than X": an upgrade from X or later runs none of them. */
function requireUpgradeFrom(pkg: { name: string; version: string }, atLeast: string, what: string): void {
  if (compareDpkgVersions(pkg.version, atLeast) < 0) throw scriptsRequired(pkg.name, `upgrading from ${pkg.version} (before ${atLeast}), its scripts ${what}`);
}

/**
 * libpam0g's postinst asks debconf which services to restart, but only when
 * upgrading from before 1.4.0-2; its ldconfig trigger is handled in-process.
 */
export const libpam0gHandler: PackageHandler = {
  knownLines: { postinst: libpam0gPostinstLines },
  async precheck({ pkg }) {
    requireUpgradeFrom(pkg, '1.4.0-2', 'restart services that link PAM');
  },
};

/**
 * libpam-modules' preinst only asks about screensavers (before 1.4.0-5) and
 * defines a profile-migration function it does not call; its postinst only
 * creates /etc/security/opasswd and /etc/environment on old upgrades.
 */
export const libpamModulesHandler: PackageHandler = {
  knownLines: { preinst: libpamModulesPreinstLines, postinst: libpamModulesPostinstLines },
  async precheck({ pkg }) {
    requireUpgradeFrom(pkg, '1.4.0-5', 'ask debconf about running screensavers');
    requireUpgradeFrom(pkg, '0.99.9.0-1', 'create /etc/environment and /etc/security/opasswd');
  },
};

/**
 * libpam-runtime's postinst runs `pam-auth-update --package`, which rebuilds
 * /etc/pam.d/common-* from the profiles in /usr/share/pam-configs. When the
 * new version ships the same profiles the image has, that rebuild writes what
 * is already there: checked here, file by file, against the package's md5sums.
 */
export const libpamRuntimeHandler: PackageHandler = {
  knownLines: { postinst: libpamRuntimePostinstLines, postrm: libpamRuntimePostrmLines },
  async precheck({ pkg, base, control }) {
    requireUpgradeFrom(pkg, '1.0.1-11', 'force-regenerate the common PAM configuration');
    const shipped = splitLines(control.get('md5sums')?.content ?? Buffer.alloc(0))
      .map((line) => ({ md5: line.slice(0, 32), path: line.slice(34).replace(/^\.?\//, '') }))
      .filter((f) => f.path.startsWith('usr/share/pam-configs/'));
    for (const profile of shipped) {
      const current = await base.readFile(profile.path);
      if (!current || createHash('md5').update(current).digest('hex') !== profile.md5) {
        throw scriptsRequired(pkg.name, `its postinst's pam-auth-update would rebuild /etc/pam.d/common-* from a changed profile /${profile.path}`);
      }
    }
  },
};
