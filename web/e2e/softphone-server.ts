// A `sivo serve` of the softphone tests' own: SIP over WSS with a throwaway certificate (openssl),
// media on loopback, a tenant with an agent and an API key, and helpers to call it as a carrier
// with sipp from 127.0.0.2 (inside the trunk's Allowed CIDRs). Separate from the shared server of
// global-setup.ts so the WSS and media settings and the registrations stay out of other tests' way.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(web, '..');

/** A port free for TCP (and UDP when `udp`) on `host`. */
export async function freePort(host = '127.0.0.1', udp = false): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((ok, fail) => {
      const s = createServer();
      s.once('error', fail);
      s.listen(0, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => ok(p));
      });
    });
    if (!udp) return port;
    const free = await new Promise<boolean>((ok) => {
      const u = createSocket('udp4');
      u.once('error', () => {
        u.close();
        ok(false);
      });
      u.bind(port, host, () => u.close(() => ok(true)));
    });
    if (free) return port;
  }
}

export interface PhoneServer {
  url: string;
  sipPort: number;
  wssUrl: string;
  dataDir: string;
  apiKey: string;
  tenant: string;
  /** Admin REST calls with the tenant's API key. */
  admin: <T = unknown>(method: string, path: string, body?: unknown) => Promise<T>;
  /** Creates a tenant user with the CLI (password from stdin); returns their id. */
  createUser: (email: string, role: 'agent' | 'supervisor', name: string, password: string) => Promise<string>;
  stop: () => Promise<void>;
}

async function waitReady(url: string, child: ChildProcess, log: string, deadlineMs: number) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sivo serve exited with ${child.exitCode}; see ${log}`);
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`sivo did not become ready at ${url} within ${deadlineMs} ms; see ${log}`);
}

export async function startPhoneServer(results: string): Promise<PhoneServer> {
  const bin = process.env.WEB_SIVO_BIN ?? join(repo, 'target/debug/sivo');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`cargo build --bin sivo\``);
  const dist = resolve(web, process.env.WEB_E2E_DIST ?? 'dist');
  const dataDir = mkdtempSync(join(tmpdir(), 'sivo-softphone-e2e-'));

  // A self-signed certificate for 127.0.0.1; chromium runs with --ignore-certificate-errors.
  const cert = join(dataDir, 'wss-cert.pem');
  const key = join(dataDir, 'wss-key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });

  const httpPort = await freePort();
  const sipPort = await freePort('127.0.0.1', true);
  const wssPort = await freePort();
  const wssUrl = `wss://127.0.0.1:${wssPort}`;
  // 400 RTP ports somewhere in 40000-58000, away from other tests' defaults (20000-30000).
  const rtpMin = 40_000 + 2 * Math.floor(Math.random() * 9_000);
  const url = `http://127.0.0.1:${httpPort}`;
  const env = {
    ...process.env,
    SIVO_HTTP__WEB_DIR: dist,
    SIVO_SIP__WSS_ADDR: `127.0.0.1:${wssPort}`,
    SIVO_SIP__WSS_URL: wssUrl,
    SIVO_SIP__TLS_CERT: cert,
    SIVO_SIP__TLS_KEY: key,
    SIVO_MEDIA__BIND_IP: '127.0.0.1',
    SIVO_MEDIA__RTP_PORT_MIN: String(rtpMin),
    SIVO_MEDIA__RTP_PORT_MAX: String(rtpMin + 400),
    SIVO_LOG__FORMAT: 'pretty',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  const logPath = join(results, 'sivo-softphone.log');
  const log = createWriteStream(logPath);
  const child = spawn(bin, ['serve', '--data-dir', dataDir, '--http-addr', `127.0.0.1:${httpPort}`, '--sip-addr', `127.0.0.1:${sipPort}`], {
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
    await waitReady(url, child, logPath, 90_000);
    const cli = (args: string[], input?: string) =>
      execFileSync(bin, [...args, '--data-dir', dataDir], { cwd: repo, env, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    const tenant = 'phones';
    cli(['tenant', 'create', '--slug', tenant, '--name', 'Phones Inc']);
    const keyOut = cli(['api-key', 'create', '--tenant', tenant, '--name', 'softphone-e2e']);
    const apiKey = /sivo_[A-Za-z0-9_-]+/.exec(keyOut)?.[0];
    if (!apiKey) throw new Error(`no API key in: ${keyOut}`);

    const admin = async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path} → ${res.status}: ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };
    const createUser = async (email: string, role: 'agent' | 'supervisor', name: string, password: string) => {
      cli(['user', 'create', '--tenant', tenant, '--email', email, '--role', role, '--name', name, '--password-stdin'], `${password}\n`);
      const page = await admin<{ items: { id: string; email: string }[] }>('GET', `/api/v1/users?limit=200`);
      const user = page.items.find((u) => u.email === email);
      if (!user) throw new Error(`user ${email} not listed`);
      return user.id;
    };
    return { url, sipPort, wssUrl, dataDir, apiKey, tenant, admin, createUser, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A carrier call with sipp from 127.0.0.2 to `did`: offers PCMA and telephone-event, plays the
 * voice in g711a.pcap (7 s) `plays` times back to back once answered (the queue answers at once,
 * so the first plays may go to the queue while the agent's phone rings), then hangs up. Resolves
 * with sipp's exit code and output.
 */
export function carrierCall(opts: { sipPort: number; did: string; plays: number; workDir: string; caller?: string }) {
  const caller = opts.caller ?? '+15550001111';
  const plays = Array.from({ length: opts.plays }, () =>
    [
      '  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>',
      '  <pause milliseconds="7100"/>',
    ].join('\n'),
  ).join('\n');
  const scenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="softphone e2e carrier call">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Caller" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Caller" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
${plays}
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Caller" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`;
  const path = join(opts.workDir, `carrier-${Date.now()}.xml`);
  writeFileSync(path, scenario);
  return (async () => {
    const sipPort = await freePort('127.0.0.2', true);
    const mediaPort = await freePort('127.0.0.2', true);
    const child = spawn('sipp', [
      `127.0.0.1:${opts.sipPort}`, '-sf', path, '-s', opts.did, '-i', '127.0.0.2', '-p', String(sipPort),
      '-mp', String(mediaPort), '-m', '1', '-timeout', '120s', '-timeout_error', '-nostdin',
    ], { cwd: opts.workDir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const done = new Promise<{ code: number | null; output: string }>((ok) => child.once('exit', (code) => ok({ code, output })));
    return { done, kill: () => child.kill('SIGKILL') };
  })();
}

/**
 * A carrier that takes one outbound call with sipp on 127.0.0.2:`port`: the call fails unless the
 * Request-URI is `number` and From and P-Asserted-Identity present `callerId`. It rings, answers
 * with PCMA, echoes the audio it receives (`-rtp_echo`) and waits for the BYE. Resolves with
 * sipp's exit code and output.
 */
export function carrierAnswer(opts: { port: number; workDir: string; number: string; callerId: string }) {
  const re = (s: string) => s.replace(/[+.*?()[\]{}|^$\\]/g, (c) => `\\${c}`);
  const scenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="softphone e2e carrier answers">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:${re(opts.number)}@" search_in="msg" check_it="true" assign_to="1"/>
      <ereg regexp="sip:${re(opts.callerId)}@" search_in="hdr" header="From:" check_it="true" assign_to="2"/>
      <ereg regexp="sip:${re(opts.callerId)}@" search_in="hdr" header="P-Asserted-Identity:" check_it="true" assign_to="3"/>
    </action>
  </recv>
  <Reference variables="1,2,3"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 2 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
`;
  const path = join(opts.workDir, `carrier-answer-${Date.now()}.xml`);
  writeFileSync(path, scenario);
  return (async () => {
    const mediaPort = await freePort('127.0.0.2', true);
    const child = spawn('sipp', [
      '-sf', path, '-i', '127.0.0.2', '-p', String(opts.port), '-mp', String(mediaPort), '-rtp_echo',
      '-m', '1', '-timeout', '120s', '-timeout_error', '-nostdin',
    ], { cwd: opts.workDir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const done = new Promise<{ code: number | null; output: string }>((ok) => child.once('exit', (code) => ok({ code, output })));
    return { done, kill: () => child.kill('SIGKILL') };
  })();
}
