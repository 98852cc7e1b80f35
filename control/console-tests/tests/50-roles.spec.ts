// What a role may not do is neither shown nor allowed: the admin creates a viewer and an editor on
// /admin/users; each logs in through the login page and sees only what their role allows.
import { test, expect, type Browser, type Page } from '@playwright/test';
import * as path from 'node:path';
import { GROUP, PERSON, assetByName, checkA11y, gotoOk, personByName, sys } from './helpers';

test.describe.configure({ mode: 'serial' });

const USERS = {
  viewer: { email: `viewer@${'console'}.test`, role: 'viewer', password: 'viewer-pw-0123456789' },
  editor: { email: `editor@${'console'}.test`, role: 'editor', password: 'editor-pw-0123456789' },
};

async function loginAs(browser: Browser, u: { email: string; password: string }): Promise<Page> {
  const ctx = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const page = await ctx.newPage();
  await gotoOk(page, '/admin/login');
  await page.getByLabel('Organisation').fill(sys.tenant);
  await page.getByLabel('E-mail').fill(u.email);
  await page.getByLabel('Password').fill(u.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
  return page;
}

const nav = (page: Page) => page.getByRole('navigation', { name: 'Main' });

test('the admin creates a viewer and an editor on /admin/users', async ({ page }, testInfo) => {
  await gotoOk(page, '/admin/users');
  for (const u of Object.values(USERS)) {
    const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Create user' }) });
    await form.getByLabel('E-mail').fill(u.email);
    await form.getByLabel('Name').fill(u.role === 'viewer' ? 'Vera Viewer' : 'Ed Editor');
    await form.getByLabel('Role').selectOption(u.role);
    await form.getByLabel('Initial password').fill(u.password);
    await form.getByRole('button', { name: 'Create user' }).click();
    await expect(page.getByRole('row').filter({ hasText: u.email })).toHaveCount(1);
  }
  await checkA11y(page, 'users (three users)', testInfo);
});

test('a viewer sees files and their status, no personal data and no actions', async ({ browser }) => {
  const page = await loginAs(browser, USERS.viewer);
  await expect(nav(page).getByRole('link', { name: 'Files' })).toBeVisible();
  for (const hidden of ['Review queue', 'Upload', 'Persons', 'Re-matching', 'Audit log', 'Settings', 'Users', 'Roles']) {
    await expect(nav(page).getByRole('link', { name: hidden, exact: true }), hidden).toHaveCount(0);
  }
  // Not shown, and not allowed either.
  for (const url of ['/admin/upload', '/admin/persons', '/admin/review', '/admin/settings', '/admin/users']) {
    const r = await page.goto(url);
    expect(r?.status(), `viewer GET ${url}`).toBe(403);
  }
  const group = await assetByName(path.basename(GROUP));
  await gotoOk(page, `/admin/files/${group.id}`);
  await expect(page.locator('svg.boxes g.face')).toHaveCount(6);
  await expect(page.getByText('Rachel Green')).toHaveCount(0); // a name is personal data
  for (const button of ['Link', 'Approve', 'Add face', 'Save']) {
    await expect(page.getByRole('button', { name: button, exact: true }), button).toHaveCount(0);
  }
  await expect(page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Allowed' }) })).toBeVisible();
  await page.context().close();
});

test('an editor reviews and registers persons, but records no consent and changes no settings', async ({ browser }) => {
  const page = await loginAs(browser, USERS.editor);
  for (const shown of ['Review queue', 'Upload', 'Persons']) {
    await expect(nav(page).getByRole('link', { name: shown, exact: true }), shown).toBeVisible();
  }
  for (const hidden of ['Settings', 'Users', 'Roles', 'Audit log']) {
    await expect(nav(page).getByRole('link', { name: hidden, exact: true }), hidden).toHaveCount(0);
  }
  const r = await page.goto('/admin/settings');
  expect(r?.status()).toBe(403);
  const person = (await personByName(PERSON))!;
  await gotoOk(page, `/admin/persons/${person.id}`);
  await expect(page.getByRole('heading', { level: 1 })).toContainText(PERSON);
  await expect(page.getByRole('button', { name: 'Record consent' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Withdraw' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Save changes' })).toBeVisible();
  await page.context().close();
});
