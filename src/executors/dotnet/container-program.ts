import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DotnetError } from './errors.js';

/**
 * The program the BuildKit step runs with node in the .NET SDK tooling
 * image: patchd's own compiled modules, from `container-main.js` down through
 * its imports (the same `updateDotnetApp`, deps.json rewrite and DLL choice
 * the in-process path runs), flattened into one directory as `.mjs` files
 * with their relative imports rewritten. Only node's built-in modules may be
 * imported from there. Run from sources (tests under tsx), the compiled copy
 * is the build's, `dist/`.
 */
const programPrefix = 'patchd-dotnet--';
/** The entry's file name among the program's files. */
export const dotnetProgramEntry = `${programPrefix}executors.dotnet.container-main.mjs`;

let cached: ReadonlyMap<string, Buffer> | undefined;

export function dotnetContainerProgram(): ReadonlyMap<string, Buffer> {
  cached ??= collect();
  return cached;
}

function collect(): ReadonlyMap<string, Buffer> {
  const here = fileURLToPath(import.meta.url);
  const compiledDir = here.endsWith('.js') ? dirname(here) : join(dirname(here), '../../../dist/executors/dotnet');
  const distRoot = normalize(join(compiledDir, '../..'));
  const entry = join(compiledDir, 'container-main.js');
  if (!existsSync(entry)) throw new DotnetError('DOTNET_INTERNAL', `${entry} is missing: build patchd (npm run build) so the BuildKit step has its program`);
  const flatName = (file: string) => `${programPrefix}${relative(distRoot, file).replace(/\.js$/, '').split('/').join('.')}.mjs`;
  const out = new Map<string, Buffer>();
  const pending = [entry];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    // Static imports and re-exports at the start of a line, as tsc writes them.
    const rewritten = source.replace(/^(\s*import\s*|\s*(?:import|export)\b[^;'"]*?\bfrom\s*)(['"])([^'"]+)\2/gm, (all, head: string, quote: string, specifier: string) => {
      if (specifier.startsWith('node:')) return all;
      if (!specifier.startsWith('.')) throw new DotnetError('DOTNET_INTERNAL', `${relative(distRoot, file)} imports ${specifier}: the container program may use node's built-ins only`);
      const target = normalize(join(dirname(file), specifier));
      pending.push(target);
      return `${head}${quote}./${flatName(target)}${quote}`;
    });
    // Source maps point at files that are not there.
    out.set(flatName(file), Buffer.from(rewritten.replace(/^\/\/# sourceMappingURL=.*$/m, ''), 'utf8'));
  }
  return out;
}
