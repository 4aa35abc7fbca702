import type { Dispatcher } from 'undici';
import type { BuildkitClient } from '../executors/buildkit/client.js';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import type { Keychain } from '../oci/keychain.js';
import type { Reference } from '../oci/reference.js';
import type { LibraryIndex, PackageIndexes } from '../plan/library-index.js';
import type { LibraryPatchLevel } from '../plan/library-level.js';
import type { PatchPlan } from '../plan/types.js';
import type { Inventory } from '../scan/inventory/types.js';
import type { AdvisorySources } from '../scan/scan.js';
import type { Finding } from '../scan/types.js';

export interface PatchDependencies {
  readonly client: RegistryClient;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
  /** Apt index cache, shared across jobs. */
  readonly cacheDir: string;
  /** Scratch space for downloaded packages and the layer being written. */
  readonly tmpDir: string;
  readonly now?: () => Date;
  /** Where library fixes are checked to exist (PyPI, npm, Go proxy, NuGet); required for library patching. */
  readonly libraryIndex?: LibraryIndex;
  /** Where library packages are downloaded from (mirrors, private indexes with credentials); default the public indexes. */
  readonly packageIndexes?: PackageIndexes;
  /** The BuildKit sidecar, when one is configured; its keychain answers buildkitd's credential requests. */
  readonly buildkit?: { readonly client: BuildkitClient; readonly keychain?: Keychain; readonly toolingImages?: { readonly rpm?: string; readonly deb?: string } };
}

/** Copa's --pkg-types: which kinds of package a patch may touch. */
export interface PkgTypes {
  readonly os: boolean;
  readonly library: boolean;
}

export interface PatchOptions {
  readonly image: Reference;
  /**
   * A report (Trivy JSON, Harbor's) and/or OSV advisories. Without advisory
   * data for the image's OS, every OS package with a newer version is patched.
   */
  readonly advisories?: AdvisorySources;
  /** Default: OS packages only. */
  readonly pkgTypes?: PkgTypes;
  /** Default: patch. */
  readonly libraryPatchLevel?: LibraryPatchLevel;
  /** auto (default): in-process, BuildKit for what needs maintainer scripts run; or one executor for everything. */
  readonly executor?: 'auto' | 'inprocess' | 'buildkit';
  /** `-t`: a tag or a full reference for the result. */
  readonly target?: string;
  readonly tagSuffix: string;
  readonly ignoreErrors: boolean;
  readonly dryRun: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
}

export type ProgressEvent =
  | { readonly stage: 'resolve' | 'scan' | 'plan' | 'build' | 'verify' | 'publish'; readonly detail?: string }
  | { readonly stage: 'package'; readonly phase: 'download' | 'unpack' | 'configure'; readonly pkg: string };

export interface PlatformOutcome {
  readonly platform: string;
  readonly plan?: PatchPlan;
  readonly findings?: readonly Finding[];
  readonly inventory?: Pick<Inventory, 'os' | 'warnings'> & { readonly packages: number };
  readonly skipped?: string;
  readonly failed: readonly { readonly name: string; readonly error: string }[];
  readonly layer?: { readonly digest: string; readonly size: number; readonly diffId: string };
  readonly executor?: 'inprocess' | 'buildkit';
  readonly manifestDigest?: string;
}

export interface PatchOutcome {
  readonly status: 'patched' | 'up-to-date' | 'dry-run';
  readonly source: string;
  readonly sourceDigest: string;
  readonly target?: string;
  readonly digest?: string;
  readonly platforms: readonly PlatformOutcome[];
  readonly bytesDownloaded: number;
}
