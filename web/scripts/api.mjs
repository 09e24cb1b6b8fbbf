// Keeps web/openapi.json and src/api/schema.d.ts in step with the backend.
//   node scripts/api.mjs write   regenerate both from `sivo openapi`
//   node scripts/api.mjs check   fail if the committed files differ from what the binary produces
// The binary is $WEB_SIVO_BIN, else ../target/debug/sivo; without it `check` only verifies that the
// committed schema.d.ts matches the committed openapi.json, and says so.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(web, '..');
const specPath = join(web, 'openapi.json');
const typesPath = join(web, 'src/api/schema.d.ts');
const mode = process.argv[2];
if (mode !== 'write' && mode !== 'check') {
  console.error('usage: node scripts/api.mjs write|check');
  process.exit(2);
}

const bin = process.env.WEB_SIVO_BIN ?? join(repo, 'target/debug/sivo');
let spec;
if (existsSync(bin)) {
  const raw = execFileSync(bin, ['openapi'], { cwd: repo, encoding: 'utf8', maxBuffer: 64 << 20 });
  spec = JSON.stringify(JSON.parse(raw), null, 2) + '\n';
} else if (mode === 'write') {
  console.error(`api: ${bin} not found; build it with \`cargo build --bin sivo\``);
  process.exit(1);
} else {
  console.log(`api: NOTICE: ${bin} not found; checking schema.d.ts against the committed openapi.json only`);
  spec = readFileSync(specPath, 'utf8');
}

const tmp = mkdtempSync(join(tmpdir(), 'sivo-api-'));
let types;
try {
  writeFileSync(join(tmp, 'openapi.json'), spec);
  const cli = join(web, 'node_modules/.bin/openapi-typescript');
  execFileSync(cli, [join(tmp, 'openapi.json'), '-o', join(tmp, 'schema.d.ts')], { stdio: 'pipe' });
  types = readFileSync(join(tmp, 'schema.d.ts'), 'utf8');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (mode === 'write') {
  writeFileSync(specPath, spec);
  writeFileSync(typesPath, types);
  console.log('api: wrote openapi.json and src/api/schema.d.ts');
  process.exit(0);
}

const drift = [];
const read = (p) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
if (read(specPath) !== spec) drift.push('web/openapi.json');
if (read(typesPath) !== types) drift.push('web/src/api/schema.d.ts');
if (drift.length) {
  console.error(`api: out of date with the backend: ${drift.join(', ')}`);
  console.error('api: run `npm run api:gen` in web/, fix any type errors, and commit the result');
  process.exit(1);
}
console.log('api: openapi.json and schema.d.ts match the backend');
