// A supervisor (MFA optional) turns two-step verification on, signs in with a recovery code,
// turns it off again, and changes their password.
import { expect, test } from '@playwright/test';
import { PASSWORD, SUPERVISOR } from './accounts';
import { enrolTotp, expectOnLogin, shot, submitPassword } from './helpers';
import { stepAt, totpAtStep } from './totp';

test('optional MFA from the profile, recovery code sign-in, password change', async ({ page }) => {
  await page.goto('/login');
  await submitPassword(page, SUPERVISOR.email, PASSWORD);
  await expect(page).toHaveURL(/\/dashboard\/agents$/);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /^CDRs/ })).toBeVisible();

  await page.getByRole('link', { name: /Sam Supervisor.*Profile/ }).click();
  await page.getByRole('link', { name: 'Turn on two-step verification' }).click();
  const enrolment = await enrolTotp(page);
  await page.getByLabel('I have saved these recovery codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByText('Two-step verification is on.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Turn off two-step verification' })).toBeVisible();

  // Sign in again with a recovery code instead of the app.
  await page.getByRole('button', { name: 'Log out' }).click();
  await expectOnLogin(page);
  await submitPassword(page, SUPERVISOR.email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  await shot(page, 'login-mfa-code');
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await page.getByLabel('Recovery code').fill(enrolment.recoveryCodes[0]!.toUpperCase());
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/dashboard\/agents$/);

  // Turn it off with the next code (the enrolment's code is spent).
  await page.getByRole('link', { name: /Sam Supervisor.*Profile/ }).click();
  await page.getByRole('button', { name: 'Turn off two-step verification' }).click();
  const dialog = page.getByRole('dialog', { name: 'Turn off two-step verification?' });
  await expect(dialog.getByLabel('Code from the app')).toBeFocused();
  const step = Math.max(stepAt(Date.now()) + 1, enrolment.confirmedStep + 1);
  await dialog.getByLabel('Code from the app').fill(totpAtStep(enrolment.secret, step));
  await dialog.getByRole('button', { name: 'Turn off' }).click();
  await expect(page.getByText('Two-step verification is off.')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Turn on two-step verification' })).toBeVisible();

  // Password: the server says when the current one is wrong, next to the field.
  await page.getByLabel('Current password').fill('not-my-password-at-all');
  await page.getByLabel('New password', { exact: true }).fill('a-brand-new-passphrase');
  await page.getByLabel('Repeat the new password').fill('a-brand-new-passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByText('is not your current password')).toBeVisible();
  await expect(page.getByLabel('Current password')).toBeFocused();
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByText('Your password was changed.')).toBeVisible();

  await page.getByRole('button', { name: 'Log out' }).click();
  await submitPassword(page, SUPERVISOR.email, 'a-brand-new-passphrase');
  await expect(page).toHaveURL(/\/dashboard\/agents$/);
});
