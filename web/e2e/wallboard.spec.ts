// Dashboard → Wallboard, live: a supervisor opens it, an agent changes status through the REST
// API from the test, and the board follows without a reload (Socket.IO events only). Then the
// live connection is cut in the browser: the shell says "Reconnecting…", the page keeps its data,
// and once the connection is back the board catches up with what changed meanwhile.
import { expect, test, type APIRequestContext, type Page, type WebSocketRoute } from '@playwright/test';
import { PASSWORD, WALL_AGENT, WALL_SUPERVISOR } from './accounts';
import { expectAccessible, shot, submitPassword } from './helpers';

test.describe.configure({ mode: 'serial' });

/** Logs in over the API; returns the bearer token and the user's id. */
async function apiLogin(request: APIRequestContext, email: string): Promise<{ token: string; id: string }> {
  const login = await request.post('/api/v1/auth/login', { data: { email, password: PASSWORD } });
  expect(login.ok(), await login.text()).toBe(true);
  const { token } = (await login.json()) as { token: string };
  const me = await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(me.ok()).toBe(true);
  const body = (await me.json()) as { user: { id: string } };
  return { token, id: body.user.id };
}

async function setStatus(request: APIRequestContext, agent: { token: string; id: string }, status: string, reason?: string) {
  const res = await request.put(`/api/v1/agents/${agent.id}/status`, {
    headers: { Authorization: `Bearer ${agent.token}` },
    data: reason ? { status, reason } : { status },
  });
  expect(res.ok(), await res.text()).toBe(true);
}

const column = (page: Page, status: string) => page.getByTestId(`wb-agents-${status}`);
const indicator = (page: Page) => page.locator('.sidebar [data-testid="live-indicator"]');

test('the wallboard follows events live and catches up after the connection drops', async ({ page, request }) => {
  // The browser's live connection can be cut on demand: WebSocket frames and long-polling
  // requests to /socket.io/ are refused while `cut` is set.
  let cut = false;
  const sockets: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/socket\.io\//, (ws) => {
    if (cut) {
      void ws.close({ code: 1001, reason: 'cut by the test' });
      return;
    }
    ws.connectToServer();
    sockets.push(ws);
  });
  await page.route(/\/socket\.io\//, (route) => (cut ? route.abort('internetdisconnected') : route.continue()));

  const agent = await apiLogin(request, WALL_AGENT.email);
  await setStatus(request, agent, 'available');

  await page.goto('/login');
  await submitPassword(page, WALL_SUPERVISOR.email, PASSWORD);
  await expect(page).not.toHaveURL(/\/login$/);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Wallboard' }).click();
  await expect(page).toHaveURL(/\/dashboard\/wallboard$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Wallboard' })).toBeVisible();
  await expect(page.getByTestId('wallboard')).toBeVisible();
  await expect(indicator(page)).toHaveAttribute('data-status', 'connected');
  await expect(indicator(page)).toHaveText('Live');
  await expect(column(page, 'available')).toContainText(WALL_AGENT.name);
  await expect(page.getByTestId('wb-in-progress')).toHaveText('0');

  // A status change made elsewhere shows up without a reload.
  const marker = await page.evaluate(() => {
    (window as unknown as { __notReloaded: boolean }).__notReloaded = true;
    return performance.getEntriesByType('navigation').length;
  });
  await setStatus(request, agent, 'on_break', 'Lunch');
  await expect(column(page, 'on_break')).toContainText(WALL_AGENT.name);
  await expect(column(page, 'on_break')).toContainText('Lunch');
  await expect(column(page, 'available')).not.toContainText(WALL_AGENT.name);
  await shot(page, 'wallboard');
  await expectAccessible(page);

  await setStatus(request, agent, 'available');
  await expect(column(page, 'available')).toContainText(WALL_AGENT.name);

  // The connection drops: the shell says so, the page keeps its data and never spins.
  cut = true;
  for (const ws of sockets) await ws.close({ code: 1001, reason: 'cut by the test' });
  await expect(indicator(page)).toHaveAttribute('data-status', 'reconnecting', { timeout: 20_000 });
  await expect(indicator(page)).toHaveText('Reconnecting…');
  await expect(page.getByText('Live updates paused')).toBeVisible();
  await expect(column(page, 'available')).toContainText(WALL_AGENT.name);
  await shot(page, 'wallboard-reconnecting');

  // What changes meanwhile is not pushed (nobody is connected)…
  await setStatus(request, agent, 'logged_out');
  await page.waitForTimeout(1_000);
  await expect(column(page, 'available')).toContainText(WALL_AGENT.name);

  // …and is there once the connection is back (the board reloads its state on reconnect).
  cut = false;
  await expect(indicator(page)).toHaveAttribute('data-status', 'connected', { timeout: 30_000 });
  await expect(column(page, 'logged_out')).toContainText(WALL_AGENT.name);
  await expect(page.getByText('Live updates paused')).toHaveCount(0);
  // Live again.
  await setStatus(request, agent, 'available');
  await expect(column(page, 'available')).toContainText(WALL_AGENT.name);

  // All of it in the same document: no reload happened.
  expect(await page.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded)).toBe(true);
  expect(marker).toBe(1);
});

test('agents have no wallboard', async ({ page }) => {
  await page.goto('/login');
  await submitPassword(page, WALL_AGENT.email, PASSWORD);
  await expect(page).not.toHaveURL(/\/login$/);
  await page.goto('/dashboard/agents');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' })).toBeVisible();
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Wallboard' })).toHaveCount(0);
  // Agents still get the live indicator (their own status and calls will use the same socket).
  await expect(indicator(page)).toHaveAttribute('data-status', 'connected');
  await page.goto('/dashboard/wallboard');
  await expect(page.getByRole('heading', { level: 1, name: 'No access' })).toBeVisible();
});
