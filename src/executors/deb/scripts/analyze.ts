import { compareDpkgVersions } from '../../../versions/dpkg.js';

export type ScriptKind = 'preinst' | 'postinst' | 'prerm' | 'postrm';

/**
 * debhelper snippets that do nothing when an already-configured package is
 * upgraded inside an image: no init system runs, services are not started,
 * and enablement links already exist from the first install.
 */
const inertDebhelperTools = new Set([
  'dh_installsystemd', 'dh_systemd_enable', 'dh_systemd_start', 'dh_installsystemduser',
  'dh_installinit', 'dh_installdebconf', 'dh_installmenu', 'dh_installmime', 'dh_icons',
]);

/**
 * The statements of a maintainer script that may do real work during an
 * upgrade from `oldVersion`: what is left after dropping comments, `set -e`,
 * `exit 0`, inert debhelper snippets, and dpkg-maintscript-helper calls whose
 * prior-version guard rules them out. An empty result means the script is a
 * no-op for this upgrade.
 */
export function residualStatements(text: string, oldVersion: string): string[] {
  const out: string[] = [];
  let skipping = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const block = /^# Automatically added by (dh_[a-z0-9_]+)/.exec(line);
    if (block) { skipping = inertDebhelperTools.has(block[1]!); continue; }
    if (line.startsWith('# End automatically added section')) { skipping = false; continue; }
    if (skipping) continue;
    if (line === '' || line.startsWith('#') || line === 'set -e' || line === 'exit 0') continue;
    if (line.startsWith('dpkg-maintscript-helper ') && maintscriptHelperIsInert(line, oldVersion)) continue;
    out.push(line);
  }
  return out;
}

/**
 * dpkg-maintscript-helper acts only when upgrading from a version at or below
 * its prior-version argument (see dpkg-maintscript-helper(1)).
 */
function maintscriptHelperIsInert(line: string, oldVersion: string): boolean {
  const words = line.replace(/\s+--\s+"\$@"\s*$/, '').split(/\s+/).slice(1).map(unquote);
  const command = words[0];
  const argCount: Record<string, number> = { rm_conffile: 1, mv_conffile: 2, symlink_to_dir: 2, dir_to_symlink: 2 };
  const fixed = command ? argCount[command] : undefined;
  if (fixed === undefined) return false;
  const prior = words[1 + fixed];
  if (!prior) return false; // no guard: acts on every upgrade
  return compareDpkgVersions(oldVersion, prior) > 0;
}

function unquote(word: string): string {
  return word.replace(/\\(.)/g, '$1').replace(/^(['"])(.*)\1$/, '$2');
}
