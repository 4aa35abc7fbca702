/** Annotations patchd writes on every image it publishes. */
export const Annotation = {
  baseName: 'org.opencontainers.image.base.name',
  baseDigest: 'org.opencontainers.image.base.digest',
  created: 'org.opencontainers.image.created',
  /** Our marker: a webhook for a manifest carrying it is our own output. */
  patched: 'io.patchd.patched',
} as const;
