#!/usr/bin/env node
// Entry for `npx patchd`: the compiled CLI lives in dist/ (built by `npm ci` via prepare).
// The exit code is a failure until main() has settled: a run whose promise never
// settles (the event loop emptied under it) must not look like success.
import module from 'node:module';

// V8's compiled code for dist/ is kept on disk (NODE_COMPILE_CACHE, else the temp dir): later runs start faster.
module.enableCompileCache?.();
const { main } = await import('../dist/main.js');

process.exitCode = 1;
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error) => { process.stderr.write(`patchd: unexpected failure: ${error?.stack ?? error}\n`); process.exitCode = 1; },
);
