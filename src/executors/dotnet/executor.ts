import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { PlannedLibrary } from '../../plan/types.js';
import { isDotnetAppDeps } from '../../scan/inventory/readers/dotnet.js';
import { dotnetSdkUpdate } from '../buildkit/strategies/dotnet.js';
import { image, type LlbState } from '../buildkit/llb.js';
import type { LibraryExecutor, LibraryInstallContext, LibraryInstallResult } from '../library/types.js';
import { dotnetContainerProgram, dotnetProgramEntry } from './container-program.js';
import { DotnetError } from './errors.js';
import { downloadNupkg } from './flat-container.js';
import { openNupkg } from './nupkg.js';
import { flatContainerPath } from './nuspec.js';
import { updateDotnetApp, type DotnetPackageUpdate } from './update.js';
import { builderArchitecture } from '../buildkit/platform.js';

/**
 * .NET apps, as Copa patches them: the first application found by its
 * `*.deps.json` (outside SDK tooling, the NuGet cache and /tmp; the scanner
 * already leaves those out) has the DLLs of each planned package replaced by
 * the fixed version's, only where the app already has them, and its
 * deps.json rewritten to match.
 *
 * In-process when patchd can fetch the .nupkg itself from the NuGet source
 * and check it against the source's `.nupkg.sha512`. When the source cannot
 * be reached from here or publishes no hash, and a .NET SDK tooling image is
 * configured (buildkit.toolingImages.dotnet), the same update runs in
 * BuildKit, in that image: curl fetches, the SDK verifies a signature when no
 * hash is published, and patchd's own program does the rest.
 */
export const dotnetExecutor: LibraryExecutor = {
  ecosystem: 'nuget',

  async installInProcess(ctx, libraries): Promise<LibraryInstallResult> {
    const applied: PlannedLibrary[] = [];
    const failed: { library: PlannedLibrary; error: Error }[] = [];
    // The seeds' rules leave these alone on purpose: reported as not patched, not as failures.
    const skipped: { library: PlannedLibrary; why: string }[] = [];
    const apps = libraries.filter((l) => {
      if (isDotnetAppDeps(l.path)) return true;
      skipped.push({ library: l, why: `/${l.path} is not an application's deps.json (SDK tooling, the NuGet cache and /tmp are left alone)` });
      return false;
    });
    const byApp = Map.groupBy(apps, (l) => l.path);
    // "First found": in path order, so the same image always patches the same app.
    const [first, ...others] = [...byApp.keys()].sort();
    for (const other of others) {
      for (const library of byApp.get(other)!) {
        skipped.push({ library, why: `only the first .NET application found is patched (/${first}); /${other} is another one: split multi-application images` });
      }
    }
    if (first === undefined) return { applied, deferred: [], failed, skipped, bytesDownloaded: 0 };
    const group = byApp.get(first)!;

    const depsPath = ctx.base.realpath(first);
    const depsEntry = depsPath === undefined ? undefined : ctx.base.stat(depsPath);
    const depsBytes = depsPath && depsEntry && (depsEntry.type === 'file' || depsEntry.type === 'hardlink') ? await ctx.base.readFile(depsPath) : undefined;
    if (!depsPath || !depsBytes) {
      for (const library of group) failed.push({ library, error: new DotnetError('DEPS_JSON_INVALID', `/${first} is not a file in the image`) });
      return { applied, deferred: [], failed, skipped, bytesDownloaded: 0 };
    }

    const sdkImage = dotnetToolingImage(ctx);
    const index = ctx.indexes.nuget;
    const work = await mkdtemp(join(ctx.tmpDir, 'nuget-'));
    const handles: FileHandle[] = [];
    let bytesDownloaded = 0;
    try {
      const updates: { library: PlannedLibrary; update: DotnetPackageUpdate }[] = [];
      let deferWhy: string | undefined;
      for (const library of group) {
        try {
          const got = await downloadNupkg({ index, name: library.name, version: library.to, dispatcher: ctx.dispatcher, dir: work });
          bytesDownloaded += got.bytes;
          const handle = await open(got.file, 'r');
          handles.push(handle);
          updates.push({ library, update: { name: library.name, from: library.from, to: library.to, nupkg: await openNupkg(handle, `${library.name} ${library.to}`), sha512: got.sha512 } });
        } catch (error) {
          if (!(error instanceof DotnetError)) throw error;
          const buildkitMayFetch = error.code === 'NUGET_UNAVAILABLE' || error.code === 'NUPKG_UNVERIFIABLE';
          if (buildkitMayFetch && sdkImage && !index.credentials) deferWhy ??= `${error.message}; the .NET SDK tooling image fetches and verifies it in BuildKit`;
          else failed.push({ library, error });
        }
      }
      if (deferWhy !== undefined) {
        // One app, one deps.json: its packages all go one way, or the two rewrites would overwrite each other.
        const deferred = group.filter((l) => !failed.some((f) => f.library === l)).map((library) => ({ library, why: deferWhy! }));
        prepared.set(ctx, { depsPath, sdkImage: sdkImage! });
        ctx.logger.info({ app: depsPath, packages: deferred.map((d) => `${d.library.name} ${d.library.to}`), why: deferWhy }, '.NET packages go to BuildKit');
        return { applied, deferred, failed, skipped, bytesDownloaded };
      }
      if (updates.length === 0) return { applied, deferred: [], failed, skipped, bytesDownloaded };

      const result = await updateDotnetApp({
        depsPath, depsText: depsBytes.toString('utf8'), packages: updates.map((u) => u.update),
        app: { isFile: async (path) => { const e = ctx.base.stat(path); return e?.type === 'file' || e?.type === 'hardlink'; } },
      });
      const libraryNamed = (name: string) => updates.find((u) => u.update.name === name)!.library;
      for (const f of result.failed) failed.push({ library: libraryNamed(f.name), error: f.error });
      for (const file of result.files) await writeLike(ctx, file.path, file.data);
      if (result.depsJson) await writeLike(ctx, depsPath, result.depsJson);
      for (const a of result.applied) {
        applied.push(libraryNamed(a.name));
        ctx.logger.info({ app: depsPath, package: a.name, from: a.from, to: a.to, assets: a.folder, replaced: a.replaced }, '.NET package replaced in-process');
      }
      return { applied, deferred: [], failed, skipped, bytesDownloaded };
    } finally {
      for (const h of handles) await h.close();
      await rm(work, { recursive: true, force: true });
    }
  },

  buildkitSteps(state: LlbState, libraries: readonly PlannedLibrary[], ctx: LibraryInstallContext): LlbState {
    const job = prepared.get(ctx);
    if (!job) throw new DotnetError('DOTNET_INTERNAL', 'the .NET BuildKit step was asked for packages installInProcess did not defer');
    const tooling = image(job.sdkImage, { platform: { os: 'linux', architecture: builderArchitecture() }, name: `pull .NET SDK tooling ${job.sdkImage}` });
    return dotnetSdkUpdate(state, tooling, {
      depsPath: job.depsPath, indexUrl: ctx.indexes.nuget.url,
      packages: libraries.map((l) => ({ name: l.name, from: l.from, to: l.to, fileVersion: flatContainerPath(l.name, l.to).version })),
      program: dotnetContainerProgram(), entry: dotnetProgramEntry,
    });
  },
};

const prepared = new WeakMap<LibraryInstallContext, { depsPath: string; sdkImage: string }>();

/** buildkit.toolingImages.dotnet, when the pipeline passes it along with the other tooling images. */
function dotnetToolingImage(ctx: LibraryInstallContext): string | undefined {
  return ctx.toolingImages?.dotnet;
}

/** A file of the patch layer in place of the image's, with the old one's owner and mode (symlinks on the way resolved in the image). */
async function writeLike(ctx: LibraryInstallContext, path: string, data: Buffer): Promise<void> {
  const real = ctx.base.realpath(path) ?? path;
  const old = ctx.base.stat(real);
  await ctx.builder.addFile(real, { mode: old?.mode ?? 0o644, uid: old?.uid ?? 0, gid: old?.gid ?? 0 }, data);
}
