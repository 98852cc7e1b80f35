// Journey 11: data-subject rights (issue 15). The rights policy is changed under settings and the
// record of processing opened from there; a person registered for the occasion is exported (the
// progress on their page, then the package downloaded) and erased (the consequences shown first,
// the confirmation required, then the run's progress until done); on the group photo the faces
// nobody is linked to are pixelated into a new version. axe-core on every page of the way.
import { test, expect } from '@playwright/test';
import * as path from 'node:path';
import { GROUP, assetByName, checkA11y, facesOf, gotoOk, idFromUrl, jobsIdle, reloadUntil, uploadThroughConsole } from './helpers';

test('journey 11: rights policy and the record of processing under settings', async ({ page }, testInfo) => {
  await gotoOk(page, '/admin/settings');
  await page.getByRole('link', { name: 'Data-subject rights and retention' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Data-subject rights' })).toBeVisible();
  await checkA11y(page, 'rights policy', testInfo);
  await page.getByLabel('Keep documents after an agreement ended (days)').fill('200');
  await page.getByLabel('Hide the file everywhere').check();
  await page.getByRole('button', { name: 'Save the policy' }).click();
  await expect(page.getByRole('status')).toContainText('The rights policy was saved.');
  await expect(page.getByLabel('Keep documents after an agreement ended (days)')).toHaveValue('200');
  await expect(page.getByLabel('Hide the file everywhere')).toBeChecked();
  // Back to the default decision for the next steps.
  await page.getByLabel('Pixelate their face in a new version and destroy the older versions').check();
  await page.getByRole('button', { name: 'Save the policy' }).click();
  await expect(page.getByRole('status')).toContainText('The rights policy was saved.');

  await page.getByRole('link', { name: 'Record of processing (Art. 30)' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Record of processing activities' })).toBeVisible();
  await expect(page.getByText('Biometric templates').first()).toBeVisible();
  await expect(page.getByText('200 days after the agreement ended', { exact: false })).toBeVisible();
  await expect(page.locator('#record-false-suggestion')).toContainText('%');
  await checkA11y(page, 'record of processing', testInfo);
  // The printable page is self-contained HTML.
  const r = await page.request.get('/api/v1/processing-record?format=html');
  expect(r.status()).toBe(200);
  const html = await r.text();
  expect(html).toContain('Record of processing activities');
  expect(html).not.toContain('<script');
});

test('journey 11: a person exported, then erased after the consequences were shown', async ({ page }, testInfo) => {
  const name = `Erin Rights ${Date.now()}`;
  await gotoOk(page, '/admin/persons/new');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('E-mail', { exact: true }).fill('erin.rights@example.org');
  await page.getByRole('button', { name: 'Create person' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toContainText(name);
  const personId = idFromUrl(page.url(), 'persons');

  // Export: requested, built in the background, then downloaded.
  await page.getByRole('button', { name: 'Export everything about this person' }).click();
  await expect(page.getByRole('status')).toContainText('The export was requested');
  await reloadUntil(page, async () => {
    await expect(page.locator('tr[data-export-status="ready"]')).toHaveCount(1, { timeout: 1_000 });
  }, 60_000);
  await checkA11y(page, 'person (export ready)', testInfo);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('tr[data-export-status="ready"]').getByRole('link', { name: 'Download' }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/\.zip$/);

  // Erasure: the consequences first; the confirmation is required.
  await page.getByRole('link', { name: 'Review the consequences of erasing this person' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Erase this person?');
  await expect(page.getByText('They appear in no file.')).toBeVisible();
  await checkA11y(page, 'erasure preview', testInfo);
  const confirm = page.getByLabel('I understand that this cannot be undone');
  await expect(confirm).toHaveAttribute('required', '');
  await confirm.check();
  await page.getByRole('button', { name: 'Erase this person' }).click();
  await expect(page).toHaveURL(/\/admin\/erasures\//);
  await reloadUntil(page, async () => {
    await expect(page.locator('#erasure-run')).toHaveAttribute('data-status', 'done', { timeout: 1_000 });
  }, 60_000);
  await expect(page.getByText('This person was erased.')).toBeVisible();
  await expect(page.getByText(name)).toHaveCount(0);
  await checkA11y(page, 'erasure run', testInfo);
  // The register no longer shows them.
  await gotoOk(page, '/admin/persons');
  await expect(page.getByText(name)).toHaveCount(0);
  expect(personId).not.toBe('');
});

test('journey 11: the unlinked faces of a group photo pixelated', async ({ page }, testInfo) => {
  await uploadThroughConsole(page, [GROUP]);
  await jobsIdle();
  const asset = await assetByName(path.basename(GROUP));
  await facesOf(asset.id, 1);
  await gotoOk(page, `/admin/files/${asset.id}`);
  const button = page.getByRole('button', { name: /Pixelate the unlinked faces/ });
  await expect(button).toBeVisible();
  await checkA11y(page, 'file (faces to pixelate)', testInfo);
  await button.click();
  await expect(page.getByRole('status')).toContainText('The unlinked faces were pixelated into a new version.');
  await expect(page.getByRole('button', { name: /Pixelate the unlinked faces/ })).toHaveCount(0);
  // A new version is listed.
  await expect(page.locator('#versions tbody tr')).toHaveCount(2);
});
