import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stepAt, totpAtStep } from './totp';

export const INVALID_CREDENTIALS = 'Invalid credentials. Too many attempts? Try again later.';
export const SESSION_ENDED = 'Your session ended, please log in again.';

const SHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', process.env.WEB_E2E_RESULTS ?? 'test-results', 'screenshots');

/** Saves a screenshot for people to look at (web/test-results/screenshots/<name>.png). */
export async function shot(page: Page, name: string, { fullPage = true } = {}) {
  // Wait for fonts so screenshots show the real typography.
  await page.evaluate(() => document.fonts.ready);
  const viewport = page.viewportSize();
  const height = fullPage ? await page.evaluate(() => document.documentElement.scrollHeight) : 0;
  if (viewport && height > viewport.height) {
    // A taller viewport rather than Playwright's stitched full page, so the fixed sidebar spans
    // the whole picture as it would on a taller screen.
    await page.setViewportSize({ width: viewport.width, height });
    try {
      await page.screenshot({ path: join(SHOTS, `${name}.png`), animations: 'disabled' });
    } finally {
      await page.setViewportSize(viewport);
    }
    return;
  }
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage, animations: 'disabled' });
}

export async function submitPassword(page: Page, email: string, password: string) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

export interface Enrolment {
  secret: string;
  /** The TOTP step whose code confirmed the enrolment (spent). */
  confirmedStep: number;
  recoveryCodes: string[];
}

/** On the enrolment screen: read the secret, confirm with the current code, read the recovery codes. */
export async function enrolTotp(page: Page, screenshotPrefix?: string): Promise<Enrolment> {
  await expect(page.getByRole('heading', { name: 'Set up two-step verification' })).toBeVisible();
  const secretEl = page.getByTestId('totp-secret');
  await expect(secretEl).toBeVisible();
  await expect(page.getByRole('img', { name: /QR code/ })).toBeVisible();
  const secret = (await secretEl.innerText()).replace(/\s/g, '');
  expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
  if (screenshotPrefix) await shot(page, `${screenshotPrefix}-mfa-enrol`);
  await expectAccessible(page);

  // A wrong code first: the server's field error appears next to the field.
  const codeInput = page.getByLabel('Code from the app');
  const step = stepAt(Date.now());
  const wrong = String((Number(totpAtStep(secret, step)) + 500_000) % 1_000_000).padStart(6, '0');
  await codeInput.fill(wrong);
  await page.getByRole('button', { name: 'Verify and turn on' }).click();
  await expect(page.getByText(/the code does not match/i)).toBeVisible();
  await expect(codeInput).toBeFocused();

  const confirmStep = stepAt(Date.now());
  await codeInput.fill(totpAtStep(secret, confirmStep));
  await page.getByRole('button', { name: 'Verify and turn on' }).click();
  await expect(page.getByRole('heading', { name: 'Save your recovery codes' })).toBeVisible();
  const codes = await page.getByTestId('recovery-codes').locator('code').allInnerTexts();
  expect(codes).toHaveLength(10);
  for (const c of codes) expect(c).toMatch(/^[a-z0-9]{5}-[a-z0-9]{5}$/);
  if (screenshotPrefix) await shot(page, `${screenshotPrefix}-recovery-codes`);
  await expectAccessible(page);
  return { secret, confirmedStep: confirmStep, recoveryCodes: codes };
}

/**
 * Signs in with password and a TOTP code for a step after `afterStep` (a code is accepted once;
 * the server allows one step of clock skew, so the next step's code works right away).
 */
export async function loginWithTotp(page: Page, email: string, password: string, secret: string, afterStep: number): Promise<number> {
  await submitPassword(page, email, password);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  const step = Math.max(stepAt(Date.now()) + 1, afterStep + 1);
  await page.getByLabel('Authentication code').fill(totpAtStep(secret, step));
  await page.getByRole('button', { name: 'Verify' }).click();
  return step;
}

export async function expectOnLogin(page: Page) {
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
}

/** Fails on serious or critical WCAG 2.1 A/AA violations (axe-core) on the current page. */
export async function expectAccessible(page: Page) {
  await page.evaluate(() => document.fonts.ready);
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = serious.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n  ')}`).join('\n');
  expect(serious, report).toEqual([]);
}
