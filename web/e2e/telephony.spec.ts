// The telephony backoffice: an admin adds carrier trunks (one answers OPTIONS and goes OK, one
// does not and goes FAIL with the reason), gives a number to an agent, issues the agent's SIP
// credentials; a phone registers with them and the agent turns green everywhere.
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PASSWORD, SUPERVISOR, TEL_ADMIN, TEL_AGENT } from './accounts';
import { enrolTotp, expectAccessible, expectOnLogin, loginWithTotp, shot, submitPassword } from './helpers';
import { seedCalls, toneWav } from './seed';
import { fakeCarrier, registerPhone } from './sip';

test.describe.configure({ mode: 'serial' });

let context: BrowserContext;
let page: Page;
let carrier: Awaited<ReturnType<typeof fakeCarrier>>;
let phone: Awaited<ReturnType<typeof registerPhone>> | undefined;
let deadPort: number;
let rotatedPassword = '';
let supportQueueId = '';
let tinaId = '';
/** Issued in the agents test; other specs may have taken 1000 first (a softphone fetches credentials). */
let tinaExtension = '';
const SIP_PORT = Number(process.env.WEB_E2E_SIP_PORT);

interface TrunkJson {
  id: string;
  name: string;
  host: string;
  port: number;
  allowed_cidrs: string[];
  username: string | null;
  has_password: boolean;
  register: boolean;
  status: string;
}

test.beforeAll(async ({ browser }) => {
  carrier = await fakeCarrier();
  // A UDP port with nobody behind it: the second carrier never answers.
  const probe = createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
  deadPort = probe.address().port;
  await new Promise<void>((r) => probe.close(() => r()));

  context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
  await page.goto('/login');
  await submitPassword(page, TEL_ADMIN.email, PASSWORD);
  const enrolment = await enrolTotp(page);
  await page.getByLabel('I have saved these recovery codes').check();
  await page.getByRole('button', { name: 'Continue to sign in' }).click();
  await expectOnLogin(page);
  await loginWithTotp(page, TEL_ADMIN.email, PASSWORD, enrolment.secret, enrolment.confirmedStep);
  await expect(page).toHaveURL(/\/settings\/users$/);
});

test.afterAll(async () => {
  await phone?.close().catch(() => undefined);
  await carrier?.close();
  await context?.close();
});

const nav = () => page.getByRole('navigation', { name: 'Main' });

test('SIP trunks: the CIDR editor, client and server errors, then OK and FAIL from real keepalives', async () => {
  await nav().getByRole('link', { name: 'SIP trunks' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'SIP trunks' })).toBeVisible();
  await expect(page.getByText('No SIP trunks yet')).toBeVisible();
  await shot(page, 'sip-trunks-empty');

  await page.getByRole('button', { name: 'Add trunk' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Add SIP trunk' });
  await expect(dialog.getByLabel('Name', { exact: true })).toBeFocused();

  // Nothing filled: each field says what it needs.
  await dialog.getByRole('button', { name: 'Add trunk' }).click();
  await expect(dialog.getByText('Enter a name, e.g. the carrier’s.')).toBeVisible();
  await expect(dialog.getByText('Enter the carrier’s host name or IP address.')).toBeVisible();
  await expect(dialog.getByLabel('Name', { exact: true })).toBeFocused();

  await dialog.getByLabel('Name', { exact: true }).fill('Carrier One');
  await dialog.getByLabel('Host', { exact: true }).fill('127.0.0.1');
  await dialog.getByLabel(/^Port/).fill(String(carrier.port));
  // A host address typed with its /24: the editor says the whole network is saved.
  const row1 = dialog.getByLabel('Network 1', { exact: true });
  await row1.fill('185.45.152.180/24');
  await expect(dialog.getByText('Saved as 185.45.152.0/24: the whole network, not just the address typed.')).toBeVisible();
  // Pasting a list into a new row splits it into rows.
  await dialog.getByRole('button', { name: 'Add network' }).click();
  const row2 = dialog.getByLabel('Network 2', { exact: true });
  await expect(row2).toBeFocused();
  await page.evaluate(() => navigator.clipboard.writeText('185.45.153.0/24, 2001:db8::1/32\n127.0.0.0/8'));
  await page.keyboard.press('Control+V');
  await expect(dialog.getByLabel('Network 4', { exact: true })).toHaveValue('127.0.0.0/8');
  await expect(dialog.getByLabel('Network 3', { exact: true })).toHaveValue('2001:db8::1/32');
  await expect(dialog.getByText('4 networks')).toBeVisible();
  // A host name and an out-of-range prefix are named on their rows.
  await dialog.getByRole('button', { name: 'Add network' }).click();
  await dialog.getByLabel('Network 5', { exact: true }).fill('sip.zadarma.com');
  await dialog.getByRole('button', { name: 'Add network' }).click();
  await dialog.getByLabel('Network 6', { exact: true }).fill('10.0.0.0/33');
  await dialog.getByLabel('Register with the carrier').check();
  await dialog.getByRole('button', { name: 'Add trunk' }).click();
  await expect(dialog.getByText('Use IP addresses, not host names: carriers publish the networks they send from.')).toBeVisible();
  await expect(dialog.getByText('The prefix after “/” must be 0 to 32 for an IPv4 network.')).toBeVisible();
  await expect(dialog.getByText('Registering needs a user name and a password.')).toBeVisible();
  await expect(dialog.getByLabel('Network 5', { exact: true })).toBeFocused();
  await expect(dialog.getByLabel('Network 5', { exact: true })).toHaveAttribute('aria-invalid', 'true');
  await shot(page, 'sip-trunk-dialog-errors', { fullPage: false });
  await expectAccessible(page);
  await dialog.getByRole('button', { name: 'Remove network 6 (10.0.0.0/33)' }).click();
  await dialog.getByRole('button', { name: 'Remove network 5 (sip.zadarma.com)' }).click();
  await expect(dialog.getByLabel('Network 5', { exact: true })).toHaveCount(0);
  await dialog.getByLabel('Register with the carrier').uncheck();
  await dialog.getByRole('button', { name: 'Add trunk' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByText('Carrier One was added.')).toBeVisible();

  await expect(page.getByRole('row').filter({ hasText: 'Carrier One' })).toBeVisible();

  // The second carrier: its name first collides (the server's 409 lands next to Name).
  await page.getByRole('button', { name: 'Add trunk' }).click();
  const second = page.getByRole('dialog', { name: 'Add SIP trunk' });
  await second.getByLabel('Name', { exact: true }).fill('Carrier One');
  await second.getByLabel('Host', { exact: true }).fill('127.0.0.1');
  await second.getByLabel(/^Port/).fill(String(deadPort));
  await second.getByLabel('Network 1', { exact: true }).fill('198.51.100.0/24');
  await second.getByRole('button', { name: 'Add trunk' }).click();
  await expect(second.getByText('A trunk with this name exists.')).toBeVisible();
  await expect(second.getByLabel('Name', { exact: true })).toHaveAttribute('aria-invalid', 'true');
  await expect(second.getByLabel('Name', { exact: true })).toBeFocused();
  await second.getByLabel('Name', { exact: true }).fill('Backup carrier');
  await second.getByLabel('User name', { exact: true }).fill('acme-backup');
  await second.getByLabel('Password', { exact: true }).fill('carrier-secret-1');
  await second.getByRole('button', { name: 'Add trunk' }).click();
  await expect(second).toBeHidden();

  // Live status from the real keepalive: OK for the carrier that answers, FAIL with the reason
  // for the one that does not. The page does not poll: each status change reaches it as a change
  // hint over the realtime socket, and the page re-reads the list (same document, no reload).
  const one = page.getByRole('row').filter({ hasText: 'Carrier One' });
  const backup = page.getByRole('row').filter({ hasText: 'Backup carrier' });
  await expect(one).toContainText(`127.0.0.1:${carrier.port} · UDP`);
  await expect(one).toContainText('185.45.152.0/24');
  await expect(one).toContainText('+1 more');
  await page.evaluate(() => {
    (window as unknown as { __notReloaded: boolean }).__notReloaded = true;
  });
  await expect(one.getByTestId('trunk-status')).toContainText('OK', { timeout: 40_000 });
  await expect(backup.getByTestId('trunk-status')).toContainText('FAIL', { timeout: 40_000 });
  expect(await page.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded)).toBe(true);
  await expect(backup.getByTestId('trunk-status')).toContainText(/Timeout|Unreachable/);
  await expect(backup.getByTestId('trunk-status')).toContainText(/for \d+ s · since/);
  await expect(backup).toContainText('Outbound user acme-backup');
  expect(carrier.requests).toContain('OPTIONS');
  await shot(page, 'sip-trunks');
  await expectAccessible(page);

  // The API agrees, normalised as the editor said, with the password never shown.
  const res = await page.request.get('/api/v1/trunks');
  const trunks = ((await res.json()) as { items: TrunkJson[] }).items;
  expect(trunks.find((t) => t.name === 'Carrier One')).toMatchObject({
    host: '127.0.0.1',
    port: carrier.port,
    allowed_cidrs: ['185.45.152.0/24', '185.45.153.0/24', '2001:db8::/32', '127.0.0.0/8'],
    status: 'OK',
  });
  const b = trunks.find((t) => t.name === 'Backup carrier')!;
  expect(b).toMatchObject({ username: 'acme-backup', has_password: true, status: 'FAIL' });
  expect(JSON.stringify(b)).not.toContain('carrier-secret-1');

  // Edit: keep the saved password, turn registration on; the row says so.
  await page.getByRole('button', { name: 'Edit Backup carrier' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit Backup carrier' });
  await expect(edit.getByLabel('Name', { exact: true })).toBeFocused();
  await expect(edit.getByLabel('Password', { exact: true })).toHaveAttribute('placeholder', '•••••••• (saved)');
  await edit.getByLabel('Register with the carrier').check();
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await expect(edit).toBeHidden();
  await expect(page.getByText('Backup carrier was updated.')).toBeVisible();
  await expect(backup).toContainText('registers');
  const after = (await (await page.request.get(`/api/v1/trunks/${b.id}`)).json()) as TrunkJson;
  expect(after).toMatchObject({ register: true, has_password: true });

  // The status history is one click away, in the audit log.
  await backup.getByRole('link', { name: 'History of Backup carrier' }).click();
  await expect(page).toHaveURL(new RegExp(`resource=trunk%3A${b.id}|resource=trunk:${b.id}`));
  await expect(page.getByRole('row').filter({ hasText: 'trunk.status_changed' }).first()).toBeVisible();
});

test('Numbers: a DID on a trunk, routed to an agent; a trunk in use cannot be deleted', async () => {
  await nav().getByRole('link', { name: 'Numbers (DIDs)' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Numbers (DIDs)' })).toBeVisible();
  await expect(page.getByText('No numbers yet')).toBeVisible();
  await page.getByRole('button', { name: 'Add number' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Add number' });
  await expect(dialog.getByLabel('Number', { exact: true })).toBeFocused();
  await dialog.getByLabel('Number', { exact: true }).fill('030 1234567');
  await dialog.getByRole('button', { name: 'Add number' }).click();
  await expect(dialog.getByText('Start with + and the country code, e.g. +49 30 1234567.')).toBeVisible();
  await expect(dialog.getByText('Choose the trunk this number arrives on.')).toBeVisible();
  await dialog.getByLabel('Number', { exact: true }).fill('0049 30 1234567');
  await expect(dialog.getByText('Saved as +49301234567.')).toBeVisible();
  await dialog.getByLabel('Trunk', { exact: true }).selectOption({ label: `Carrier One — 127.0.0.1:${carrier.port} · UDP` });
  await dialog.getByLabel('Destination', { exact: true }).selectOption('agent');
  await dialog.getByRole('button', { name: 'Add number' }).click();
  await expect(dialog.getByText('Choose the agent that answers this number.')).toBeVisible();
  await expect(dialog.getByLabel('Agent', { exact: true })).toBeFocused();
  await dialog.getByLabel('Agent', { exact: true }).selectOption({ label: `${TEL_AGENT.name} · not registered` });
  await dialog.getByRole('button', { name: 'Add number' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByText('+49301234567 was added.')).toBeVisible();
  const row = page.getByRole('row').filter({ hasText: '+49301234567' });
  await expect(row).toContainText('Carrier One');
  await expect(row).toContainText(TEL_AGENT.name);

  // The same number again: the server's conflict is shown next to the field.
  await page.getByRole('button', { name: 'Add number' }).first().click();
  const again = page.getByRole('dialog', { name: 'Add number' });
  await again.getByLabel('Number', { exact: true }).fill('+49 30 1234567');
  await again.getByLabel('Trunk', { exact: true }).selectOption({ label: `Carrier One — 127.0.0.1:${carrier.port} · UDP` });
  await again.getByRole('button', { name: 'Add number' }).click();
  await expect(again.getByText('This number is already a DID.')).toBeVisible();
  await expect(again.getByLabel('Number', { exact: true })).toBeFocused();
  await again.getByLabel('Number', { exact: true }).fill('+14155550100');
  await again.getByRole('button', { name: 'Add number' }).click();
  await expect(again).toBeHidden();
  await expect(page.getByRole('row').filter({ hasText: '+14155550100' })).toContainText('Not routed');
  await shot(page, 'numbers');
  await expectAccessible(page);

  const users = (await (await page.request.get('/api/v1/users?limit=200')).json()) as { items: { id: string; email: string }[] };
  const tina = users.items.find((u) => u.email === TEL_AGENT.email)!;
  const dids = (await (await page.request.get('/api/v1/dids')).json()) as {
    items: { number: string; destination_type: string; destination_id: string | null }[];
  };
  expect(dids.items.find((d) => d.number === '+49301234567')).toMatchObject({ destination_type: 'agent', destination_id: tina.id });
  expect(dids.items.find((d) => d.number === '+14155550100')).toMatchObject({ destination_type: 'none', destination_id: null });

  // Edit one, then delete it.
  await page.getByRole('button', { name: 'Edit +14155550100' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit +14155550100' });
  await edit.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: 'Delete this number?' }).getByRole('button', { name: 'Delete number' }).click();
  await expect(page.getByText('+14155550100 was deleted.')).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: '+14155550100' })).toHaveCount(0);

  // Carrier One still carries +49301234567: deleting it is refused with the reason.
  await nav().getByRole('link', { name: 'SIP trunks' }).click();
  await expect(page.getByRole('row').filter({ hasText: 'Carrier One' })).toContainText('1 number');
  await page.getByRole('button', { name: 'Edit Carrier One' }).click();
  await page.getByRole('dialog', { name: 'Edit Carrier One' }).getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete this trunk?' });
  await confirm.getByRole('button', { name: 'Delete trunk' }).click();
  await expect(confirm.getByText(/Numbers still arrive on this trunk/)).toBeVisible();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('dialog', { name: 'Edit Carrier One' }).getByRole('button', { name: 'Cancel' }).click();

  // Backup carrier has no numbers: it goes.
  await page.getByRole('button', { name: 'Edit Backup carrier' }).click();
  await page.getByRole('dialog', { name: 'Edit Backup carrier' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: 'Delete this trunk?' }).getByRole('button', { name: 'Delete trunk' }).click();
  await expect(page.getByText('Backup carrier was deleted.')).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: 'Backup carrier' })).toHaveCount(0);
});

test('Agents: credentials issued, a phone registers, the agent turns green with transport and user agent', async () => {
  await nav().getByRole('link', { name: 'Agents', exact: true }).nth(1).click();
  await expect(page).toHaveURL(/\/settings\/agents$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Agents' })).toBeVisible();
  const row = page.getByRole('row').filter({ hasText: TEL_AGENT.email });
  await expect(row).toContainText('Not issued');
  await expect(row.getByTestId('agent-registration')).toContainText('Not registered');
  await expect(page.getByRole('row').filter({ hasText: TEL_ADMIN.email })).toHaveCount(0);

  await row.getByRole('link', { name: `Open ${TEL_AGENT.name}` }).click();
  await expect(page.getByRole('heading', { level: 1, name: TEL_AGENT.name })).toBeVisible();
  await expect(page.getByTestId('registration-state')).toContainText('Not registered');
  await page.getByRole('button', { name: 'Issue SIP credentials' }).click();
  await expect(page.getByText(/Extension \d+ was issued\./)).toBeVisible();
  const creds = page.getByTestId('sip-credentials');
  const password = (await page.getByTestId('sip-password').innerText()).trim();
  expect(password.length).toBeGreaterThanOrEqual(16);
  const uri = (await creds.locator('dd').first().innerText()).trim();
  const m = /^sip:(\d+)@(.+)$/.exec(uri);
  expect(m, uri).not.toBeNull();
  const [, extension, domain] = m!;
  tinaExtension = extension!;
  expect(domain).toBe('acme.sip.localhost');

  // A phone registers with those credentials over UDP.
  phone = await registerPhone({ sipPort: SIP_PORT, user: extension!, domain: domain!, password, userAgent: 'Yealink T46U 66.86' });
  expect(phone.status).toBe('SIP/2.0 200 OK');
  await expect(page.getByTestId('registration-state')).toContainText('Registered', { timeout: 25_000 });
  await expect(page.getByText('Secure WebSocket')).toHaveCount(0);
  await expect(page.getByRole('definition').filter({ hasText: 'Yealink T46U 66.86' })).toBeVisible();
  await shot(page, 'agent-detail');
  await expectAccessible(page);

  // Rotating issues a new password.
  await page.getByRole('button', { name: 'Rotate password' }).click();
  await page.getByRole('dialog', { name: 'Rotate the SIP password?' }).getByRole('button', { name: 'Rotate password' }).click();
  await expect(page.getByText(/A new SIP password was issued/)).toBeVisible();
  expect((await page.getByTestId('sip-password').innerText()).trim()).not.toBe(password);

  await page.getByRole('link', { name: '← All agents' }).click();
  const green = page.getByRole('row').filter({ hasText: TEL_AGENT.email });
  await expect(green.getByTestId('agent-registration')).toContainText('Registered');
  await expect(green.getByTestId('agent-registration')).toContainText('UDP · Yealink T46U 66.86 · 1 device');
  await expect(green).toContainText(extension!);
  await shot(page, 'agents');
  await expectAccessible(page);

  // Dashboard → Agents: the board, registered first.
  await nav().getByRole('link', { name: 'Agents', exact: true }).first().click();
  await expect(page).toHaveURL(/\/dashboard\/agents$/);
  await expect(page.getByRole('group', { name: 'Summary' })).toContainText(/1 of \d+Phones registered/);
  const card = page.getByRole('listitem').filter({ hasText: TEL_AGENT.name });
  await expect(card).toContainText('Registered');
  await expect(card).toContainText(`Ext. ${extension}`);
  await expect(page.getByRole('list', { name: 'Agents' }).getByRole('listitem').first()).toContainText(TEL_AGENT.name);
  await shot(page, 'agents-dashboard');
  await expectAccessible(page);
  await card.getByRole('link', { name: TEL_AGENT.name }).click();
  await expect(page).toHaveURL(/\/dashboard\/agents\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { level: 1, name: TEL_AGENT.name })).toBeVisible();
});

test('an agent sees their own registration and SIP credentials, nobody else’s', async ({ browser }) => {
  const agentContext = await browser.newContext();
  const agentPage = await agentContext.newPage();
  await agentPage.goto('/login');
  await submitPassword(agentPage, TEL_AGENT.email, PASSWORD);
  // Wherever an agent lands after login, Dashboard → Agents is their own status page.
  await expect(agentPage.getByRole('navigation', { name: 'Main' })).toBeVisible();
  await agentPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents', exact: true }).click();
  await expect(agentPage).toHaveURL(/\/dashboard\/agents$/);
  await expect(agentPage.getByRole('heading', { level: 1, name: 'My status' })).toBeVisible();
  await expect(agentPage.getByTestId('registration-state')).toContainText('Registered');
  await agentPage.getByRole('button', { name: 'Show password' }).click();
  const rotated = (await agentPage.getByTestId('sip-password').innerText()).trim();
  await expect(agentPage.getByTestId('sip-credentials')).toContainText('acme.sip.localhost');
  await expectAccessible(agentPage);
  // Settings pages stay closed to agents.
  await agentPage.goto('/settings/sip-trunks');
  await expect(agentPage.getByRole('heading', { level: 1, name: 'No access' })).toBeVisible();
  await agentContext.close();
  rotatedPassword = rotated;
});

test('Queues: created with validation, members managed, a number routed to it; the API agrees', async () => {
  await nav().getByRole('link', { name: 'Queues', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Queues' })).toBeVisible();
  await expect(page.getByText('No queues yet')).toBeVisible();
  await page.getByRole('button', { name: 'Add queue' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Add queue' });
  await expect(dialog.getByLabel('Name', { exact: true })).toBeFocused();
  await dialog.getByLabel('Ring timeout (seconds)').fill('3');
  await dialog.getByLabel('Overflow', { exact: true }).selectOption('agent');
  await dialog.getByRole('button', { name: 'Add queue' }).click();
  await expect(dialog.getByText('Enter a name, e.g. Support.')).toBeVisible();
  await expect(dialog.getByText('Use 5 to 300 seconds.')).toBeVisible();
  await expect(dialog.getByText('Choose the agent who gets the call.')).toBeVisible();
  await dialog.getByLabel('Name', { exact: true }).fill('Support');
  await dialog.getByLabel('Ring timeout (seconds)').fill('15');
  await dialog.getByLabel('Max wait (seconds)').fill('120');
  await expect(dialog.getByText('2 min: then the overflow below applies.')).toBeVisible();
  await dialog.getByLabel('Overflow', { exact: true }).selectOption('hangup');
  await dialog.getByLabel('Record calls').check();
  await shot(page, 'queue-dialog', { fullPage: false });
  await expectAccessible(page);
  await dialog.getByRole('button', { name: 'Add queue' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByText('Support was added. Add its members next.')).toBeVisible();
  const support = page.getByRole('row', { name: /^Support / });
  await expect(support).toContainText('15 s per agent');
  await expect(support).toContainText('After 2 min: hang up');
  await expect(support).toContainText('Recorded');

  // A second queue: the name collides first (the server's 409 next to Name), then overflows to Support.
  await page.getByRole('button', { name: 'Add queue' }).click();
  const second = page.getByRole('dialog', { name: 'Add queue' });
  await second.getByLabel('Name', { exact: true }).fill('Support');
  await second.getByRole('button', { name: 'Add queue' }).click();
  await expect(second.getByText('A queue with this name exists.')).toBeVisible();
  await expect(second.getByLabel('Name', { exact: true })).toBeFocused();
  await second.getByLabel('Name', { exact: true }).fill('Sales');
  await second.getByLabel('Overflow', { exact: true }).selectOption('queue');
  await second.getByLabel('Overflow queue').selectOption({ label: 'Support' });
  await second.getByRole('button', { name: 'Add queue' }).click();
  await expect(second).toBeHidden();
  await expect(page.getByRole('row').filter({ hasText: 'Sales' })).toContainText('After 5 min: move to Support');

  // Members.
  await support.getByRole('link', { name: 'Members of Support' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Support' })).toBeVisible();
  await expect(page.getByText('No members yet')).toBeVisible();
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByText('Choose an agent to add.')).toBeVisible();
  await expect(page.getByLabel('Add an agent')).toBeFocused();
  await page.getByLabel('Add an agent').selectOption({ label: `${TEL_AGENT.name} · ext. ${tinaExtension}` });
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByText(`${TEL_AGENT.name} now takes calls from Support.`)).toBeVisible();
  await page.getByLabel('Add an agent').selectOption({ label: SUPERVISOR.name });
  await page.getByRole('button', { name: 'Add member' }).click();
  const members = page.getByRole('table', { name: 'Members of Support' });
  await expect(members.getByRole('row').filter({ hasText: SUPERVISOR.email })).toBeVisible();
  await page.getByRole('button', { name: `Remove ${SUPERVISOR.name} from Support` }).click();
  await expect(page.getByText(`${SUPERVISOR.name} was removed from Support.`)).toBeVisible();
  await expect(members.getByRole('row').filter({ hasText: SUPERVISOR.email })).toHaveCount(0);
  await expect(members.getByRole('row').filter({ hasText: TEL_AGENT.email })).toContainText('Registered');
  await shot(page, 'queue-members');
  await expectAccessible(page);

  // The API agrees.
  const queues = ((await (await page.request.get('/api/v1/queues')).json()) as {
    items: { id: string; name: string; ring_timeout_secs: number; max_wait_secs: number; overflow_type: string; overflow_id: string | null; record_calls: boolean }[];
  }).items;
  const q = queues.find((x) => x.name === 'Support')!;
  supportQueueId = q.id;
  expect(q).toMatchObject({ ring_timeout_secs: 15, max_wait_secs: 120, overflow_type: 'hangup', record_calls: true });
  expect(queues.find((x) => x.name === 'Sales')).toMatchObject({ overflow_type: 'queue', overflow_id: q.id });
  const m = (await (await page.request.get(`/api/v1/queues/${q.id}/members`)).json()) as { items: { email: string }[] };
  expect(m.items.map((x) => x.email)).toEqual([TEL_AGENT.email]);

  // Route the number to the queue; the queue is then in use.
  await nav().getByRole('link', { name: 'Numbers (DIDs)' }).click();
  await page.getByRole('button', { name: 'Edit +49301234567' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit +49301234567' });
  await edit.getByLabel('Destination', { exact: true }).selectOption('queue');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await expect(edit.getByText('Choose the queue that answers this number.')).toBeVisible();
  await edit.getByLabel('Queue', { exact: true }).selectOption({ label: 'Support' });
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await expect(edit).toBeHidden();
  await expect(page.getByRole('row').filter({ hasText: '+49301234567' })).toContainText('Support');
  const did = ((await (await page.request.get('/api/v1/dids')).json()) as { items: { number: string; destination_type: string; destination_id: string }[] }).items.find(
    (d) => d.number === '+49301234567',
  );
  expect(did).toMatchObject({ destination_type: 'queue', destination_id: q.id });

  await nav().getByRole('link', { name: 'Queues', exact: true }).click();
  await expect(page.getByRole('row', { name: /^Support / })).toContainText('1 member');
  await shot(page, 'queues');
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Edit Support' }).click();
  await page.getByRole('dialog', { name: 'Edit Support' }).getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete this queue?' });
  await confirm.getByRole('button', { name: 'Delete queue' }).click();
  await expect(confirm.getByText(/\+49301234567/)).toBeVisible();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('dialog', { name: 'Edit Support' }).getByRole('button', { name: 'Cancel' }).click();
});

test('Agent status: an admin puts an agent on break with a reason; the agent sets Available; the board shows it', async ({ browser }) => {
  await nav().getByRole('link', { name: 'Agents', exact: true }).nth(1).click();
  const row = page.getByRole('row').filter({ hasText: TEL_AGENT.email });
  await expect(row).toContainText('Logged out');
  await expect(row).toContainText('Support');
  await row.getByRole('link', { name: `Open ${TEL_AGENT.name}` }).click();
  await expect(page.getByTestId('agent-status')).toContainText('Logged out');
  tinaId = page.url().split('/').pop()!;
  await page.getByRole('radio', { name: /On break/ }).check();
  await page.getByRole('button', { name: 'Set status' }).click();
  await expect(page.getByText('Say why, e.g. Lunch: supervisors see it.')).toBeVisible();
  await expect(page.getByLabel('Reason', { exact: true })).toBeFocused();
  await page.getByRole('button', { name: 'Lunch' }).click();
  await page.getByRole('button', { name: 'Set status' }).click();
  await expect(page.getByText('Status set to On break · Lunch.')).toBeVisible();
  await expect(page.getByTestId('agent-status')).toContainText('On break');
  await expect(page.getByTestId('agent-status')).toContainText('Lunch');
  const st = (await (await page.request.get(`/api/v1/agents/${tinaId}/status`)).json()) as { status: string; pause_reason: string };
  expect(st).toMatchObject({ status: 'on_break', pause_reason: 'Lunch' });

  const agentContext = await browser.newContext();
  const agentPage = await agentContext.newPage();
  await agentPage.goto('/login');
  await submitPassword(agentPage, TEL_AGENT.email, PASSWORD);
  await expect(agentPage.getByRole('navigation', { name: 'Main' })).toBeVisible();
  await agentPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents', exact: true }).click();
  await expect(agentPage.getByRole('heading', { level: 1, name: 'My status' })).toBeVisible();
  await expect(agentPage.getByTestId('agent-status')).toContainText('On break');
  await agentPage.getByRole('radio', { name: /Available/ }).check();
  await agentPage.getByRole('button', { name: 'Set my status' }).click();
  await expect(agentPage.getByText('Your status is now Available.')).toBeVisible();
  await expect(agentPage.getByTestId('agent-status')).toContainText('Available');
  await expect(agentPage.getByText('Queues offer calls to this agent.')).toBeVisible();
  await agentPage.getByRole('button', { name: 'Show password' }).click();
  await shot(agentPage, 'agent-my-status');
  await expectAccessible(agentPage);
  await agentContext.close();

  await nav().getByRole('link', { name: 'Agents', exact: true }).first().click();
  const card = page.getByRole('listitem').filter({ hasText: TEL_AGENT.name });
  await expect(card).toContainText('Available');
  await expect(card).toContainText('Support');
  await expect(page.getByRole('group', { name: 'Summary' })).toContainText('1Ready for calls');
  await shot(page, 'agents-dashboard');
  await expectAccessible(page);
});

test('CDRs: filters, Call detail, and the Technical tab with timeline, codecs, RTP per leg and the recording', async () => {
  const start = new Date(Date.now() - 3600_000);
  const at = (s: number) => new Date(start.getTime() + s * 1000);
  const answeredId = '0190f3c2-7e57-7000-8000-00000000c0d1';
  const recordingFile = join(mkdtempSync(join(tmpdir(), 'sivo-e2e-rec-')), 'call.wav');
  writeFileSync(recordingFile, toneWav(2));
  seedCalls([
    {
      id: answeredId,
      tenantSlug: 'acme',
      direction: 'inbound',
      from: '+4915112345678',
      to: '+49301234567',
      did: '+49301234567',
      queueId: supportQueueId,
      agentId: tinaId,
      createdAt: start,
      queuedAt: at(1),
      answeredAt: at(9),
      endedAt: at(134),
      hangupCause: 'normal_clearing',
      hangupSide: 'caller',
      // As the call engine writes them (crates/telephony/src/calls/call.rs): legs with LegStats
      // under rtp, a timeline of {at, leg, kind, detail}.
      legs: [
        {
          leg: 'caller',
          from: '+4915112345678',
          transport: 'udp',
          sip_call_id: '7f3a9c@carrier.example',
          codec: 'PCMA/8000',
          rtp: { packets_received: 6198, packets_sent: 6250, bytes_received: 1066056, bytes_sent: 1075000, packets_lost: 52, jitter_ms: 4.2, remote: '185.45.152.14:31000', codec: 'PCMA/8000', dtmf_received: '', rtcp_received: 25 },
        },
        { leg: 'agent', agent_id: '0190f3c2-0000-7000-8000-0000000000aa', extension: '1099', transport: 'udp', sip_call_id: 'b2b-1@sivo', outcome: 'no_answer', codec: null, rtp: null },
        {
          leg: 'agent',
          agent_id: tinaId,
          extension: tinaExtension,
          transport: 'udp',
          sip_call_id: 'b2b-2@sivo',
          outcome: 'answered',
          codec: 'PCMA/8000',
          rtp: { packets_received: 6250, packets_sent: 6198, bytes_received: 1075000, bytes_sent: 1066056, packets_lost: 0, jitter_ms: 0.8, remote: '127.0.0.1:40000', codec: 'PCMA/8000', dtmf_received: '', rtcp_received: 25 },
        },
      ],
      timeline: [
        { at: at(0).toISOString(), leg: 'caller', kind: 'sip', detail: { message: 'INVITE received', transport: 'udp' } },
        { at: at(0.02).toISOString(), leg: 'caller', kind: 'codec', detail: { codec: 'PCMA/8000', payload_type: 8 } },
        { at: at(0.05).toISOString(), leg: 'caller', kind: 'sip', detail: { message: '200 OK sent' } },
        { at: at(1).toISOString(), leg: 'caller', kind: 'queue', detail: { message: 'entered queue', queue: 'Support' } },
        { at: at(1.1).toISOString(), leg: 'agent', kind: 'sip', detail: { message: 'INVITE sent', extension: '1099', transport: 'udp' } },
        { at: at(6.1).toISOString(), leg: 'agent', kind: 'sip', detail: { message: 'ring timeout' } },
        { at: at(6.2).toISOString(), leg: 'agent', kind: 'sip', detail: { message: 'INVITE sent', extension: tinaExtension, transport: 'udp' } },
        { at: at(7).toISOString(), leg: 'agent', kind: 'sip', detail: { message: '180 Ringing' } },
        { at: at(9).toISOString(), leg: 'agent', kind: 'sip', detail: { message: '200 OK' } },
        { at: at(9.01).toISOString(), leg: 'agent', kind: 'codec', detail: { codec: 'PCMA/8000', payload_type: 8 } },
        { at: at(9.1).toISOString(), leg: 'caller', kind: 'transcription_started', detail: { provider: 'deepgram' } },
        { at: at(134).toISOString(), leg: 'caller', kind: 'sip', detail: { message: 'BYE received' } },
        { at: at(134).toISOString(), leg: 'caller', kind: 'call', detail: { message: 'ended', cause: 'normal_clearing', side: 'caller' } },
      ],
      // The engine stores path, duration, size and channels; the API adds a pre-signed URL that
      // `sivo` serves from that path (a real file here, written before seeding).
      recording: { path: recordingFile, duration_ms: 2000, bytes: 32044, channels: 2 },
    },
    {
      id: '0190f3c2-7e57-7000-8000-00000000c0d2',
      tenantSlug: 'acme',
      direction: 'inbound',
      from: '+33612345678',
      to: '+49301234567',
      did: '+49301234567',
      queueId: supportQueueId,
      createdAt: at(600),
      queuedAt: at(601),
      endedAt: at(650),
      hangupCause: 'cancelled',
      hangupSide: 'caller',
      timeline: [
        { at: at(600).toISOString(), leg: 'caller', kind: 'sip', detail: { message: 'INVITE received', transport: 'udp' } },
        { at: at(601).toISOString(), leg: 'caller', kind: 'queue', detail: { message: 'entered queue', queue: 'Support' } },
        { at: at(650).toISOString(), leg: 'caller', kind: 'sip', detail: { message: 'CANCEL received' } },
      ],
    },
    {
      // Recorded, but the file is gone from the server: its signed link answers 404.
      id: '0190f3c2-7e57-7000-8000-00000000c0d3',
      tenantSlug: 'acme',
      direction: 'inbound',
      from: '+447700900123',
      to: '+49301234567',
      did: '+49301234567',
      queueId: supportQueueId,
      agentId: tinaId,
      createdAt: at(900),
      queuedAt: at(900),
      answeredAt: at(905),
      endedAt: at(965),
      hangupCause: 'normal_clearing',
      hangupSide: 'agent',
      recording: { path: '/var/lib/sivo/recordings/c0d3.wav', duration_ms: 60000, bytes: 1920044, channels: 2 },
    },
  ]);

  await nav().getByRole('link', { name: 'CDRs' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'CDRs' })).toBeVisible();
  const answered = page.getByRole('row').filter({ hasText: '+4915112345678' });
  const abandoned = page.getByRole('row').filter({ hasText: '+33612345678' });
  await expect(answered).toContainText('Answered');
  await expect(answered).toContainText('Support');
  await expect(answered).toContainText(TEL_AGENT.name);
  await expect(answered).toContainText('2:05');
  await expect(abandoned).toContainText('Abandoned');
  await expect(abandoned).toContainText('0:49');
  await shot(page, 'cdrs');
  await expectAccessible(page);

  // Filters: a bad number is named next to the field; a good one narrows the list (and the URL).
  await page.getByLabel('Number').fill('abc');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page.getByText('Digits only (part of the caller’s or dialled number).')).toBeVisible();
  await page.getByLabel('Number').fill('+33 6');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(/number=/);
  await expect(abandoned).toBeVisible();
  await expect(answered).toHaveCount(0);
  await page.getByRole('button', { name: 'Clear' }).click();
  await expect(answered).toBeVisible();

  await answered.getByRole('link', { name: /Details of the call from \+4915112345678/ }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Call detail' })).toBeVisible();
  await expect(page.getByRole('tab', { name: 'Overview' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('tabpanel')).toContainText('Normal clearing');
  await expect(page.getByRole('tabpanel')).toContainText('Caller hung up');
  await shot(page, 'call-detail');
  await expectAccessible(page);

  // Keyboard: the arrow key moves to the Technical tab.
  await page.getByRole('tab', { name: 'Overview' }).focus();
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('tab', { name: 'Technical' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('tab', { name: 'Technical' })).toBeFocused();
  await expect(page).toHaveURL(/tab=technical/);
  const legs = page.getByRole('table', { name: 'Legs with their negotiated codec and RTP statistics' });
  const callerLeg = legs.getByRole('row').filter({ hasText: '185.45.152.14:31000' });
  await expect(callerLeg).toContainText('Caller');
  await expect(callerLeg).toContainText('PCMA/8000');
  await expect(callerLeg).toContainText('52 (0.8 %)');
  await expect(callerLeg).toContainText('4.2 ms');
  const agentLeg = legs.getByRole('row').filter({ hasText: `ext. ${tinaExtension}` });
  await expect(agentLeg).toContainText(`Agent · ${TEL_AGENT.name}`);
  await expect(agentLeg).toContainText('Answered');
  await expect(legs.getByRole('row').filter({ hasText: 'No answer' })).toBeVisible();
  const timeline = page.getByTestId('timeline');
  await expect(timeline).toContainText('INVITE received');
  await expect(timeline).toContainText('codec negotiated');
  await expect(timeline).toContainText('+9.000 s');
  await expect(timeline).toContainText('transcription_started');
  await expect(timeline.getByRole('listitem').filter({ hasText: 'ended' })).toContainText('normal_clearing');
  const player = page.getByTestId('recording-player');
  await expect(player).toBeVisible();
  await expect.poll(() => player.evaluate((a: HTMLAudioElement) => a.duration)).toBeGreaterThan(1.5);
  await shot(page, 'call-detail-technical');
  await expectAccessible(page);

  // A direct link opens on the Technical tab; the abandoned call says what it lacks.
  await page.goto(`/cdrs/0190f3c2-7e57-7000-8000-00000000c0d2?tab=technical`);
  await expect(page.getByRole('tab', { name: 'Technical' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByText('This call was not recorded.')).toBeVisible();
  await expect(page.getByText(/No media legs were recorded/)).toBeVisible();
  await expect(page.getByTestId('timeline')).toContainText('CANCEL received');
  await page.goto(`/cdrs/0190f3c2-7e57-7000-8000-00000000c0d3?tab=technical`);
  await expect(page.getByTestId('recording-player')).toBeVisible();
  const missing = await page.request.get(`/api/v1/cdrs/0190f3c2-7e57-7000-8000-00000000c0d3`);
  const signed = (await missing.json()).recording.url as string;
  expect(signed).toMatch(/^\/recordings\/.+\.wav\?expires=\d+&signature=[0-9a-f]{64}$/);
  expect((await page.request.get(signed)).status()).toBe(404);
});

test('when the phone un-registers, the agent turns red again', async () => {
  await page.goto(`/settings/agents/${tinaId}`);
  await expect(page.getByTestId('registration-state')).toContainText('Registered');
  // The un-REGISTER reaches the open page as a change hint: red without a reload.
  await page.evaluate(() => {
    (window as unknown as { __notReloaded: boolean }).__notReloaded = true;
  });
  await phone?.close(rotatedPassword);
  phone = undefined;
  await expect(page.getByTestId('registration-state')).toContainText('Not registered', { timeout: 5_000 });
  expect(await page.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded)).toBe(true);
});
