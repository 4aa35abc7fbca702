import type { Dispatcher } from 'undici';
import type { ImageFilesystem } from '../../image/filesystem.js';
import type { LayerBuilder } from '../../image/layer-builder.js';
import type { Logger } from '../../lib/log.js';
import type { PackageIndexes } from '../../plan/library-index.js';
import type { LibraryPatchLevel } from '../../plan/library-level.js';
import type { PlannedLibrary } from '../../plan/types.js';
import type { Inventory } from '../../scan/inventory/types.js';
import type { LlbState } from '../buildkit/llb.js';

/** The image a library executor works on, and the one patch layer it writes into. */
export interface LibraryInstallContext {
  /** The merged view of the original image's layers (old RECORDs, package.json, lockfiles, interpreters). */
  readonly base: ImageFilesystem;
  readonly inventory: Inventory;
  /** The patch layer being assembled; OS changes may already be in it. */
  readonly builder: LayerBuilder;
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant?: string };
  readonly indexes: PackageIndexes;
  readonly dispatcher: Dispatcher;
  /** Scratch space for downloads. */
  readonly tmpDir: string;
  readonly logger: Logger;
  /** `--executor buildkit`: hand every library the package tool can install to BuildKit, none in-process. */
  readonly preferBuildkit?: boolean;
  /** Images BuildKit runs a language's own tools from (go: an image with a Go toolchain). */
  readonly toolingImages?: { readonly go?: string; readonly dotnet?: string };
  /** --toolchain-patch-level: how far a language toolchain may move (Go: stdlib fixes); unset, the tooling's own is used. */
  readonly toolchainPatchLevel?: LibraryPatchLevel;
}

export interface LibraryInstallResult {
  readonly applied: readonly PlannedLibrary[];
  /** Libraries that cannot be installed exactly in-process (no fitting wheel, unmet dependencies): they go to BuildKit. */
  readonly deferred: readonly { readonly library: PlannedLibrary; readonly why: string }[];
  readonly failed: readonly { readonly library: PlannedLibrary; readonly error: Error }[];
  /** Libraries the ecosystem's rules deliberately leave alone (reported as not patched, never failing the job). */
  readonly skipped?: readonly { readonly library: PlannedLibrary; readonly why: string }[];
  readonly bytesDownloaded: number;
}

/**
 * One ecosystem's executor. `installInProcess` writes what it can do exactly
 * straight into the patch layer; `buildkitSteps` appends the tool runs
 * (pip, npm, go, dotnet) for the deferred ones to a BuildKit state whose
 * difference from the base becomes part of the same patch layer.
 */
export interface LibraryExecutor {
  readonly ecosystem: PlannedLibrary['ecosystem'];
  installInProcess(ctx: LibraryInstallContext, libraries: readonly PlannedLibrary[]): Promise<LibraryInstallResult>;
  buildkitSteps?(state: LlbState, libraries: readonly PlannedLibrary[], ctx: LibraryInstallContext): LlbState;
}
