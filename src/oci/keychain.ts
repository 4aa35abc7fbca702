import { readFile } from 'node:fs/promises';

export interface Credentials {
  readonly username?: string;
  readonly password?: string;
  readonly identityToken?: string;
  readonly registryToken?: string;
}

/** Where the client gets credentials: it never reads files or the environment itself. */
export interface Keychain {
  resolve(registry: string): Promise<Credentials | undefined>;
}

/** docker's config.json `auths` (base64 `auth`, or username/password, identitytoken, registrytoken). */
export function dockerConfigKeychain(configPath: string): Keychain {
  let loaded: Promise<Record<string, Credentials>> | undefined;
  const load = async () => {
    let text: string;
    try {
      text = await readFile(configPath, 'utf8');
    } catch {
      return {}; // no docker config: anonymous
    }
    const json = JSON.parse(text) as { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }> };
    const out: Record<string, Credentials> = {};
    for (const [key, entry] of Object.entries(json.auths ?? {})) {
      let username = entry.username;
      let password = entry.password;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) { username = decoded.slice(0, colon); password = decoded.slice(colon + 1); }
      }
      out[normaliseHost(key)] = {
        ...(username ? { username } : {}), ...(password ? { password } : {}),
        ...(entry.identitytoken ? { identityToken: entry.identitytoken } : {}),
        ...(entry.registrytoken ? { registryToken: entry.registrytoken } : {}),
      };
    }
    return out;
  };
  return {
    async resolve(registry) {
      const entries = await (loaded ??= load());
      return entries[normaliseHost(registry)];
    },
  };
}

export function staticKeychain(entries: Readonly<Record<string, Credentials>>): Keychain {
  const normalised = Object.fromEntries(Object.entries(entries).map(([k, v]) => [normaliseHost(k), v]));
  return { resolve: async (registry) => normalised[normaliseHost(registry)] };
}

export function multiKeychain(...chains: Keychain[]): Keychain {
  return {
    async resolve(registry) {
      for (const chain of chains) {
        const found = await chain.resolve(registry);
        if (found) return found;
      }
      return undefined;
    },
  };
}

/** 'https://index.docker.io/v1/', 'registry-1.docker.io' and 'docker.io' are one registry. */
function normaliseHost(key: string): string {
  const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '').toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}
