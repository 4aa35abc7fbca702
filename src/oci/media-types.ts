/** The four manifest kinds a registry may hand us, plus layer and config types. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** Not in Docker's spec: containerd's and BuildKit's name for zstd layers under Docker manifests (Docker itself fails to pull them). */
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  openVex: 'application/vnd.openvex+json',
  /** CycloneDX JSON (IANA-registered; the artifact type Trivy's referrer plugin and `--sbom-sources oci` use). */
  cycloneDxJson: 'application/vnd.cyclonedx+json',
  /** The OCI 1.1 empty descriptor's type: the config of an artifact that has none. */
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export const manifestMediaTypes: readonly string[] = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
];

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** The layer media type that matches a manifest's family (Docker images keep Docker layer types). */
export function gzipLayerMediaTypeFor(manifestMediaType: string): string {
  return manifestMediaType === MediaType.dockerManifest ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip;
}

/** How a patch layer's tar is compressed (Copa-style `--compression`; registry policy `compression`). */
export type LayerCompression = 'gzip' | 'zstd';

/** The compression a layer media type declares; undefined for a type that is not a layer's. */
export function layerCompressionOf(mediaType: string): LayerCompression | 'none' | undefined {
  switch (mediaType) {
    case MediaType.ociLayerGzip:
    case MediaType.dockerLayerGzip:
    case MediaType.dockerForeignLayerGzip:
      return 'gzip';
    case MediaType.ociLayerZstd:
    case MediaType.dockerLayerZstd:
      return 'zstd';
    case MediaType.ociLayerTar:
    case MediaType.dockerLayerTar:
      return 'none';
    default:
      return undefined;
  }
}
