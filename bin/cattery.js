#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled output so that `npm run build` is the only build step.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`cattery: ${err?.message ?? err}\n`); process.exitCode = 1; },
);
