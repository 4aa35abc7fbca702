import type { Readable } from 'node:stream';
import type { Layer } from './layer.js';
import { parseConfig, parseManifest, sha256Digest, type Descriptor, type HistoryEntry, type ImageConfig, type ImageManifest } from './types.js';
import { ImageError } from './errors.js';

/**
 * An image as a value (go-containerregistry v1/mutate): mutations return a
 * new Image wrapping their base; bytes and digests are derived once, on first
 * use. An image read from a registry returns its original bytes untouched.
 */
export interface Image {
  readonly manifestMediaType: string;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  readonly layers: readonly Layer[];
  manifestBytes(): Buffer;
  manifestDigest(): string;
  configBytes(): Buffer;
  configDescriptor(): Descriptor;
}

export function imageFromRegistry(args: {
  manifestMediaType: string;
  manifestBytes: Buffer;
  configBytes: Buffer;
  openBlob: (descriptor: Descriptor) => Promise<Readable>;
}): Image {
  const parsed = parseManifest(args.manifestBytes, args.manifestMediaType);
  if (parsed.kind !== 'manifest') throw new ImageError('MANIFEST_INVALID', 'expected an image manifest, got an index');
  const manifest = parsed.manifest;
  if (sha256Digest(args.configBytes) !== manifest.config.digest) {
    throw new ImageError('CONFIG_INVALID', `config blob does not match its digest ${manifest.config.digest}`);
  }
  const config = parseConfig(args.configBytes);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new ImageError('CONFIG_INVALID', `config lists ${config.rootfs.diff_ids.length} diff_ids for ${manifest.layers.length} layers`);
  }
  const layers: Layer[] = manifest.layers.map((d, i) => ({
    mediaType: d.mediaType, digest: d.digest, size: d.size, diffId: config.rootfs.diff_ids[i]!,
    open: () => args.openBlob(d),
  }));
  return fromParts(args.manifestMediaType, manifest, config, layers, args.manifestBytes, args.configBytes);
}

function fromParts(manifestMediaType: string, manifest: ImageManifest, config: ImageConfig, layers: readonly Layer[], manifestBytes?: Buffer, configBytes?: Buffer): Image {
  let mBytes = manifestBytes;
  let cBytes = configBytes;
  let mDigest: string | undefined;
  const image: Image = {
    manifestMediaType,
    manifest,
    config,
    layers,
    configBytes: () => (cBytes ??= Buffer.from(JSON.stringify(config))),
    configDescriptor: () => {
      const bytes = image.configBytes();
      return { mediaType: manifest.config.mediaType, digest: sha256Digest(bytes), size: bytes.length };
    },
    manifestBytes: () => (mBytes ??= Buffer.from(JSON.stringify(manifest))),
    manifestDigest: () => (mDigest ??= sha256Digest(image.manifestBytes())),
  };
  return image;
}

/** Base layers keep their descriptors byte for byte; the new one goes on top, with one history entry. */
export function appendLayer(base: Image, layer: Layer & { readonly diffId: string }, history: HistoryEntry): Image {
  const config: ImageConfig = {
    ...base.config,
    rootfs: { ...base.config.rootfs, diff_ids: [...base.config.rootfs.diff_ids, layer.diffId] },
    history: [...(base.config.history ?? []), history],
  };
  const withConfig = rebuild(base, config, [...base.layers, layer], [...base.manifest.layers, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }]);
  return withConfig;
}

export function withAnnotations(base: Image, annotations: Readonly<Record<string, string>>): Image {
  const manifest: ImageManifest = { ...base.manifest, annotations: { ...(base.manifest.annotations ?? {}), ...annotations } };
  return fromParts(base.manifestMediaType, manifest, base.config, base.layers, undefined, base.configBytes());
}

export function withConfigCreated(base: Image, created: string): Image {
  return rebuild(base, { ...base.config, created }, base.layers, base.manifest.layers);
}

function rebuild(base: Image, config: ImageConfig, layers: readonly Layer[], layerDescriptors: readonly Descriptor[]): Image {
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest: ImageManifest = {
    ...base.manifest,
    config: { ...base.manifest.config, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: [...layerDescriptors],
  };
  return fromParts(base.manifestMediaType, manifest, config, layers, undefined, configBytes);
}
