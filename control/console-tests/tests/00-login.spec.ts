// Journey 1: log in through /admin/login. The session is kept for the other journeys.
import { test, expect } from '@playwright/test';
import { checkA11y, statePath, sys } from './helpers';

test('the browser reaches the control plane', async ({ page }) => {
  const r = await page.goto('/health/live');
  expect(r?.status()).toBe(200);
});

test('journey 1: log in through /admin/login', async ({ page }, testInfo) => {
  // The console sends a visitor without a session to the login page.
  await page.goto('/admin');
  await expect(page).toHaveURL(/\/admin\/login/);
  await checkA11y(page, 'login', testInfo);

  // A wrong password is refused, on the same page.
  await page.getByLabel('Organisation').fill(sys.tenant);
  await page.getByLabel('E-mail').fill(sys.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/admin\/login/);
  await expect(page.getByRole('alert')).toContainText(/wrong (tenant|organisation), e-mail or password/i);

  await page.goto('/admin/login');
  await page.getByLabel('Organisation').fill(sys.tenant);
  await page.getByLabel('E-mail').fill(sys.email);
  await page.getByLabel('Password').fill(sys.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/admin\/?$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();

  const cookies = await page.context().cookies();
  expect(cookies.map((c) => c.name)).toContain('lk_session');
  await page.context().storageState({ path: statePath() });
});
