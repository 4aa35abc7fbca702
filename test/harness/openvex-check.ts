import { createHash } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run } from './tools.js';

// OpenVEX's reference implementation (github.com/openvex/go-vex, pinned in
// test/tools/openvex-check/go.mod and go.sum, from the Go module proxy) as a
// small checker binary, built once and cached by the hash of its sources.

const source = new URL('../tools/openvex-check', import.meta.url).pathname;

export interface OpenVexCheck {
  readonly context: string;
  /** The context is the one go-vex parses as its current version (v0.2.0). */
  readonly latest: boolean;
  readonly id: string;
  readonly author: string;
  readonly version: number;
  readonly timestamp: string;
  readonly statements: readonly {
    readonly vulnerability: string;
    readonly aliases: readonly string[];
    readonly status: string;
    /** go-vex's Statement.Validate error, when it rejects the statement. */
    readonly invalid?: string;
    readonly products: readonly { readonly id: string; readonly subcomponents: readonly string[]; readonly matches: boolean }[];
  }[];
}

let built: Promise<string> | undefined;

async function binary(): Promise<string> {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(await readFile(join(source, f)));
  const dir = join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'patchd', 'bin');
  const path = join(dir, `openvex-check-${hash.digest('hex').slice(0, 12)}`);
  try { await access(path); return path; } catch { /* build it */ }
  await mkdir(dir, { recursive: true });
  await run('go', ['build', '-mod=readonly', '-o', path, '.'], { cwd: source });
  return path;
}

/** What go-vex reads in the OpenVEX file at `path`. */
export async function checkOpenVex(path: string): Promise<OpenVexCheck> {
  built ??= binary();
  const { stdout } = await run(await built, [path]);
  return JSON.parse(stdout) as OpenVexCheck;
}
