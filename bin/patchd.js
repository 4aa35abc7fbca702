#!/usr/bin/env node
// Entry for `npx patchd`: the compiled CLI lives in dist/ (built by `npm ci` via prepare).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
