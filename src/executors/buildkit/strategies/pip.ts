import { BuildkitError } from '../errors.js';
import { scratchFile, type LlbState, type RunSpec } from '../llb.js';

/** One interpreter's pip run: the image's own Python for the place being patched. */
export interface PipInstall {
  /** Absolute path of the interpreter inside the image (`/opt/app/venv/bin/python`, `/usr/local/bin/python3.12`). */
  readonly interpreter: string;
  readonly requirements: readonly { readonly name: string; readonly version: string }[];
  /** PEP 668: the interpreter's stdlib says it is externally managed, and the place is not the distribution's. */
  readonly breakSystemPackages?: boolean;
}

export interface PipIndex {
  /** A PEP 503 simple index URL, without credentials. */
  readonly url: string;
  /** Basic credentials for it, handed to pip through a read-only netrc mount (never in arguments or environment). */
  readonly credentials?: { readonly login: string; readonly password: string };
}

// Where the netrc is mounted: inside the tmpfs on /tmp, so no mount point lands in the image.
const authDir = '/tmp/patchd-pip';

/**
 * pip installs of exact versions, one run per interpreter, on the image:
 * no dependencies (the plan pins one release; the image's others stay), no
 * bytecode (the image gets none it did not have), no cache, no version
 * check; pip's own bytecode is not written either, and /tmp is a tmpfs, so
 * the diff is the install alone.
 */
export function pipInstall(base: LlbState, installs: readonly PipInstall[], index: PipIndex): LlbState {
  checkUrl(index.url);
  const mounts: NonNullable<RunSpec['mounts']>[number][] = [{ kind: 'tmpfs', dest: '/tmp' }];
  const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C.UTF-8', 'HOME=/tmp', 'PYTHONDONTWRITEBYTECODE=1', 'PIP_NO_INPUT=1'];
  if (index.credentials) {
    const host = new URL(index.url).hostname;
    const { login, password } = index.credentials;
    // netrc has no quoting: a token with whitespace could not be written faithfully.
    if (/\s/.test(login) || /\s/.test(password) || login === '' || password === '') throw new BuildkitError('BUILD_REQUEST_INVALID', 'index credentials with whitespace cannot be handed to pip');
    mounts.push({ kind: 'bind', dest: authDir, state: scratchFile('/netrc', `machine ${host} login ${login} password ${password}\n`, 'pip index credentials'), readonly: true });
    env.push(`NETRC=${authDir}/netrc`);
  }
  let state = base;
  for (const install of installs) {
    if (!/^\/[A-Za-z0-9._+/-]+$/.test(install.interpreter) || install.interpreter.split('/').includes('..')) {
      throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing interpreter path ${JSON.stringify(install.interpreter)}`);
    }
    if (install.requirements.length === 0) continue;
    const pins = install.requirements.map(({ name, version }) => {
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name) || !/^[A-Za-z0-9](?:[A-Za-z0-9.+!_-]*[A-Za-z0-9])?$/.test(version)) {
        throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(`${name}==${version}`)} to pip`);
      }
      return `${name}==${version}`;
    });
    state = state.run({
      args: [
        install.interpreter, '-m', 'pip', 'install', '--no-deps', '--no-compile', '--no-cache-dir', '--disable-pip-version-check',
        '--no-input', '--index-url', index.url, ...(install.breakSystemPackages ? ['--break-system-packages'] : []), ...pins,
      ],
      env, mounts, name: `pip install ${pins.join(' ')} (${install.interpreter})`,
    });
  }
  return state;
}

function checkUrl(url: string): void {
  let parsed: URL;
  try { parsed = new URL(url); } catch { throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing index URL ${JSON.stringify(url)}`); }
  if (!/^https?:$/.test(parsed.protocol) || parsed.username || parsed.password || !/^[A-Za-z0-9._~:/?#[\]@!$&'()*+;=%-]+$/.test(url)) {
    throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing index URL ${JSON.stringify(url)} (http(s), no credentials in it)`);
  }
}
