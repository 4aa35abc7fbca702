import type { LayerBuilder } from '../../../image/layer-builder.js';
import type { OverlayView } from '../overlay-view.js';
import { certificateFingerprint, pemCertificates, subjectNameHash } from './openssl-subject-hash.js';

interface Entry {
  filename: string;
  fingerprint?: string;
  needed: boolean;
  oldId: number;
}

const noId = Number.MAX_SAFE_INTEGER;
const hashLink = /^([0-9a-f]{8})\.(\d+)$/;
const certExtensions = /\.(pem|crt|cer)$/i;

/**
 * `openssl rehash DIR` (apps/rehash.c): every file holding exactly one
 * certificate gets a `<subject-hash>.<n>` symlink; existing links keep their
 * number, new ones take the lowest free one, links to certificates that are
 * gone are removed; the same certificate twice is linked once. Files are
 * visited in strcmp order, as rehash does.
 */
export async function rehashDirectory(view: OverlayView, builder: LayerBuilder, dir: string): Promise<void> {
  const buckets = new Map<string, { entries: Entry[]; needed: number }>();
  const bucket = (hash: string) => {
    let b = buckets.get(hash);
    if (!b) buckets.set(hash, (b = { entries: [], needed: 0 }));
    return b;
  };
  const addEntry = (hash: string, filename: string, fingerprint: string | undefined, needed: boolean, oldId: number) => {
    const b = bucket(hash);
    let found: Entry | undefined;
    for (const e of b.entries) {
      if (fingerprint && e.fingerprint === fingerprint) return; // duplicate certificate
      if (e.filename === filename) found = e;
    }
    if (!found) b.entries.push((found = { filename, needed: false, oldId: noId }));
    if (oldId < found.oldId) found.oldId = oldId;
    if (needed && !found.needed) {
      found.needed = true;
      b.needed++;
      if (fingerprint) found.fingerprint = fingerprint;
    }
  };

  const names = view.children(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const path = `${dir}/${name}`;
    const entry = view.lstat(path);
    const link = hashLink.exec(name);
    if (link && entry?.type === 'symlink') {
      addEntry(link[1]!, entry.linkname ?? '', undefined, false, Number(link[2]));
      continue;
    }
    if (!certExtensions.test(name)) continue;
    const content = await view.readFile(path);
    if (!content) continue;
    const text = content.toString('latin1');
    const certs = pemCertificates(text);
    if (certs.length !== 1 || text.includes('-----BEGIN X509 CRL-----')) continue; // rehash skips these (the bundle among them)
    const der = certs[0]!;
    addEntry(subjectNameHash(der), name, certificateFingerprint(der), true, noId);
  }

  for (const [hash, b] of buckets) {
    const used = new Set(b.entries.filter((e) => e.oldId < b.needed).map((e) => e.oldId));
    let nextId = 0;
    for (const e of b.entries) {
      if (e.oldId < b.needed) continue; // existing link kept as it is
      if (e.oldId !== noId) builder.addWhiteout(`${dir}/${hash}.${e.oldId}`);
      if (!e.needed) continue;
      while (used.has(nextId)) nextId++;
      used.add(nextId);
      const linkPath = `${dir}/${hash}.${nextId}`;
      if (view.lstat(linkPath)?.linkname !== e.filename) builder.addSymlink(linkPath, e.filename, { mode: 0o777 });
    }
  }
}
