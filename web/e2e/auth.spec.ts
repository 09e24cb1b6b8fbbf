// Lockout, role-based navigation, logout and protected routes.
import { expect, test } from '@playwright/test';
import { AGENT, LOCKED, PASSWORD } from './accounts';
import { INVALID_CREDENTIALS, expectAccessible, expectOnLogin, shot, submitPassword } from './helpers';

test('five failed logins lock the account without saying so', async ({ page }) => {
  await page.goto('/login');
  for (let i = 1; i <= 5; i++) {
    await submitPassword(page, LOCKED.email, `wrong-password-${i}`);
    await expect(page.getByRole('alert')).toHaveText(INVALID_CREDENTIALS);
    await expect(page.getByRole('button', { name: 'Sign in' })).toBeEnabled();
  }
  await shot(page, 'login-invalid');
  await expectAccessible(page);
  // Locked now: even the right password gets the same answer.
  await submitPassword(page, LOCKED.email, PASSWORD);
  await expect(page.getByRole('alert')).toHaveText(INVALID_CREDENTIALS);
  await expect(page).toHaveURL(/\/login$/);
  // An unknown account looks exactly the same.
  await submitPassword(page, 'nobody@acme.example', PASSWORD);
  await expect(page.getByRole('alert')).toHaveText(INVALID_CREDENTIALS);
});

test('an agent sees no admin settings; logout returns to login and protects pages', async ({ page }) => {
  await page.goto('/settings/users');
  await expectOnLogin(page);
  await submitPassword(page, AGENT.email, PASSWORD);
  // Back where they wanted to go, but an agent may not open it: they land on their softphone.
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await expect(page).toHaveURL(/\/softphone$/);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: /^Agents/ })).toBeVisible();
  for (const hidden of ['Users & roles', 'API keys', 'Audit', 'Queues', 'SIP trunks', 'Tenants', 'Webhooks']) {
    await expect(nav.getByRole('link', { name: new RegExp(`^${hidden}`) })).toHaveCount(0);
  }
  // Dashboard → Agents shows an agent their own registration (red: no phone yet).
  await nav.getByRole('link', { name: /^Agents/ }).click();
  await expect(page).toHaveURL(/\/dashboard\/agents$/);
  await expect(page.getByRole('heading', { level: 1, name: 'My status' })).toBeVisible();
  await expect(page.getByTestId('registration-state')).toContainText('Not registered');
  await shot(page, 'agent-dashboard');
  await expectAccessible(page);

  await page.goto('/settings/users');
  await expect(page.getByRole('heading', { level: 1, name: 'No access' })).toBeVisible();

  await page.getByRole('link', { name: /Alex Agent/ }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Profile' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Turn on two-step verification' })).toBeVisible();
  // Password change validates before sending.
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password', { exact: true }).fill('another-long-password');
  await page.getByLabel('Repeat the new password').fill('different-long-password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByText('The passwords do not match.')).toBeVisible();
  await shot(page, 'profile');
  await expectAccessible(page);

  await page.getByRole('button', { name: 'Log out' }).click();
  await expectOnLogin(page);
  await expect(page.getByText('You have logged out.')).toBeVisible();
  for (const path of ['/dashboard/agents', '/profile', '/settings/users', '/audit']) {
    await page.goto(path);
    await expectOnLogin(page);
  }
  const me = await page.request.get('/api/v1/me');
  expect(me.status()).toBe(401);
});
