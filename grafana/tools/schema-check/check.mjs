// Structural check of Grafana dashboard JSON with @grafana/schema and tsc.
//   node check.mjs DASHBOARD.json...
// Run from a directory holding this file, relax.ts, tsconfig.json and node_modules (npm ci).
// Each dashboard becomes gen/<name>.ts: `export const dashboard = <json> satisfies
// Relax<Dashboard>;`. As an object literal, the JSON gets excess-property checks, so a
// misspelt or unknown key fails like a wrong type. Exit status: tsc's.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node check.mjs DASHBOARD.json...');
  process.exit(2);
}
const gen = join(here, 'gen');
rmSync(gen, { recursive: true, force: true });
mkdirSync(gen);
for (const f of files) {
  const json = JSON.stringify(JSON.parse(readFileSync(f, 'utf8')), null, 2);
  const name = basename(f, '.json').replace(/[^A-Za-z0-9_-]/g, '_');
  writeFileSync(join(gen, `${name}.ts`),
    `// generated from ${f}\nimport type { Dashboard } from '@grafana/schema';\n` +
    `import type { Relax } from '../relax.js';\n\n` +
    `export const dashboard = ${json} satisfies Relax<Dashboard>;\n`);
}
const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json'), '--pretty', 'false'], { stdio: 'inherit' });
if (r.status === 0) console.log(`schema-check: ${files.length} dashboards match @grafana/schema Dashboard`);
process.exit(r.status ?? 1);
