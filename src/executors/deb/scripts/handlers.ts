import type { ImageFilesystem } from '../../../image/filesystem.js';
import type { LayerBuilder } from '../../../image/layer-builder.js';
import type { DebControlMember } from '../../../distro/deb/deb-archive.js';
import { splitLines, type DpkgDatabase, type InstalledPackage } from '../../../distro/deb/dpkg-database.js';
import type { OverlayView } from '../overlay-view.js';
import { residualStatements, type ScriptKind } from './analyze.js';
import { scriptsRequired, type HandlerContext, type PackageHandler } from './package-handler.js';
import { tzdataHandler } from './tzdata.js';
import { aptHandler } from './apt.js';
import { caCertificatesHandler } from './ca-certificates.js';
import { opensslHandler } from './openssl.js';
import { libpam0gHandler, libpamModulesHandler, libpamRuntimeHandler } from './pam.js';

const handlers: Readonly<Record<string, PackageHandler>> = {
  apt: aptHandler,
  'ca-certificates': caCertificatesHandler,
  openssl: opensslHandler,
  libpam0g: libpam0gHandler,
  'libpam-modules': libpamModulesHandler,
  'libpam-runtime': libpamRuntimeHandler,
  tzdata: tzdataHandler,
};

/** Explicit triggers we reproduce in-process (see ldconfig.ts). */
const handledTriggers = new Set(['ldconfig']);

/** File triggers whose only effect is a cache under var/cache (man-db's index): nothing an image keeps meaningfully. */
const inertFileTriggers = new Set(['man-db']);

/**
 * Vets everything dpkg would run for this upgrade: old prerm/postrm, new
 * preinst/postinst, activated triggers and file triggers of other packages.
 */
export async function checkMaintainerScripts(args: {
  readonly db: DpkgDatabase;
  readonly installed: InstalledPackage;
  readonly control: ReadonlyMap<string, DebControlMember>;
  readonly newVersion: string;
  readonly base: ImageFilesystem;
}): Promise<void> {
  const { db, installed, control } = args;
  const handler = handlers[installed.name];
  const scripts: [ScriptKind, Buffer | undefined][] = [
    ['prerm', await db.infoFile(installed, 'prerm')],
    ['preinst', control.get('preinst')?.content],
    ['postrm', await db.infoFile(installed, 'postrm')],
    ['postinst', control.get('postinst')?.content],
  ];
  for (const [kind, content] of scripts) {
    if (!content) continue;
    const known = new Set(handler?.knownLines[kind] ?? []);
    const unknown = residualStatements(content.toString('utf8'), installed.version).filter((line) => !known.has(line));
    if (unknown.length > 0) throw scriptsRequired(installed.name, `its ${kind} runs "${truncate(unknown[0]!)}"`);
  }

  for (const line of control.get('triggers') ? splitLines(control.get('triggers')!.content) : []) {
    const [directive, name] = line.trim().split(/\s+/);
    if (!directive?.startsWith('activate') || !name || handledTriggers.has(name)) continue;
    const interested = await args.base.readFile(`var/lib/dpkg/triggers/${name}`);
    if (interested && interested.toString('utf8').trim()) throw scriptsRequired(installed.name, `it activates trigger "${name}"`);
  }

  const shipped = splitLines(control.get('md5sums')?.content ?? Buffer.alloc(0)).map((l) => `/${l.slice(34).replace(/^\.?\//, '')}`);
  for (const trigger of db.fileTriggers) {
    if (inertFileTriggers.has(trigger.pkg)) continue;
    const hit = shipped.find((p) => p === trigger.path || p.startsWith(`${trigger.path}/`));
    if (hit) throw scriptsRequired(installed.name, `${hit} activates ${trigger.pkg}'s file trigger on ${trigger.path}`);
  }

  await handler?.precheck?.({ pkg: installed, newVersion: args.newVersion, control, base: args.base });
}

export async function configurePackage(args: HandlerContext & { readonly view: OverlayView; readonly builder: LayerBuilder }): Promise<void> {
  await handlers[args.pkg.name]?.configure?.(args);
}

function truncate(s: string): string {
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}
