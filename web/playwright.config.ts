import { execFileSync } from 'node:child_process';
import { defineConfig, devices } from '@playwright/test';

// One free loopback port for the whole run, chosen once in the runner process; workers inherit
// the environment, so they all agree on it. The global setup starts `sivo serve` there.
if (!process.env.WEB_E2E_PORT) {
  process.env.WEB_E2E_PORT = execFileSync(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"],
    { encoding: 'utf8' },
  ).trim();
}
// SIP (UDP and TCP on one port) on loopback too, so the tests can register a phone and answer a
// trunk's keepalive, and never collide with another sivo on 5060.
if (!process.env.WEB_E2E_SIP_PORT) {
  process.env.WEB_E2E_SIP_PORT = execFileSync(
    process.execPath,
    [
      '-e',
      `const net=require('net'),dgram=require('dgram');
       const tryOne=()=>{const s=net.createServer();s.listen(0,'127.0.0.1',()=>{const p=s.address().port;const u=dgram.createSocket('udp4');
         u.once('error',()=>{u.close();s.close(tryOne)});u.bind(p,'127.0.0.1',()=>{u.close();s.close(()=>process.stdout.write(String(p)))})})};tryOne();`,
    ],
    { encoding: 'utf8' },
  ).trim();
}
// Where results go (screenshots, server log, traces); another directory keeps two runs on one
// machine from overwriting each other's artifacts.
const RESULTS = process.env.WEB_E2E_RESULTS ?? 'test-results';
export const BASE_URL = `http://127.0.0.1:${process.env.WEB_E2E_PORT}`;

// Debian's chromium, never a downloaded browser. These flags keep it from stalling on the closed
// network; Playwright gives every launch a fresh temporary profile (user-data dir).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  outputDir: `${RESULTS}/artifacts`,
  globalSetup: './e2e/global-setup.ts',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  timeout: 120_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  use: {
    ...devices['Desktop Chrome'],
    baseURL: BASE_URL,
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    locale: 'en-GB',
    timezoneId: 'UTC',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
    },
  },
});
