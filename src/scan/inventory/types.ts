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
  /**
   * Go: where the module record comes from. `go.mod` is source (a requirement a
   * Go toolchain can move); `binary` is compiled in (a fix needs a rebuild).
   * Records without it are binary ones.
   */
  readonly goOrigin?: 'go.mod' | 'binary';
  /** Go modules required by a go.mod: the module that go.mod declares, its `go` line, and how the requirement is written. */
  readonly goMod?: {
    readonly module?: string;
    readonly goVersion?: string;
    /** Marked `// indirect`: needed by a dependency, not imported by the module itself. */
    readonly indirect?: boolean;
    /** A `replace` directive put this module in place of the one required (`path version` as required). */
    readonly replaces?: string;
  };
  /** Go binaries: the record is the binary's main module (the code it was built from), not one of its dependencies. */
  readonly goMainModule?: boolean;
  /** Python: the metadata lies inside another package's directory (pip/_vendor, setuptools/_vendor): that package, which ships it. */
  readonly vendoredIn?: string;
  /** Python: installed by the distribution's package manager (the system Python's dist-packages); advisories reach it through its OS package. */
  readonly distroOwned?: boolean;
  /**
   * Report rows only: the package is named by a source manifest or lockfile
   * (requirements.txt, poetry.lock, package-lock.json, ...), not installed
   * from one: `file` is the manifest, `type` the report's type for it.
   */
  readonly sourceManifest?: { readonly file: string; readonly type: string };
}

/** What a reader finds in one file; the collector adds the purl. */
export type PackageRecord = Omit<InstalledPackage, 'purl'>;

export interface Inventory {
  readonly os?: OsInfo;
  readonly packages: readonly InstalledPackage[];
  /** Files that looked like package records but could not be read, with why. */
  readonly warnings: readonly string[];
}
