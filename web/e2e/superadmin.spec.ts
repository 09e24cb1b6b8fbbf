// A platform operator enrols MFA and manages tenants.
import { expect, test } from '@playwright/test';
import { PASSWORD, ROOT, TENANT } from './accounts';
import { enrolTotp, expectAccessible, expectOnLogin, loginWithTotp, shot, submitPassword } from './helpers';

test('superadmin enrols, sees only platform pages, and creates a tenant', async ({ page }) => {
  await page.goto('/login');
  await submitPassword(page, ROOT.email, PASSWORD);
  const enrolment = await enrolTotp(page);
  await page.getByLabel('I have saved these recovery codes').check();
  await page.getByRole('button', { name: 'Continue to sign in' }).click();
  await expectOnLogin(page);
  await loginWithTotp(page, ROOT.email, PASSWORD, enrolment.secret, enrolment.confirmedStep);

  await expect(page).toHaveURL(/\/platform\/tenants$/);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Tenants' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Audit' })).toBeVisible();
  await expect(nav.getByRole('link', { name: /^Users & roles/ })).toHaveCount(0);
  await expect(page.getByRole('row').filter({ hasText: TENANT.slug })).toBeVisible();

  await page.getByRole('button', { name: 'Add tenant' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add tenant' });
  await dialog.getByLabel('Name').fill('Globex');
  await dialog.getByLabel('Slug').fill('G');
  await dialog.getByRole('button', { name: 'Create tenant' }).click();
  await expect(dialog.getByText(/Use 3 to 40 characters/)).toBeVisible();
  await dialog.getByLabel('Slug').fill(TENANT.slug);
  await dialog.getByRole('button', { name: 'Create tenant' }).click();
  await expect(dialog.getByText('this slug is already in use')).toBeVisible();
  await dialog.getByLabel('Slug').fill('globex');
  await dialog.getByLabel('Plan').selectOption('pro');
  await dialog.getByRole('button', { name: 'Create tenant' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('row').filter({ hasText: 'globex' })).toContainText('Pro');
  await shot(page, 'tenants');
  await expectAccessible(page);
});
