import { forEachEntry } from './filesystem.js';
import { defaultDecompressLimits, openLayerTar, type Layer } from './layer.js';
import type { LayerBuilder } from './layer-builder.js';
import { baseName, normaliseEntryPath, parentOf } from './tar-path.js';

/**
 * Copies every entry of `layer` (files, links, directories, whiteouts and
 * opaque markers) into `builder`, so patch layers made by different executors
 * (BuildKit's diff, the in-process ones) end as ONE layer. Later calls win
 * over earlier ones for the same path; file contents stream through.
 */
export async function mergeLayerInto(builder: LayerBuilder, layer: Layer): Promise<void> {
  const stream = await openLayerTar(layer, defaultDecompressLimits);
  await forEachEntry(stream, async (header, body) => {
    const path = normaliseEntryPath(header.name);
    const name = baseName(path);
    const meta = { mode: (header.mode ?? 0o644) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0, ...(header.mtime ? { mtime: header.mtime } : {}) };
    if (name === '.wh..wh..opq') {
      builder.addOpaqueDirectory(parentOf(path), builder.get(parentOf(path))?.meta ?? { mode: 0o755 });
      await drain(body);
      return;
    }
    if (name.startsWith('.wh.')) {
      builder.addWhiteout(parentOf(path) === '' ? name.slice(4) : `${parentOf(path)}/${name.slice(4)}`);
      await drain(body);
      return;
    }
    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        await builder.addFile(path, meta, body);
        return;
      case 'directory':
        if (path !== '') builder.addDirectory(path, meta);
        break;
      case 'symlink':
        builder.addSymlink(path, header.linkname ?? '', meta);
        break;
      case 'link':
        builder.addHardlink(path, normaliseEntryPath(header.linkname ?? ''), meta);
        break;
      default:
        break; // devices and fifos do not occur in patch layers
    }
    await drain(body);
  });
}

function drain(body: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (body.readableEnded) return Promise.resolve();
  return new Promise((resolve, reject) => { body.once('end', resolve); body.once('error', reject); body.resume(); });
}
