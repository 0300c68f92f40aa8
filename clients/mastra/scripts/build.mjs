// Builds dist/esm (ES modules) and dist/cjs (CommonJS) with tsc alone. The CommonJS
// build compiles a copy of src/ under a package.json of type commonjs: with NodeNext,
// tsc picks the module format from the nearest package.json, as Node does.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });

rmSync(join(root, 'dist'), { recursive: true, force: true });
run('-p', 'tsconfig.json');

const tmp = join(root, 'dist', '.cjs-src');
mkdirSync(tmp, { recursive: true });
cpSync(join(root, 'src'), join(tmp, 'src'), { recursive: true });
writeFileSync(join(tmp, 'package.json'), JSON.stringify({ type: 'commonjs' }));
writeFileSync(
  join(tmp, 'tsconfig.json'),
  JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { rootDir: 'src', outDir: '../cjs' }, include: ['src'] }),
);
run('-p', join(tmp, 'tsconfig.json'));
rmSync(tmp, { recursive: true, force: true });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }));
