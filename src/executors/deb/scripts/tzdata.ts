import { readDebconfAnswers } from './debconf.js';
import type { PackageHandler } from './package-handler.js';

/**
 * tzdata's postinst points /etc/localtime at the zone chosen in debconf and
 * writes /etc/timezone. We read the same debconf answers and write the same
 * result (only what differs from the image).
 */
export const tzdataHandler: PackageHandler = {
  knownLines: {
    postinst: [
      'LC_ALL=C', 'LANG=C', 'unset TZ', 'umask 022', 'get_timezone() {',
      'if ! [ -L "$DPKG_ROOT/etc/localtime" ] ; then', 'return', 'fi',
      'timezone="$(readlink "$DPKG_ROOT/etc/localtime")"',
      'timezone="$(cd "$DPKG_ROOT/etc" && realpath -m -s "$timezone")"',
      'echo "${timezone#/usr/share/zoneinfo/}"', '}',
      '. /usr/share/debconf/confmodule', 'db_version 2.0',
      'if [ "$1" = configure ]; then', 'AREA=Etc', 'ZONE=UTC',
      'db_get tzdata/Areas && AREA="$RET"', 'db_get "tzdata/Zones/$AREA" && ZONE="$RET"',
      'TIMEZONE="$AREA/$ZONE"', 'db_stop',
      'if test "$(get_timezone)" != "$TIMEZONE"; then',
      'ln -nsf "/usr/share/zoneinfo/$TIMEZONE" "$DPKG_ROOT/etc/localtime.dpkg-new" && \\',
      'mv -f "$DPKG_ROOT/etc/localtime.dpkg-new" "$DPKG_ROOT/etc/localtime"',
      'which restorecon >/dev/null 2>&1 && restorecon "$DPKG_ROOT/etc/localtime"',
      'echo "$TIMEZONE" > "$DPKG_ROOT/etc/timezone"',
      'which restorecon >/dev/null 2>&1 && restorecon "$DPKG_ROOT/etc/timezone"',
      'echo', `echo "Current default time zone: '$TIMEZONE'"`,
      'UTdate=$(LC_ALL=C TZ=UTC0 date)', 'TZdate=$(unset TZ ; LANG=C date -d "$UTdate")',
      'echo "Local time is now:      $TZdate."', 'echo "Universal Time is now:  $UTdate."',
      'if [ -z "$DEBCONF_RECONFIGURE" ] ; then', `echo "Run 'dpkg-reconfigure tzdata' if you wish to change it."`,
    ],
    postrm: ['if [ "$1" = "purge" ]; then', 'rm -f /etc/localtime /etc/timezone', 'fi'],
  },
  async configure({ base, builder }) {
    const answers = await readDebconfAnswers(base);
    const area = answers.get('tzdata/Areas') || 'Etc';
    const zone = answers.get(`tzdata/Zones/${area}`) || 'UTC';
    const timezone = `${area}/${zone}`;

    const localtime = base.lstat('etc/localtime');
    const current = localtime?.type === 'symlink' && localtime.linkname !== undefined
      ? lexicalResolve('/etc', localtime.linkname).replace(/^\/usr\/share\/zoneinfo\//, '')
      : undefined;
    if (current !== timezone) builder.addSymlink('etc/localtime', `/usr/share/zoneinfo/${timezone}`, { mode: 0o777 });

    const existing = await base.readFile('etc/timezone');
    if (existing?.toString('utf8') !== `${timezone}\n`) await builder.addFile('etc/timezone', { mode: 0o644 }, Buffer.from(`${timezone}\n`));
  },
};

/** `realpath -m -s`: resolve '.' and '..' without following symlinks. */
function lexicalResolve(from: string, target: string): string {
  const parts = target.startsWith('/') ? [] : from.split('/').filter(Boolean);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}
