import type { Ecosystem } from '../../versions/index.js';

/** What the image says it is (/etc/os-release). */
export interface OsInfo {
  readonly id: string;
  readonly versionId?: string;
  readonly versionCodename?: string;
  readonly prettyName?: string;
  readonly idLike: readonly string[];
}

/** OS packages come from the distribution; library packages from a language ecosystem. */
export type PackageClass = 'os' | 'library';

export interface InstalledPackage {
  readonly ecosystem: Ecosystem;
  readonly class: PackageClass;
  readonly name: string;
  readonly version: string;
  /** Package URL (purl-spec). */
  readonly purl: string;
  /** The file the record came from, root-relative. */
  readonly path: string;
  readonly architecture?: string;
  /** OS packages: the source package advisories are filed under (Debian, RPM). */
  readonly sourceName?: string;
  readonly sourceVersion?: string;
  /** Library packages: the application root or site-packages directory the package belongs to. */
  readonly location?: string;
  /** npm: listed in the app's own package.json (overrides cannot patch it). Global installs are direct. */
  readonly direct?: boolean;
  /** npm: installed globally (`npm install -g`). */
  readonly global?: boolean;
  /** Go: the module's main package path and build facts of the binary it came from. */
  readonly goBinary?: {
    readonly mainModule: string;
    readonly goVersion: string;
    readonly vcsRevision?: string;
    readonly vcsModified?: boolean;
    /** The main module's version ('(devel)' for a plain build) and, when it came from a module zip (`go install m@v`), that zip's h1: sum. */
    readonly mainVersion?: string;
    readonly mainSum?: string;
  };
}

/** What a reader finds in one file; the collector adds the purl. */
export type PackageRecord = Omit<InstalledPackage, 'purl'>;

export interface Inventory {
  readonly os?: OsInfo;
  readonly packages: readonly InstalledPackage[];
  /** Files that looked like package records but could not be read, with why. */
  readonly warnings: readonly string[];
}
