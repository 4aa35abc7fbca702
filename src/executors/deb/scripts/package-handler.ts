import type { ImageFilesystem } from '../../../image/filesystem.js';
import type { LayerBuilder } from '../../../image/layer-builder.js';
import type { DebControlMember } from '../../../distro/deb/deb-archive.js';
import type { InstalledPackage } from '../../../distro/deb/dpkg-database.js';
import { DebError } from '../../../distro/deb/errors.js';
import { compareDpkgVersions } from '../../../versions/dpkg.js';
import type { OverlayView } from '../overlay-view.js';
import type { ScriptKind } from './analyze.js';

export interface HandlerContext {
  readonly pkg: InstalledPackage;
  readonly newVersion: string;
  /** The new version's control members (scripts, config, templates). */
  readonly control: ReadonlyMap<string, DebControlMember>;
  readonly base: ImageFilesystem;
}

/**
 * An in-process stand-in for one package's maintainer scripts. `knownLines`
 * are the exact script statements (trimmed) it accounts for, taken from the
 * package's real scripts: a new script version with other statements is not
 * silently accepted.
 */
export interface PackageHandler {
  readonly knownLines: Partial<Record<ScriptKind, readonly string[]>>;
  /** Throws SCRIPTS_REQUIRED when this upgrade would make the scripts do something we do not reproduce. */
  precheck?(ctx: HandlerContext): Promise<void>;
  /** The effect of `postinst configure`, written into the layer. */
  configure?(ctx: HandlerContext & { readonly view: OverlayView; readonly builder: LayerBuilder }): Promise<void>;
}

export function scriptsRequired(pkg: string, what: string): DebError {
  return new DebError('SCRIPTS_REQUIRED',
    `${pkg}: ${what}; patchd cannot reproduce that in-process — route it to the BuildKit executor, or pass --ignore-errors to skip this package`,
    { details: { package: pkg } });
}

export function versionAtMost(version: string, limit: string): boolean {
  return compareDpkgVersions(version, limit) <= 0;
}
