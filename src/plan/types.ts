import type { PackageCandidate } from '../build/deb/repository/index.js';

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
}
