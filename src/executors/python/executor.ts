import { mkdtemp, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { PackageIndex } from '../../plan/library-index.js';
import type { PlannedLibrary } from '../../plan/types.js';
import { BuildkitError } from '../buildkit/errors.js';
import type { LlbState } from '../buildkit/llb.js';
import { pipInstall, type PipInstall } from '../buildkit/strategies/pip.js';
import type { LibraryExecutor, LibraryInstallContext, LibraryInstallResult } from '../library/types.js';
import { PythonError } from './errors.js';
import { installWheel, readOldInstall } from './install.js';
import { describePlace, imageLibc, targetOf, type PythonPlace } from './interpreter.js';
import { downloadVerified, releaseFiles, simpleIndexUrl } from './package-index.js';
import { requiresPythonVerdict } from './requires-python.js';
import { linuxPlatformTags, selectWheel, supportedTags, type InterpreterTarget, type ReleaseFile } from './tags.js';
import { openWheel } from './wheel.js';

/** What the BuildKit fallback needs to know about a deferred library: the interpreter to run pip with. */
const pipTargets = new WeakMap<PlannedLibrary, Omit<PipInstall, 'requirements'>>();

/**
 * Python libraries: the planned release's best wheel for the image's
 * interpreter, ABI, C library and architecture is installed in-process the
 * way pip installs it; a release without a fitting wheel goes to pip, run by
 * the image's own interpreter in BuildKit.
 */
export const pythonExecutor: LibraryExecutor = {
  ecosystem: 'pypi',

  async installInProcess(ctx, libraries) {
    const applied: PlannedLibrary[] = [];
    const deferred: { library: PlannedLibrary; why: string }[] = [];
    const failed: { library: PlannedLibrary; error: Error }[] = [];
    let bytesDownloaded = 0;
    const places = new Map<string, Promise<PythonPlace>>();
    let libc: Promise<InterpreterTarget['libc']> | undefined;
    const work = await mkdtemp(join(ctx.tmpDir, 'python-'));
    try {
      for (const library of libraries) {
        const started = Date.now();
        try {
          const location = library.location ?? posix.dirname(posix.dirname(library.path));
          let place = places.get(location);
          if (!place) places.set(location, (place = describePlace(ctx.base, ctx.inventory, location)));
          libc ??= imageLibc(ctx.base, ctx.inventory);
          const outcome = await installOne(ctx, library, await place, await libc, work);
          bytesDownloaded += outcome.bytes;
          if (outcome.kind === 'deferred') {
            deferred.push({ library, why: outcome.why });
            ctx.logger.info({ library: library.name, location, why: outcome.why }, 'python library deferred to pip');
          } else {
            applied.push(library);
            ctx.logger.info({ library: library.name, from: library.from, to: library.to, location, wheel: outcome.wheel, ms: Date.now() - started, phases: outcome.ms }, 'python library installed from wheel');
          }
        } catch (error) {
          failed.push({ library, error: error as Error });
        }
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return { applied, deferred, failed, bytesDownloaded } satisfies LibraryInstallResult;
  },

  buildkitSteps(state: LlbState, libraries: readonly PlannedLibrary[], ctx: LibraryInstallContext): LlbState {
    const byInterpreter = new Map<string, PipInstall & { requirements: { name: string; version: string }[] }>();
    for (const library of libraries) {
      const target = pipTargets.get(library);
      if (!target) throw new BuildkitError('BUILD_REQUEST_INVALID', `${library.name}: no interpreter known to run pip with (it was not deferred by the Python executor)`);
      const key = `${target.interpreter}\0${target.breakSystemPackages ? 1 : 0}`;
      let install = byInterpreter.get(key);
      if (!install) byInterpreter.set(key, (install = { ...target, requirements: [] }));
      install.requirements.push({ name: library.name, version: library.to });
    }
    return pipInstall(state, [...byInterpreter.values()], { url: simpleIndexUrl(ctx.indexes.pypi), ...pipCredentials(ctx.indexes.pypi) });
  },
};

type Outcome = { kind: 'installed'; wheel: string; bytes: number; ms: Record<string, number> } | { kind: 'deferred'; why: string; bytes: number };

async function installOne(ctx: LibraryInstallContext, library: PlannedLibrary, place: PythonPlace, libc: InterpreterTarget['libc'], work: string): Promise<Outcome> {
  const ms: Record<string, number> = {};
  let mark = Date.now();
  const lap = (name: string) => { const now = Date.now(); ms[name] = now - mark; mark = now; };
  const release = await releaseFiles(ctx.indexes.pypi, library.name, library.to, ctx.dispatcher);
  lap('index');
  let bytes = release.bytes;
  const python = `${place.implementation === 'pypy' ? 'PyPy' : 'Python'} ${place.version.major}.${place.version.minor}${place.version.micro !== undefined ? `.${place.version.micro}` : ''}`;
  const interpreterOf = `the image's interpreter for /${place.sitePackages}${place.interpreter ? ` (${place.interpreter})` : ''}`;

  // pip skips files whose Requires-Python excludes the interpreter; when that leaves none, the release cannot be installed.
  const fits = (f: ReleaseFile) => (f.requiresPython ? requiresPythonVerdict(place.version, f.requiresPython) : true);
  const usable = release.files.filter((f) => fits(f) === true);
  if (usable.length === 0) {
    const spec = release.files.find((f) => f.requiresPython)?.requiresPython ?? '';
    const unknown = release.files.some((f) => fits(f) === 'unknown');
    throw new PythonError('REQUIRES_PYTHON', unknown
      ? `${library.name} ${library.to} requires Python ${spec}; ${interpreterOf} is ${python}, and patchd cannot tell its micro release`
      : `${library.name} ${library.to} requires Python ${spec}, but ${interpreterOf} is ${python}`);
  }

  const target = targetOf(place, libc, ctx.platform);
  const chosen = ctx.preferBuildkit ? undefined : selectWheel(usable, supportedTags(target));
  if (!chosen) {
    const wheels = usable.filter((f) => f.filename.endsWith('.whl')).length;
    const platform = linuxPlatformTags(target)[0] ?? `linux_${target.arch}`;
    const why = ctx.preferBuildkit
      ? `${library.name} ${library.to}: --executor buildkit runs the image's own pip`
      : `no wheel of ${library.name} ${library.to} fits ${python} on ${platform}${libc.family === 'unknown' ? ' (C library not identified)' : ''} (${wheels === 0 ? 'the index has only source distributions' : `none of its ${wheels} wheels match`}): pip must build it in the image`;
    const pip = pipTargetFor(place);
    if (typeof pip === 'string') throw new PythonError(place.pip ? 'INSTALL_UNSUPPORTED' : 'PIP_MISSING', `${why}, but ${pip}`);
    // pip writes its own interpreter path into the scripts it makes: run the one the old scripts name, so they keep their shebang.
    const old = await readOldInstall(ctx.base, place, library.path);
    const named = old.scriptShebang?.executable;
    const sameInterpreter = named && named.startsWith('/') && ctx.base.realpath(named) !== undefined && ctx.base.realpath(named) === ctx.base.realpath(pip.interpreter);
    pipTargets.set(library, sameInterpreter ? { ...pip, interpreter: named } : pip);
    return { kind: 'deferred', why, bytes };
  }

  const file = join(work, chosen.file.filename.replace(/[^A-Za-z0-9._+-]/g, '_'));
  try {
    bytes += await downloadVerified(ctx.indexes.pypi, chosen.file, file, ctx.dispatcher);
    lap('download');
    const wheel = await openWheel(file, chosen.file.filename, { name: library.name, version: library.to });
    try {
      // The wheel's own metadata is authoritative for Requires-Python too.
      const spec = wheel.metadata.requiresPython;
      if (spec && requiresPythonVerdict(place.version, spec) === false) {
        throw new PythonError('REQUIRES_PYTHON', `${library.name} ${library.to} requires Python ${spec}, but ${interpreterOf} is ${python}`);
      }
      const old = await readOldInstall(ctx.base, place, library.path);
      lap('readOld');
      const result = await installWheel({ fs: ctx.base, builder: ctx.builder, place, old, wheel });
      lap('install');
      if (result.scriptsSkipped.length > 0) {
        ctx.logger.warn({ library: library.name, scripts: result.scriptsSkipped }, 'no interpreter path for script wrappers: scripts not written');
      }
    } finally {
      await wheel.close();
    }
  } finally {
    await rm(file, { force: true });
  }
  return { kind: 'installed', wheel: chosen.file.filename, bytes, ms };
}

/** How pip is run for a place: the venv's interpreter, or a system interpreter whose default scheme is this place; else why not. */
function pipTargetFor(place: PythonPlace): Omit<PipInstall, 'requirements'> | string {
  if (!place.interpreter) return `the image has no interpreter for /${place.sitePackages} to run pip with`;
  if (!place.pip) return `the image has no pip for ${place.interpreter}`;
  if (place.venv) return { interpreter: place.interpreter };
  const short = `${place.version.major}.${place.version.minor}`;
  const interpreterPrefix = posix.dirname(posix.dirname(place.interpreter)).replace(/^\/+/, '');
  // The interpreter's own prefix (python.org builds: /usr/local), or Debian's /usr/local/lib/python3.X/dist-packages for /usr/bin/python3.X.
  const own = place.prefix === interpreterPrefix && place.sitePackages === `${place.prefix === '' ? '' : `${place.prefix}/`}lib/python${short}/site-packages`;
  const debianLocal = place.prefix === 'usr/local' && interpreterPrefix === 'usr' && place.sitePackages === `usr/local/lib/python${short}/dist-packages`;
  if (!own && !debianLocal) return `pip of ${place.interpreter} does not install into /${place.sitePackages} by default, and pointing it there (--target, --prefix) would not remove the old version exactly`;
  return { interpreter: place.interpreter, ...(place.externallyManaged ? { breakSystemPackages: true } : {}) };
}

function pipCredentials(index: PackageIndex): { credentials?: { login: string; password: string } } {
  const c = index.credentials;
  if (!c) return {};
  // pip speaks Basic only: a token goes as the password, as private indexes (Artifactory, GitLab, CodeArtifact) accept it.
  return 'token' in c ? { credentials: { login: '__token__', password: c.token } } : { credentials: { login: c.username, password: c.password } };
}
