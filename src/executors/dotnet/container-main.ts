import { applyInRoot } from './container-apply.js';

// The entry of the program the .NET BuildKit step runs with node inside the
// SDK tooling image (its own process: this is its main, the only place it
// touches process). Arguments: ROOT DEPS_JSON DOWNLOADS then NAME FROM TO FILE_VERSION
// for each package (FILE_VERSION, the lower-case normalized version the
// step's curl used, is not needed here: the file names are derived again).
// One JSON line on stdout says what happened; any failure exits 1, which
// fails the build (the pipeline then reports every deferred package).

const [root, depsPath, downloads, ...rest] = process.argv.slice(2);
const packages: { name: string; from: string; to: string }[] = [];
for (let i = 0; i + 3 < rest.length; i += 4) packages.push({ name: rest[i]!, from: rest[i + 1]!, to: rest[i + 2]! });

if (!root || !depsPath || !downloads || packages.length === 0 || rest.length % 4 !== 0) {
  process.stderr.write('usage: container-main ROOT DEPS_JSON DOWNLOADS (NAME FROM TO FILE_VERSION)...\n');
  process.exitCode = 2;
} else {
  applyInRoot({ root, depsPath, downloads, packages }).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      for (const f of result.failed) process.stderr.write(`patchd: ${f.name}: ${f.code}: ${f.message}\n`);
      process.exitCode = result.failed.length > 0 ? 1 : 0;
    },
    (error: Error) => {
      process.stderr.write(`patchd: ${error.stack ?? error.message}\n`);
      process.exitCode = 1;
    },
  );
}
