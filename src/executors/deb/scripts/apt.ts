import type { PackageHandler } from './package-handler.js';
import { scriptsRequired, versionAtMost } from './package-handler.js';

/**
 * apt's postinst creates the `_apt` user if missing and cleans up a file from
 * before 2.4.5; its postrm only acts on remove/purge. On an ordinary upgrade
 * neither applies, which precheck confirms.
 */
export const aptHandler: PackageHandler = {
  knownLines: {
    postinst: [
      `if [ "$1" = 'configure' ] && [ -z "$DPKG_ROOT" ] && ! getent passwd _apt >/dev/null; then`,
      'adduser --force-badname --system --home /nonexistent  \\',
      '--no-create-home --quiet _apt || true',
      'fi',
      `if [ "$1" = "configure" ] && [ -n "$2" ] && dpkg --compare-versions -- "$2" le-nl "2.4.5~"; then`,
      'rm -f /etc/apt/apt.conf.d/01autoremove-kernels',
    ],
    postrm: ['case "$1" in', 'remove)', ';;', 'purge)', 'rm -rf /var/cache/apt', 'rm -rf /var/lib/apt', 'esac'],
  },
  async precheck({ pkg, base }) {
    const passwd = (await base.readFile('etc/passwd'))?.toString('utf8') ?? '';
    if (!/^_apt:/m.test(passwd)) throw scriptsRequired(pkg.name, 'its postinst would create the _apt system user');
    if (versionAtMost(pkg.version, '2.4.5~')) throw scriptsRequired(pkg.name, `its postinst migrates configuration from ${pkg.version}`);
  },
};
