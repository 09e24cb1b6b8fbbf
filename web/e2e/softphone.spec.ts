// The agent softphone in a real browser against a real `sivo serve` (its own, with SIP over WSS and
// a throwaway certificate): an agent logs in and lands on Softphone, JsSIP registers over WSS with
// the credentials the session fetched and the top-right icon turns green; status changes go
// through the REST API and come back over the realtime socket; sipp, as a carrier on 127.0.0.2,
// calls a DID routed to the agent's queue and the browser rings with the caller's number and the
// queue; the agent declines, or answers and talks (audio checked both ways: what the browser
// receives through getStats, what reached the caller side through the CDR and the recording).
import { expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectAccessible, shot, submitPassword } from './helpers';
import { carrierAnswer, carrierCall, freePort, startPhoneServer, type PhoneServer } from './softphone-server';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = resolve(web, process.env.WEB_E2E_RESULTS ?? 'test-results');
const PASSWORD = 'correct-horse-battery';
const DID = '+4930123456';
const CALLER = '+15550001111';
const AGENT = { email: 'pia@phones.example', name: 'Pia Phone' };
const MUTE_AGENT = { email: 'mo@phones.example', name: 'Mo Nomic' };
/** Watches Dashboard → Agents while the softphone registers. */
const SUPERVISOR = { email: 'sue@phones.example', name: 'Sue Pervisor' };
/** Takes transferred calls; in no queue, so the queue only ever rings AGENT. */
const TRANSFER_AGENT = { email: 'tom@phones.example', name: 'Tom Transfer' };

// Debian's chromium with a fake microphone (a beeping tone) that needs no permission prompt, the
// test certificate of the WSS listener accepted, and ICE allowed on loopback (sivo's media is
// bound to 127.0.0.1 in this test).
test.use({
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--ignore-certificate-errors',
      '--allow-loopback-in-peer-connection',
      '--autoplay-policy=no-user-gesture-required',
    ],
  },
});
test.describe.configure({ mode: 'serial' });

let server: PhoneServer;
let agentId = '';
let queueId = '';
let trunkId = '';
let context: BrowserContext;
let page: Page;

interface AgentJson {
  status: string;
  pause_reason: string | null;
  registration: { state: string; transport: string | null; user_agent: string | null };
}

/**
 * Keeps the RTCPeerConnections the page creates, for getStats from the test. With
 * `window.__opusOnly` set, offers list only Opus and telephone-events (standard
 * setCodecPreferences, as a browser without G.711 would offer).
 */
const CAPTURE_PCS = () => {
  const w = window as unknown as {
    __pcs: RTCPeerConnection[];
    __opusOnly?: boolean;
    RTCPeerConnection: typeof RTCPeerConnection;
  };
  w.__pcs = [];
  const Original = w.RTCPeerConnection;
  w.RTCPeerConnection = class extends Original {
    constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
      super(...args);
      w.__pcs.push(this);
    }
  };
  const createOffer = Original.prototype.createOffer as (this: RTCPeerConnection, ...args: unknown[]) => Promise<RTCSessionDescriptionInit>;
  Original.prototype.createOffer = function (this: RTCPeerConnection, ...args: unknown[]) {
    if (w.__opusOnly) {
      const codecs = (RTCRtpReceiver.getCapabilities('audio')?.codecs ?? []).filter((c) => /opus|telephone-event/i.test(c.mimeType));
      for (const t of this.getTransceivers()) {
        if (t.receiver.track.kind === 'audio') t.setCodecPreferences(codecs);
      }
    }
    return createOffer.apply(this, args);
  } as typeof Original.prototype.createOffer;
};

async function newAgentContext(browser: Browser, init?: () => void): Promise<{ context: BrowserContext; page: Page }> {
  // With an init script the test plays the browser's microphone itself: no permission granted.
  const ctx = await browser.newContext({ baseURL: server.url, permissions: init ? [] : ['microphone'] });
  await ctx.addInitScript(CAPTURE_PCS);
  if (init) await ctx.addInitScript(init);
  const p = await ctx.newPage();
  p.on('console', (m) => {
    if (m.type() === 'warning' || m.type() === 'error') console.log(`[browser ${m.type()}] ${m.text()}`);
  });
  return { context: ctx, page: p };
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(180_000);
  mkdirSync(join(RESULTS, 'screenshots'), { recursive: true });
  server = await startPhoneServer(RESULTS);
  agentId = await server.createUser(AGENT.email, 'agent', AGENT.name, PASSWORD);
  await server.createUser(SUPERVISOR.email, 'supervisor', SUPERVISOR.name, PASSWORD);
  // The carrier's trunk admits INVITEs from 127.0.0.2 only; the DID rings the Support queue,
  // which records its calls.
  const trunk = await server.admin<{ id: string }>('POST', '/api/v1/trunks', {
    name: 'Carrier',
    host: '127.0.0.2',
    port: 5060,
    transport: 'udp',
    allowed_cidrs: ['127.0.0.2/32'],
    keepalive: false,
  });
  trunkId = trunk.id;
  const queue = await server.admin<{ id: string }>('POST', '/api/v1/queues', {
    name: 'Support',
    ring_timeout_secs: 30,
    max_wait_secs: 120,
    record_calls: true,
  });
  queueId = queue.id;
  await server.admin('POST', `/api/v1/queues/${queueId}/members`, { user_id: agentId });
  await server.admin('POST', '/api/v1/dids', { number: DID, trunk_id: trunk.id, destination_type: 'queue', destination_id: queueId });

  ({ context, page } = await newAgentContext(browser));
});

test.afterAll(async () => {
  await context?.close();
  await server?.stop();
});

const registration = (p: Page) => p.getByTestId('sip-registration');
const callPanel = (p: Page) => p.getByTestId('call-panel');
const myStatus = (p: Page) => p.getByTestId('my-status');

test('the agent lands on Softphone, registers over WSS (green top-right icon) and goes Available; a supervisor sees it live', async ({ browser }) => {
  // A supervisor has Dashboard → Agents open in another browser before the phone registers. The
  // page never polls: the registration reaches it as a change hint over the realtime socket.
  const watcher = await browser.newContext({ baseURL: server.url });
  const board = await watcher.newPage();
  await board.goto('/login');
  await submitPassword(board, SUPERVISOR.email, PASSWORD);
  await expect(board).not.toHaveURL(/\/login$/);
  await board.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents', exact: true }).click();
  await expect(board).toHaveURL(/\/dashboard\/agents$/);
  const card = board.getByRole('listitem').filter({ hasText: AGENT.name });
  await expect(card.getByTestId('registration-indicator')).toHaveAttribute('data-state', 'red');
  await expect(card.getByTestId('registration-indicator')).toContainText('Not registered');
  await expect(board.locator('.sidebar [data-testid="live-indicator"]')).toHaveAttribute('data-status', 'connected');
  await board.evaluate(() => {
    (window as unknown as { __notReloaded: boolean }).__notReloaded = true;
  });

  await page.goto('/login');
  await submitPassword(page, AGENT.email, PASSWORD);
  await expect(page).toHaveURL(/\/softphone$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Softphone' })).toBeVisible();
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Softphone' })).toHaveClass(/active/);

  // Credentials were fetched by the session: nothing to type.
  await expect(registration(page)).toHaveAttribute('data-state', 'green', { timeout: 30_000 });
  await expect(registration(page)).toHaveText('SIP registered');
  await expect(page.getByTestId('my-extension')).toHaveText(/^\d+$/);
  await expect(page.getByTestId('mic-state')).toHaveText('Allowed');
  await expect(page.getByText(server.wssUrl)).toBeVisible();

  // The registrar agrees: green, over WSS, with JsSIP's user agent.
  const agent = await server.admin<AgentJson>('GET', `/api/v1/agents/${agentId}`);
  expect(agent.registration.state).toBe('green');
  expect(agent.registration.transport?.toLowerCase()).toBe('wss');
  expect(agent.registration.user_agent).toContain('SIVO Softphone (JsSIP');

  await page.getByRole('group', { name: 'Set my status' }).getByRole('button', { name: /^Available/ }).click();
  await expect(myStatus(page)).toContainText('Available');
  await expect(callPanel(page)).toContainText('Waiting for calls');
  expect((await server.admin<AgentJson>('GET', `/api/v1/agents/${agentId}`)).status).toBe('available');
  await shot(page, 'softphone-registered');
  await expectAccessible(page);

  // The supervisor's board followed both without a reload: green within a few seconds of the
  // registration (no 10 s polling left to hide behind), and Available from the status event.
  await expect(card.getByTestId('registration-indicator')).toHaveAttribute('data-state', 'green', { timeout: 5_000 });
  await expect(card.getByTestId('registration-indicator')).toContainText('Registered');
  await expect(card).toContainText('Available', { timeout: 5_000 });
  expect(await board.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded)).toBe(true);
  await watcher.close();
});

test('status changes made elsewhere arrive over the realtime socket; a break needs a reason', async () => {
  // A supervisor (here the admin API key) puts the agent on a break: the page follows, no reload.
  await server.admin('PUT', `/api/v1/agents/${agentId}/status`, { status: 'on_break', reason: 'Coaching' });
  await expect(myStatus(page)).toContainText('On break');
  await expect(myStatus(page)).toContainText('Coaching');
  await expect(page.getByTestId('status-card')).toHaveAttribute('data-status', 'on_break');

  // The agent: On break without a reason is refused in the form, then Lunch.
  const options = page.getByRole('group', { name: 'Set my status' });
  await options.getByRole('button', { name: /^Logged out/ }).click();
  await expect(myStatus(page)).toContainText('Logged out');
  await options.getByRole('button', { name: /^On break/ }).click();
  const reason = page.getByLabel('Break reason');
  await expect(reason).toBeFocused();
  await reason.fill('');
  await page.getByRole('button', { name: 'Start break' }).click();
  await expect(page.getByText('Say why, e.g. Lunch: supervisors see it.')).toBeVisible();
  await page.getByRole('group', { name: 'Common reasons' }).getByRole('button', { name: 'Lunch' }).click();
  await page.getByRole('button', { name: 'Start break' }).click();
  await expect(myStatus(page)).toContainText('Lunch');
  const agent = await server.admin<AgentJson>('GET', `/api/v1/agents/${agentId}`);
  expect([agent.status, agent.pause_reason]).toEqual(['on_break', 'Lunch']);
  await shot(page, 'softphone-on-break');

  await options.getByRole('button', { name: /^Available/ }).click();
  await expect(myStatus(page)).toContainText('Available');
});

test('a queued call rings with the caller number and queue; declining passes it on, the caller gives up', async () => {
  test.setTimeout(90_000);
  // The caller waits ~21 s: long enough for the checks below (the accessibility scan alone takes
  // 4-10 s on a busy 2-core machine) to run while the call still rings.
  const call = await carrierCall({ sipPort: server.sipPort, did: DID, plays: 3, workDir: server.dataDir, caller: CALLER });
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
  await expect(page.getByTestId('caller-number')).toHaveText(CALLER);
  await expect(page.getByTestId('caller-queue')).toHaveText('Support');
  await expect(callPanel(page)).toHaveAttribute('data-call-id', /^[0-9a-f-]{36}$/);
  const callId = (await callPanel(page).getAttribute('data-call-id')) ?? '';
  await expect(page.getByRole('button', { name: 'Answer' })).toBeFocused();
  await shot(page, 'softphone-ringing');
  await expectAccessible(page);

  // Narrow screen (a phone): everything still fits.
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(page.getByRole('button', { name: 'Decline' })).toBeInViewport();
  await expect(registration(page)).toBeInViewport();
  await shot(page, 'softphone-ringing-narrow', { fullPage: false });
  await page.setViewportSize({ width: 1280, height: 800 });

  // On another page the call still rings: a banner offers Answer, Decline and the softphone.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents', exact: true }).click();
  await expect(page).toHaveURL(/\/dashboard\/agents$/);
  const banner = page.getByRole('region', { name: 'Softphone call' });
  await expect(banner).toContainText(`Incoming call ${CALLER}`);
  await expect(banner).toContainText('Support');
  await shot(page, 'softphone-banner-elsewhere');
  await banner.getByRole('link', { name: 'Open softphone' }).click();
  await expect(page).toHaveURL(/\/softphone$/);
  await expect(banner).toHaveCount(0);
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing');

  await page.getByRole('button', { name: 'Decline' }).click();
  // The queue offers the call again (nobody else is available) until the caller hangs up.
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'ended', { timeout: 30_000 });
  await expect(async () => {
    const { code, output } = await Promise.race([call.done, new Promise<never>((_, f) => setTimeout(() => f(new Error('sipp still running')), 1_000))]);
    expect(code, output).toBe(0);
  }).toPass({ timeout: 40_000 });
  await expect(page.getByTestId('call-end-reason')).toHaveText('The caller hung up before you answered.', { timeout: 10_000 });

  const cdr = await cdrWhenEnded(callId);
  const legs = cdr.legs as { leg: string; outcome: string }[];
  expect(legs.some((l) => l.leg === 'agent' && l.outcome === 'declined'), JSON.stringify(legs)).toBe(true);
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'idle');
});

test('the agent answers a queued call: audio both ways, keypad, hold and a failed transfer that keeps the call', async () => {
  test.setTimeout(150_000);
  const call = await carrierCall({ sipPort: server.sipPort, did: DID, plays: 7, workDir: server.dataDir, caller: CALLER });
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
  const callId = (await callPanel(page).getAttribute('data-call-id')) ?? '';
  await page.getByRole('button', { name: 'Answer' }).click();
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });
  await expect(page.getByRole('heading', { name: 'Connected' })).toBeVisible();

  // The caller's voice (g711a.pcap) reaches the browser: packets and audio energy.
  await expect
    .poll(async () => (await rtpStats(page)).inboundEnergy, { timeout: 20_000, message: 'no audio energy from the caller' })
    .toBeGreaterThan(0.001);
  await expect.poll(async () => (await rtpStats(page)).inboundPackets, { timeout: 10_000 }).toBeGreaterThan(50);
  const first = await rtpStats(page);
  expect(first.codec).toMatch(/PCM[AU]/i);
  await expect(page.getByTestId('call-timer')).not.toHaveText('0:00');
  await shot(page, 'softphone-in-call');

  // Keypad: RFC 4733 events to the caller side.
  await page.getByRole('button', { name: 'Keypad' }).click();
  await page.getByRole('button', { name: 'Key 1' }).click();
  await page.keyboard.press('2');
  await expect(page.getByTestId('dtmf-sent')).toHaveText('12');
  await shot(page, 'softphone-keypad');
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(page.getByRole('button', { name: 'Hang up' })).toBeVisible();
  await shot(page, 'softphone-in-call-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Hold (re-INVITE sendonly; the caller hears hold music), then resume.
  await page.getByRole('button', { name: 'Hold' }).click();
  await expect(callPanel(page)).toHaveAttribute('data-hold', 'on', { timeout: 10_000 });
  await expect(page.getByRole('heading', { name: 'On hold' })).toBeVisible();
  await shot(page, 'softphone-on-hold');
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(callPanel(page)).toHaveAttribute('data-hold', 'off', { timeout: 10_000 });

  // Blind transfer to an extension nobody has: the reason shows and the call stays.
  await page.getByRole('button', { name: 'Transfer' }).click();
  await page.getByLabel('Extension or number').fill('1999');
  await page.getByRole('form', { name: 'Blind transfer' }).getByRole('button', { name: 'Transfer' }).click();
  await expect(page.getByTestId('transfer-status')).toContainText('Transfer to 1999 failed', { timeout: 30_000 });
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'active');
  await shot(page, 'softphone-transfer-failed');

  // The browser keeps sending its microphone (the fake device's beeps).
  const later = await rtpStats(page);
  expect(later.outboundPackets).toBeGreaterThan(100);
  expect(later.inboundPackets).toBeGreaterThan(first.inboundPackets);

  // The caller hangs up after its last play.
  const { code, output } = await call.done;
  expect(code, output).toBe(0);
  await expect(page.getByTestId('call-end-reason')).toHaveText('The caller hung up.', { timeout: 15_000 });
  await shot(page, 'softphone-call-ended');

  const cdr = await cdrWhenEnded(callId);
  expect(cdr.agent_id).toBe(agentId);
  expect(cdr.queue_id).toBe(queueId);
  const legs = cdr.legs as { leg: string; outcome: string; codec: string; rtp: Record<string, number | string> }[];
  const caller = legs.find((l) => l.leg === 'caller');
  const agentLeg = legs.find((l) => l.leg === 'agent' && l.outcome === 'completed');
  expect(caller && agentLeg, JSON.stringify(legs)).toBeTruthy();
  // What the browser sent reached the B2BUA, and the caller side was sent audio.
  expect(Number(agentLeg!.rtp.packets_received)).toBeGreaterThan(100);
  expect(Number(agentLeg!.rtp.packets_sent)).toBeGreaterThan(50);
  expect(Number(caller!.rtp.packets_sent)).toBeGreaterThan(100);
  expect(String(agentLeg!.rtp.dtmf_received ?? '')).toContain('1');
  // The recording: caller on the left, agent (the browser's beeps) on the right, both non-silent.
  const recording = cdr.recording as { path?: string } | null;
  expect(recording?.path, JSON.stringify(cdr)).toBeTruthy();
  const [left, right] = channelRms(readFileSync(recording!.path!));
  expect(left, 'caller channel silent').toBeGreaterThan(100);
  expect(right, 'agent channel silent').toBeGreaterThan(100);
});

test('a blind transfer hands the caller to another agent’s softphone', async ({ browser }) => {
  test.setTimeout(150_000);
  await server.createUser(TRANSFER_AGENT.email, 'agent', TRANSFER_AGENT.name, PASSWORD);
  const tom = await newAgentContext(browser);
  try {
    const t = tom.page;
    await t.goto('/login');
    await submitPassword(t, TRANSFER_AGENT.email, PASSWORD);
    await expect(registration(t)).toHaveAttribute('data-state', 'green', { timeout: 30_000 });
    await t.getByRole('group', { name: 'Set my status' }).getByRole('button', { name: /^Available/ }).click();
    await expect(myStatus(t)).toContainText('Available');
    const extension = (await t.getByTestId('my-extension').innerText()).trim();

    const call = await carrierCall({ sipPort: server.sipPort, did: DID, plays: 5, workDir: server.dataDir, caller: CALLER });
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
    const callId = (await callPanel(page).getAttribute('data-call-id')) ?? '';
    await page.getByRole('button', { name: 'Answer' }).click();
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });

    await page.getByRole('button', { name: 'Transfer' }).click();
    await page.getByLabel('Extension or number').fill(extension);
    await page.getByRole('form', { name: 'Blind transfer' }).getByRole('button', { name: 'Transfer' }).click();
    await expect(page.getByTestId('call-end-reason')).toHaveText(`Transferred to ${extension}.`, { timeout: 20_000 });

    // Tom's phone rings with the same caller, answers, and hears them.
    await expect(callPanel(t)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
    await expect(t.getByTestId('caller-number')).toHaveText(CALLER);
    await expect(callPanel(t)).toHaveAttribute('data-call-id', callId);
    await t.getByRole('button', { name: 'Answer' }).click();
    await expect(callPanel(t)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });
    await expect
      .poll(async () => (await rtpStats(t)).inboundEnergy, { timeout: 20_000, message: 'no audio from the caller after the transfer' })
      .toBeGreaterThan(0.001);
    await shot(t, 'softphone-transferred-in');

    const { code, output } = await call.done;
    expect(code, output).toBe(0);
    await expect(t.getByTestId('call-end-reason')).toHaveText('The caller hung up.', { timeout: 15_000 });
    const cdr = await cdrWhenEnded(callId);
    expect(cdr.agent_id).toBe(await userId(TRANSFER_AGENT.email));
    expect(JSON.stringify(cdr.transfers)).toContain(extension);
    await page.getByRole('button', { name: 'Dismiss' }).click();
  } finally {
    await tom.context.close();
  }
});

test('attended transfer from the softphone: consult another agent, 3-way call, then hand the caller over', async ({ browser }) => {
  test.setTimeout(150_000);
  const tom = await newAgentContext(browser);
  try {
    const t = tom.page;
    await t.goto('/login');
    await submitPassword(t, TRANSFER_AGENT.email, PASSWORD);
    await expect(registration(t)).toHaveAttribute('data-state', 'green', { timeout: 30_000 });
    await t.getByRole('group', { name: 'Set my status' }).getByRole('button', { name: /^Available/ }).click();
    await expect(myStatus(t)).toContainText('Available');
    const extension = (await t.getByTestId('my-extension').innerText()).trim();

    const call = await carrierCall({ sipPort: server.sipPort, did: DID, plays: 6, workDir: server.dataDir, caller: CALLER });
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
    const callId = (await callPanel(page).getAttribute('data-call-id')) ?? '';
    await page.getByRole('button', { name: 'Answer' }).click();
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });

    // Consult Tom: the caller waits with music while Pia and Tom talk.
    await page.getByRole('button', { name: 'Consult' }).click();
    await page.getByLabel('Extension or number to consult').fill(extension);
    await page.getByRole('form', { name: 'Consult' }).getByRole('button', { name: 'Consult' }).click();
    await expect(page.getByTestId('consult-status')).toContainText(`Calling ${extension}`, { timeout: 15_000 });
    await expect(callPanel(t)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
    await expect(callPanel(t)).toHaveAttribute('data-call-id', callId);
    await t.getByRole('button', { name: 'Answer' }).click();
    await expect(callPanel(t)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });
    await shot(page, 'softphone-consulting');

    // 3-way: Tom now hears the caller (mixed by SIVO).
    const consultation = page.getByRole('group', { name: 'Consultation' });
    await consultation.getByRole('button', { name: '3-way call' }).click();
    await expect(page.getByTestId('consult-status')).toContainText('3-way call', { timeout: 15_000 });
    await expect
      .poll(async () => (await rtpStats(t)).inboundEnergy, { timeout: 20_000, message: 'Tom does not hear the caller in the 3-way call' })
      .toBeGreaterThan(0.001);
    await shot(page, 'softphone-three-way');

    // Pia hands the caller over and leaves.
    await consultation.getByRole('button', { name: 'Complete transfer' }).click();
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'ended', { timeout: 15_000 });
    await expect(callPanel(t)).toHaveAttribute('data-phase', 'active');
    const { code, output } = await call.done;
    expect(code, output).toBe(0);
    await expect(t.getByTestId('call-end-reason')).toHaveText('The caller hung up.', { timeout: 15_000 });

    const cdr = await cdrWhenEnded(callId);
    expect(cdr.agent_id).toBe(await userId(TRANSFER_AGENT.email));
    const transfers = cdr.transfers as { kind: string; succeeded: boolean }[];
    expect(transfers.map((x) => [x.kind, x.succeeded]), JSON.stringify(transfers)).toEqual([['three_way', true]]);
    await page.getByRole('button', { name: 'Dismiss' }).click();
    await t.getByRole('button', { name: 'Dismiss' }).click();
  } finally {
    await tom.context.close();
  }
});

test('the agent dials an external number: it leaves through the trunk with the tenant caller id', async () => {
  test.setTimeout(120_000);
  const CALLER_ID = '+4930999111';
  const NUMBER = '+15557654321';
  const carrierPort = await freePort('127.0.0.2', true);
  await server.admin('PATCH', `/api/v1/trunks/${trunkId}`, { port: carrierPort });
  await server.admin('PATCH', '/api/v1/settings', { outbound_trunk_id: trunkId, outbound_caller_id: CALLER_ID });
  const carrier = await carrierAnswer({ port: carrierPort, workDir: server.dataDir, number: NUMBER, callerId: CALLER_ID });

  const dialer = page.getByRole('form', { name: 'Dialer' });
  await dialer.getByLabel('Number to call').fill('abc');
  await dialer.getByRole('button', { name: 'Call' }).click();
  await expect(dialer.getByText('Use digits only')).toBeVisible();
  await dialer.getByLabel('Number to call').fill('+1 555 765 4321');
  await shot(page, 'softphone-dialer');
  await dialer.getByRole('button', { name: 'Call' }).click();
  await expect(callPanel(page)).toHaveAttribute('data-phase', /dialing|active/, { timeout: 10_000 });
  await expect(page.getByTestId('caller-number')).toHaveText(NUMBER);
  await expect(callPanel(page)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });
  // The far end talks back what it hears: the browser's fake-microphone beeps return.
  const echoed = await expect
    .poll(async () => (await rtpStats(page)).inboundEnergy, { timeout: 20_000 })
    .toBeGreaterThan(0.001)
    .then(() => null, (err: unknown) => err);
  await expect.poll(async () => (await rtpStats(page)).inboundPackets, { timeout: 10_000 }).toBeGreaterThan(75);
  await shot(page, 'softphone-outbound-call');
  await page.getByRole('button', { name: 'Hang up' }).click();
  await expect(page.getByTestId('call-end-reason')).toHaveText('You hung up.', { timeout: 15_000 });
  const { code, output } = await carrier.done;
  expect(code, output).toBe(0);

  let cdr: Record<string, unknown> = {};
  await expect(async () => {
    const list = await server.admin<{ items: Record<string, unknown>[] }>('GET', '/api/v1/cdrs?direction=outbound');
    cdr = list.items[0] ?? {};
    expect(cdr.ended_at).toBeTruthy();
  }).toPass({ timeout: 15_000 });
  expect(echoed, `no audio back from the far end; CDR: ${JSON.stringify(cdr)}`).toBeNull();
  expect(cdr).toMatchObject({ direction: 'outbound', from: CALLER_ID, to: NUMBER, agent_id: agentId, hangup_side: 'agent' });
  const legs = cdr.legs as { leg: string; transport: string; rtp: Record<string, number> }[];
  const mine = legs.find((l) => l.leg === 'caller');
  const far = legs.find((l) => l.leg === 'callee');
  expect(mine?.transport, JSON.stringify(legs)).toBe('WSS');
  expect(Number(far?.rtp.packets_received), JSON.stringify(legs)).toBeGreaterThan(50);
  expect(Number(mine?.rtp.packets_sent), JSON.stringify(legs)).toBeGreaterThan(50);
  await page.getByRole('button', { name: 'Dismiss' }).click();
});

test('a browser that offers only Opus talks to the G.711 caller through the transcoder', async () => {
  test.setTimeout(120_000);
  await page.evaluate(() => {
    (window as unknown as { __opusOnly: boolean }).__opusOnly = true;
  });
  try {
    const call = await carrierCall({ sipPort: server.sipPort, did: DID, plays: 3, workDir: server.dataDir, caller: CALLER });
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'ringing', { timeout: 20_000 });
    const callId = (await callPanel(page).getAttribute('data-call-id')) ?? '';
    await page.getByRole('button', { name: 'Answer' }).click();
    await expect(callPanel(page)).toHaveAttribute('data-phase', 'active', { timeout: 20_000 });
    // The caller's PCMA voice, decoded and encoded as Opus, plays in the browser.
    await expect
      .poll(async () => (await rtpStats(page)).inboundEnergy, { timeout: 20_000, message: 'no audio energy from the caller' })
      .toBeGreaterThan(0.001);
    expect((await rtpStats(page)).codec).toMatch(/opus/i);
    await expect.poll(async () => (await rtpStats(page)).inboundPackets, { timeout: 10_000 }).toBeGreaterThan(100);
    const { code, output } = await call.done;
    expect(code, output).toBe(0);
    await expect(page.getByTestId('call-end-reason')).toHaveText('The caller hung up.', { timeout: 15_000 });

    const cdr = await cdrWhenEnded(callId);
    const legs = cdr.legs as { leg: string; outcome: string; codec: string; rtp: Record<string, number | string> }[];
    const caller = legs.find((l) => l.leg === 'caller');
    const agentLeg = legs.find((l) => l.leg === 'agent' && l.outcome === 'completed');
    expect(agentLeg?.codec, JSON.stringify(legs)).toBe('opus/48000/2');
    expect(caller?.codec, JSON.stringify(legs)).toBe('PCMA/8000');
    expect(Number(agentLeg!.rtp.packets_received)).toBeGreaterThan(100);
    expect(Number(agentLeg!.rtp.packets_sent)).toBeGreaterThan(100);
    // The browser's Opus (the fake microphone's beeps) decoded into the recording's right channel.
    const recording = cdr.recording as { path?: string } | null;
    expect(recording?.path, JSON.stringify(cdr)).toBeTruthy();
    const [left, right] = channelRms(readFileSync(recording!.path!));
    expect(left, 'caller channel silent').toBeGreaterThan(100);
    expect(right, 'agent (Opus) channel silent').toBeGreaterThan(100);
    await page.getByRole('button', { name: 'Dismiss' }).click();
  } finally {
    await page.evaluate(() => {
      (window as unknown as { __opusOnly: boolean }).__opusOnly = false;
    });
  }
});

test('a blocked microphone is explained clearly', async ({ browser }) => {
  await server.createUser(MUTE_AGENT.email, 'agent', MUTE_AGENT.name, PASSWORD);
  const denied = await newAgentContext(browser, () => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  try {
    const p = denied.page;
    await p.goto('/login');
    await submitPassword(p, MUTE_AGENT.email, PASSWORD);
    await expect(p).toHaveURL(/\/softphone$/);
    await expect(p.getByTestId('mic-problem').first()).toContainText('Microphone blocked');
    await expect(p.getByTestId('mic-problem').first()).toContainText('Allow the microphone for this site');
    await expect(p.getByTestId('mic-state')).toHaveText('Blocked');
    await expect(registration(p)).toHaveAttribute('data-state', 'green', { timeout: 30_000 });
    await shot(p, 'softphone-mic-blocked');
    await expectAccessible(p);
  } finally {
    await denied.context.close();
  }
});

async function userId(email: string): Promise<string> {
  const page = await server.admin<{ items: { id: string; email: string }[] }>('GET', '/api/v1/users?limit=200');
  return page.items.find((u) => u.email === email)?.id ?? '';
}

/** The CDR of `callId` once the call has ended. */
async function cdrWhenEnded(callId: string): Promise<Record<string, unknown>> {
  let cdr: Record<string, unknown> = {};
  await expect(async () => {
    cdr = await server.admin<Record<string, unknown>>('GET', `/api/v1/cdrs/${callId}`);
    expect(cdr.ended_at).toBeTruthy();
  }).toPass({ timeout: 15_000 });
  return cdr;
}

/** Inbound/outbound audio RTP stats of the page's last RTCPeerConnection. */
async function rtpStats(p: Page) {
  return p.evaluate(async () => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs;
    const pc = pcs[pcs.length - 1];
    const out = { inboundPackets: 0, inboundEnergy: 0, outboundPackets: 0, codec: '' };
    if (!pc) return out;
    const report = await pc.getStats();
    const codecs = new Map<string, string>();
    report.forEach((s: Record<string, unknown>) => {
      if (s.type === 'codec') codecs.set(String(s.id), String(s.mimeType));
    });
    report.forEach((s: Record<string, unknown>) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.inboundPackets = Number(s.packetsReceived ?? 0);
        out.inboundEnergy = Number(s.totalAudioEnergy ?? 0);
        out.codec = codecs.get(String(s.codecId)) ?? '';
      }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.outboundPackets = Number(s.packetsSent ?? 0);
    });
    return out;
  });
}

/** RMS of each channel of a 16-bit PCM stereo WAV. */
function channelRms(wav: Buffer): [number, number] {
  let offset = 12;
  let data: Buffer | null = null;
  let channels = 0;
  while (offset + 8 <= wav.length) {
    const id = wav.toString('ascii', offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    if (id === 'fmt ') channels = wav.readUInt16LE(offset + 10);
    if (id === 'data') data = wav.subarray(offset + 8, offset + 8 + size);
    offset += 8 + size + (size % 2);
  }
  expect(channels).toBe(2);
  const sums = [0, 0];
  let frames = 0;
  for (let i = 0; data && i + 4 <= data.length; i += 4) {
    sums[0] = (sums[0] ?? 0) + data.readInt16LE(i) ** 2;
    sums[1] = (sums[1] ?? 0) + data.readInt16LE(i + 2) ** 2;
    frames++;
  }
  return [Math.sqrt((sums[0] ?? 0) / Math.max(1, frames)), Math.sqrt((sums[1] ?? 0) / Math.max(1, frames))];
}
