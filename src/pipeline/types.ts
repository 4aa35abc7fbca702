import type { Dispatcher } from 'undici';
import type { ArchiveMirror } from '../distro/deb/repository/mirrors.js';
import type { RpmMirror } from '../distro/rpm/repos.js';
import type { BuildkitClient } from '../executors/buildkit/client.js';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import type { Keychain } from '../oci/keychain.js';
import type { LayerCompression } from '../oci/media-types.js';
import type { Reference } from '../oci/reference.js';
import type { TagScheme } from '../publish/tags.js';
import type { LibraryIndex, PackageIndexes } from '../plan/library-index.js';
import type { LibraryPatchLevel } from '../plan/library-level.js';
import type { PatchPlan } from '../plan/types.js';
import type { ManifestSigner } from '../publish/signing-key.js';
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
  /** Mirrors of the OS package repositories (registry policy): only where bytes are fetched from changes, never the image's sources. */
  readonly mirrors?: PackageMirrors;
  /** The BuildKit sidecar, when one is configured; its keychain answers buildkitd's credential requests. */
  readonly buildkit?: { readonly client: BuildkitClient; readonly keychain?: Keychain; readonly toolingImages?: { readonly rpm?: string; readonly deb?: string; readonly go?: string; readonly dotnet?: string } };
  /** With a signing key: each pushed result (an index: the index) is signed in cosign's format. */
  readonly signer?: ManifestSigner;
}

/** Mirrors of OS package repositories, per package family. */
export interface PackageMirrors {
  /** The apt sources' URIs, mapped by prefix (in-process fetches; BuildKit's apt with a rewritten copy of the sources). */
  readonly apt?: readonly ArchiveMirror[];
  /** rpm repositories' baseurl/mirrorlist/metalink, mapped by prefix or by repository id (BuildKit installs). */
  readonly rpm?: readonly RpmMirror[];
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
  /** Go: how far a binary's toolchain may move to fix stdlib findings; unset, stdlib findings are not patched. */
  readonly toolchainPatchLevel?: LibraryPatchLevel;
  /** auto (default): in-process, BuildKit for what needs maintainer scripts run; or one executor for everything. */
  readonly executor?: 'auto' | 'inprocess' | 'buildkit';
  /** How the patch layer is compressed; default gzip. zstd needs an OCI manifest. */
  readonly compression?: LayerCompression;
  /** `-t`: a tag or a full reference for the result. */
  readonly target?: string;
  readonly tagSuffix: string;
  /** floating (default): `<tag><suffix>`; incremental: `<tag><suffix>-N` as well, N from the registry's tag list. */
  readonly tagScheme?: TagScheme;
  /** Copa's --platform: patch only these platforms of an index (`linux/amd64`, `linux/arm64/v8`); the others are kept as they are. */
  readonly platforms?: readonly string[];
  readonly ignoreErrors: boolean;
  readonly dryRun: boolean;
  /** Attach an OpenVEX document and CycloneDX SBOMs to the pushed result as OCI referrers (src/pipeline/evidence.ts); default true. */
  readonly evidence?: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
  /** Called before each write to the registry; throwing stops the patch there (serve: the job's claim was lost). */
  readonly beforePublish?: () => Promise<void>;
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
  /** Every tag the result was put under (incremental: `<tag><suffix>-N`, then the floating tag). */
  readonly tags?: readonly string[];
  /** Why nothing was pushed, when a previous patch of the same original already has every fix. */
  readonly reason?: string;
  /** What to know about a push that went through: a floating tag the registry would not move (incremental scheme). */
  readonly notes?: readonly string[];
  readonly platforms: readonly PlatformOutcome[];
  readonly bytesDownloaded: number;
  /** What was attached to the pushed result (absent when nothing was pushed or evidence is off). */
  readonly evidence?: PatchEvidence;  /** cosign's signature of `digest` (with a signer): the `sha256-<hex>.sig` tag and its manifest. */
  readonly signature?: { readonly tag: string; readonly manifestDigest: string };
  /** up-to-date: the patched image already under the target tag, which has every fix (signed again when its signature is missing). */
  readonly current?: { readonly target: string; readonly digest: string };
}

/** Referrers attached to a patched image: found by the referrers API, or the `sha256-<hex>` tag (`via`). */
export interface PatchEvidence {
  /** The OpenVEX document, on the pushed result; absent when no fix of a named vulnerability was verified. */
  readonly vex?: { readonly digest: string; readonly via: 'referrers-api' | 'tag-schema'; readonly statements: number };
  /** A CycloneDX SBOM per patched platform manifest (`subject`). */
  readonly sbom?: readonly { readonly platform: string; readonly subject: string; readonly digest: string; readonly via: 'referrers-api' | 'tag-schema'; readonly components: number }[];
  /** The image was pushed, but attaching its evidence failed: why. */
  readonly error?: string;
}
