import type { ArchiveMirror } from '../../../distro/deb/repository/mirrors.js';
import { BuildkitError } from '../errors.js';
import type { LlbState } from '../llb.js';
import type { PackagePin } from './apt.js';

/**
 * Runs in a Debian tooling image with the distroless target mounted at
 * /target. Distroless images keep dpkg's records in status.d/ (one control
 * stanza and one md5sums file per package) and carry no shell, so nothing
 * runs inside them: the tooling's apt picks and downloads the packages
 * (the pinned ones, or every newer candidate), and each one is unpacked into
 * the target as dpkg would (through directory symlinks), its old files the
 * new version dropped are removed, and its status.d records are rewritten.
 */
const script = `#!/bin/sh
set -eu
T=/target
S=$T/var/lib/dpkg/status.d
native=$(dpkg --print-architecture)
# Mirrors (pairs "FROM TO ..."): the tooling's own sources are rewritten, literally, where a
# FROM ends at a path boundary. The tooling root is thrown away; only /target is kept.
if [ -n "\${PATCHD_APT_MIRRORS:-}" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v map="$PATCHD_APT_MIRRORS" 'BEGIN { n = split(map, m, " ") }
      { for (i = 1; i < n; i += 2) { s = $0; out = ""; f = m[i]; t = m[i + 1]
          while ((p = index(s, f)) > 0) {
            after = substr(s, p + length(f), 1)
            if (after == "" || after == "/" || after == " " || after == "\t") out = out substr(s, 1, p - 1) t
            else out = out substr(s, 1, p - 1 + length(f))
            s = substr(s, p + length(f))
          }
          $0 = out s }
        print }' "$f" > "$f.patchd" && mv "$f.patchd" "$f"
  done
fi
apt-get update -q
rm -rf /tmp/patchd-debs && mkdir -p /tmp/patchd-debs && cd /tmp/patchd-debs
want="$*"
if [ -z "$want" ]; then
  for f in "$S"/*; do
    case "$f" in *.md5sums) continue ;; esac
    name=$(sed -n 's/^Package: //p' "$f" | head -n1)
    ver=$(sed -n 's/^Version: //p' "$f" | head -n1)
    arch=$(sed -n 's/^Architecture: //p' "$f" | head -n1)
    q=$name
    if [ "$arch" != all ] && [ "$arch" != "$native" ]; then q="$name:$arch"; fi
    cand=$(apt-cache policy "$q" 2>/dev/null | sed -n 's/^  Candidate: //p')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ] && dpkg --compare-versions "$cand" gt "$ver"; then want="$want $q=$cand"; fi
  done
fi
[ -n "$want" ] || { echo "patchd: nothing to upgrade"; exit 0; }
apt-get download -q $want
for deb in ./*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  record=""
  for f in "$S"/*; do
    case "$f" in *.md5sums) continue ;; esac
    if [ "$(sed -n 's/^Package: //p' "$f" | head -n1)" = "$name" ]; then record=$f; break; fi
  done
  [ -n "$record" ] || record="$S/$name"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./md5sums > /tmp/patchd-new.md5sums 2>/dev/null || : > /tmp/patchd-new.md5sums
  if [ -f "$record.md5sums" ]; then
    awk '{ sub(/^[0-9a-f]+ +/, ""); print }' "$record.md5sums" | sort > /tmp/patchd-old.list
    awk '{ sub(/^[0-9a-f]+ +/, ""); print }' /tmp/patchd-new.md5sums | sort > /tmp/patchd-new.list
    comm -23 /tmp/patchd-old.list /tmp/patchd-new.list | while IFS= read -r gone; do rm -f "$T/$gone"; done
  fi
  dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink --no-same-owner --same-permissions -C "$T"
  dpkg-deb -f "$deb" > "$record"
  if [ -s /tmp/patchd-new.md5sums ]; then cp /tmp/patchd-new.md5sums "$record.md5sums"; else rm -f "$record.md5sums"; fi
  echo "patchd: $name $(dpkg-deb -f "$deb" Version)"
done
`;

/** `packages`: pins (an empty version means the tooling's candidate), or 'all' for every newer candidate. */
export function distrolessWithTooling(target: LlbState, tooling: LlbState, packages: readonly PackagePin[] | 'all', nativeArchitecture: string, mirrors: readonly ArchiveMirror[] = []): { lower: LlbState; upper: LlbState } {
  const pins = packages === 'all' ? [] : packages.map((p) => `${p.name}${p.architecture && p.architecture !== 'all' && p.architecture !== nativeArchitecture ? `:${p.architecture}` : ''}${p.version ? `=${p.version}` : ''}`);
  if (packages !== 'all' && pins.length === 0) throw new BuildkitError('BUILD_REQUEST_INVALID', 'no packages to install');
  for (const pin of pins) {
    if (!/^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$/.test(pin)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(pin)} to apt-get`);
  }
  if (mirrors.some((m) => m.credentials)) throw new BuildkitError('EXECUTOR_UNSUPPORTED', 'apt mirrors with credentials are used by the in-process executor only: BuildKit would keep them in its build definition');
  for (const m of mirrors) {
    for (const url of [m.from, m.to]) if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[A-Za-z0-9._~:/@%+=-]+$/.test(url)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing mirror URL ${JSON.stringify(url)}`);
  }
  const mirrorEnv = mirrors.length > 0 ? [`PATCHD_APT_MIRRORS=${mirrors.map((m) => `${m.from.replace(/\/+$/, '')} ${m.to.replace(/\/+$/, '')}`).join(' ')}`] : [];
  const withScript = tooling.mkfile('/usr/local/sbin/patchd-distroless-install', 0o755, script, 'distroless installer');
  const run = withScript.run({
    args: ['/usr/local/sbin/patchd-distroless-install', ...pins],
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive', 'LC_ALL=C', ...mirrorEnv],
    mounts: [{ kind: 'bind', dest: '/target', state: target }, { kind: 'cache', dest: '/var/cache/apt', id: 'patchd-apt-cache-tooling', sharing: 'locked' }],
    name: `distroless: ${pins.join(' ') || 'every newer candidate'}`,
  });
  return { lower: target, upper: run.mountOutput('/target') };
}
