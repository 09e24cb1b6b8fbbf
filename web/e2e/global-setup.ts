// Starts a real `sivo serve` (embedded PostgreSQL, temp data dir, the built web app) on the port
// chosen in playwright.config.ts, seeds it through the admin CLI, and stops it afterwards.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACCOUNTS, PASSWORD, TENANT } from './accounts';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(web, '..');

async function waitReady(url: string, child: ChildProcess, deadlineMs: number) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sivo serve exited with ${child.exitCode}; see test-results/sivo.log`);
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`sivo did not become ready at ${url} within ${deadlineMs} ms; see test-results/sivo.log`);
}

export default async function globalSetup() {
  const bin = process.env.WEB_SIVO_BIN ?? join(repo, 'target/debug/sivo');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`cargo build --bin sivo\` in ${repo}`);
  // WEB_E2E_DIST: test a build made elsewhere (vite build --outDir …) without touching web/dist.
  const dist = resolve(web, process.env.WEB_E2E_DIST ?? 'dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is missing: run `npm run build` first');

  const results = resolve(web, process.env.WEB_E2E_RESULTS ?? 'test-results');
  rmSync(join(results, 'screenshots'), { recursive: true, force: true });
  mkdirSync(join(results, 'screenshots'), { recursive: true });

  const port = process.env.WEB_E2E_PORT;
  if (!port) throw new Error('WEB_E2E_PORT is not set (playwright.config.ts sets it)');
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'sivo-web-e2e-'));
  // Tests that seed what no UI can create yet (CDRs before calls exist) reach the embedded
  // PostgreSQL through its socket here; workers inherit the variable.
  process.env.WEB_E2E_DATA_DIR = dataDir;
  const env = {
    ...process.env,
    SIVO_HTTP__WEB_DIR: dist,
    SIVO_LOG__FORMAT: 'pretty',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  const log = createWriteStream(join(results, 'sivo.log'));
  const sipPort = process.env.WEB_E2E_SIP_PORT;
  if (!sipPort) throw new Error('WEB_E2E_SIP_PORT is not set (playwright.config.ts sets it)');
  const child = spawn(bin, ['serve', '--data-dir', dataDir, '--http-addr', `127.0.0.1:${port}`, '--sip-addr', `127.0.0.1:${sipPort}`], {
    cwd: repo,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });

  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      const exited = await Promise.race([
        new Promise<boolean>((r) => child.once('exit', () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), 20_000)),
      ]);
      if (!exited) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitReady(url, child, 90_000);
    const cli = (args: string[], input?: string) =>
      execFileSync(bin, [...args, '--data-dir', dataDir], { cwd: repo, env, input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    cli(['tenant', 'create', '--slug', TENANT.slug, '--name', TENANT.name]);
    for (const a of ACCOUNTS) {
      if (a.role === 'superadmin') cli(['superadmin', 'create', '--email', a.email, '--password-stdin'], `${PASSWORD}\n`);
      else cli(['user', 'create', '--tenant', TENANT.slug, '--email', a.email, '--role', a.role, '--name', a.name, '--password-stdin'], `${PASSWORD}\n`);
    }
    // The SPA is really served by sivo, with client-side routes falling back to index.html.
    const page = await fetch(`${url}/settings/users`);
    const html = await page.text();
    if (!page.ok || !html.includes('<div id="root">')) {
      throw new Error(`sivo does not serve the web app at ${url} (status ${page.status}); is SIVO_HTTP__WEB_DIR supported by this build?`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}
