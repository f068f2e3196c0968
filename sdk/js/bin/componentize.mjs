#!/usr/bin/env node
// switchboard-componentize ENTRY.ts -o OUT.wasm [--wit DIR] [--no-check]
//
// Builds a Switchboard component from a TypeScript (or JavaScript) entry module that
// exports `handler`: type-checks it against the world's declarations (tsc), bundles it and
// the SDK into one ES module (esbuild; `wasi:*` and `switchboard:*` imports stay imports),
// and componentizes that with componentize-js against the `call-handler` world. Nothing is
// downloaded: componentize-js's AOT mode, which fetches a compiler, stays off.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';

const sdk = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** The nearest `wit/` package above `start` (the repository's, or a project's own copy). */
function findWit(start) {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'wit/world.wit'))) return join(dir, 'wit');
    if (dirname(dir) === dir) throw new Error(`no wit/world.wit above ${start}: pass --wit DIR`);
  }
}

function parse(argv) {
  const options = { check: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-o' || arg === '--out') options.out = argv[++i];
    else if (arg === '--wit') options.wit = argv[++i];
    else if (arg === '--no-check') options.check = false;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else options.entry = arg;
  }
  if (!options.entry || !options.out) throw new Error('usage: switchboard-componentize ENTRY.ts -o OUT.wasm [--wit DIR] [--no-check]');
  return { ...options, entry: resolve(options.entry), out: resolve(options.out), wit: options.wit ? resolve(options.wit) : findWit(sdk) };
}

async function main() {
  const options = parse(process.argv.slice(2));
  if (options.check) {
    // The declarations follow the WIT the component is built against; they are made for
    // this build alone, so builds running at once never see each other's half-written
    // ones. The check uses the SDK's compiler options.
    const scratch = mkdtempSync(join(tmpdir(), 'switchboard-tsc-'));
    try {
      execFileSync(process.execPath, [join(sdk, 'bin/types.mjs'), options.wit, join(scratch, 'types')], { stdio: ['ignore', 'ignore', 'inherit'] });
      const config = join(scratch, 'tsconfig.json');
      writeFileSync(config, JSON.stringify({ extends: join(sdk, 'tsconfig.base.json'), files: [options.entry], include: [join(scratch, 'types/**/*.d.ts')] }));
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '--noEmit', '-p', config], { stdio: 'inherit' });
    } catch {
      throw new Error(`type errors in ${options.entry}`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  const scratch = mkdtempSync(join(tmpdir(), 'switchboard-bundle-'));
  try {
    const bundle = join(scratch, 'component.js');
    await build({
      entryPoints: [options.entry],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile: bundle,
      external: ['wasi:*', 'switchboard:*'],
      alias: { '@switchboard/guest': join(sdk, 'src/index.ts') },
      logLevel: 'warning',
    });
    const { component } = await componentize({ sourcePath: bundle, witPath: options.wit, worldName: 'call-handler' });
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, component);
    console.error(`componentize: ${options.out} (${(component.length / 1048576).toFixed(1)} MiB)`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`switchboard-componentize: ${error.message ?? error}`);
  process.exit(1);
});
