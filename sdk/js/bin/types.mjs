#!/usr/bin/env node
// types.mjs WIT_DIR OUT_DIR
//
// Generates the TypeScript declarations of the `call-handler` world (the modules a
// component imports, `wasi:*` and `switchboard:call/*`, and the `handler` it exports)
// from the repository's WIT package into `types/`, with jco.
//
// jco parses WIT inside a WASI sandbox whose filesystem starts empty (preview2-shim
// 0.26), so the WIT directory is preopened for it explicitly, read-only in spirit: jco
// only reads it.
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (process.argv.length < 4) throw new Error('usage: types.mjs WIT_DIR OUT_DIR');
const wit = resolve(process.argv[2]);
const out = resolve(process.argv[3]);

const transpile = createRequire(import.meta.url).resolve('@bytecodealliance/jco-transpile');
const shim = createRequire(transpile).resolve('@bytecodealliance/preview2-shim/filesystem');
const { _addPreopen } = await import(pathToFileURL(shim).href);
_addPreopen(wit, wit);
const { generateGuestTypes } = await import(pathToFileURL(transpile).href);

const files = await generateGuestTypes(wit, { worldName: 'call-handler', outDir: '' });
for (const [name, source] of Object.entries(files)) {
  const path = join(out, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, source);
}
console.log(`types: ${Object.keys(files).length} declaration files in ${out}`);
