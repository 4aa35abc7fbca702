import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { fetchDeb } from '../../src/executors/deb/deb-cache.js';
import type { AptRepositories, PackageCandidate } from '../../src/distro/deb/repository/index.js';
import { verifyingStream } from '../../src/oci/verify.js';
import { tmpDir } from '../harness/tools.js';

const work = await tmpDir('patchd-deb-cache');
after(() => work.remove());

const bytes = Buffer.from('!<arch>\nnot really a deb, but bytes with a hash');
const sha256 = createHash('sha256').update(bytes).digest('hex');
const candidate = { name: 'x', version: '1', architecture: 'all', filename: 'x.deb', size: bytes.length, sha256, paragraph: { fields: [] }, url: 'http://127.0.0.1/x.deb', release: { notAutomatic: false, butAutomaticUpgrades: false } } satisfies PackageCandidate;

// The repository side, as loadAptRepositories builds it: bytes verified against the candidate while streaming.
function repositories(served: Buffer): AptRepositories & { opened: number } {
  const repos = {
    opened: 0,
    stats: { bytesDownloaded: 0, indexCacheHits: 0, indexFetches: 0 },
    candidates: () => [],
    async openDeb(c: PackageCandidate) {
      repos.opened++;
      return Readable.from([served]).pipe(verifyingStream({ digest: `sha256:${c.sha256}`, size: c.size }));
    },
  };
  return repos;
}

test('a .deb is fetched once, then served from the cache by its SHA256', async () => {
  const repos = repositories(bytes);
  const cacheDir = join(work.path, 'a');
  const first = await fetchDeb({ repositories: repos, candidate, cacheDir });
  const second = await fetchDeb({ repositories: repos, candidate, cacheDir });
  assert.equal(first, second);
  assert.equal(repos.opened, 1);
  assert.deepEqual(await readFile(first), bytes);
});

test('a corrupted cache entry is fetched again; a bad download is never cached', async () => {
  const cacheDir = join(work.path, 'b');
  const good = repositories(bytes);
  const path = await fetchDeb({ repositories: good, candidate, cacheDir });
  await writeFile(path, 'tampered');
  await fetchDeb({ repositories: good, candidate, cacheDir });
  assert.equal(good.opened, 2);
  assert.deepEqual(await readFile(path), bytes);

  const evil = repositories(Buffer.from(bytes.toString().replace('bytes', 'BYTES')));
  const other = join(work.path, 'c');
  await assert.rejects(fetchDeb({ repositories: evil, candidate, cacheDir: other }), /BLOB_DIGEST_MISMATCH|does not match|hashes to/);
  assert.deepEqual(await readdir(join(other, 'debs')), []);
});
