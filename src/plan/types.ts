import type { PackageCandidate } from '../distro/deb/repository/index.js';
import type { Ecosystem } from '../versions/index.js';

/** One package the patch will replace, and why. */
export interface PlannedPackage {
  readonly name: string;
  readonly architecture: string;
  readonly from: string;
  readonly to: string;
  /** Finding ids (CVE-..., DSA-...) or a plain reason such as 'newer version in bookworm-security'. */
  readonly reasons: readonly string[];
  readonly executor: 'deb-inprocess';
  readonly candidate: PackageCandidate;
}

/** A library the patch would move to a fixed version. */
export interface PlannedLibrary {
  readonly ecosystem: Ecosystem;
  readonly name: string;
  readonly from: string;
  readonly to: string;
  /** The record it was found in (METADATA, package.json, deps.json). */
  readonly path: string;
  readonly location?: string;
  readonly reasons: readonly string[];
  /** Language package managers run in the BuildKit sidecar. */
  readonly executor: 'buildkit';
}

/** A package with findings that the plan deliberately leaves alone, and why. */
export interface SkippedPackage {
  readonly ecosystem: Ecosystem;
  readonly name: string;
  readonly version: string;
  readonly path: string;
  readonly reason: string;
  readonly findings: readonly string[];
}

/** A newer version exists but installing it would break the package set (apt would hold it back). */
export interface HeldBackPackage {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

/** A finding whose fix is not installable from the image's own repositories. */
export interface UnavailableFix {
  readonly name: string;
  readonly installed?: string;
  readonly fixedVersion?: string;
  readonly reason: string;
}

export interface PatchPlan {
  readonly packages: readonly PlannedPackage[];
  readonly heldBack: readonly HeldBackPackage[];
  readonly unavailable: readonly UnavailableFix[];
  readonly libraries?: readonly PlannedLibrary[];
  readonly skipped?: readonly SkippedPackage[];
  /** rpm-family images: what their package manager upgraded (known once BuildKit has run it). */
  readonly upgraded?: readonly { readonly name: string; readonly from: string; readonly to: string }[];
}
