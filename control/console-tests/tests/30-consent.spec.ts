// Journeys 5 and 6: on the file where the person was approved (journey 3), set the legal basis to
// consent; record a consent for web, print and social as staff with a scanned document and watch
// the file turn allowed on those channels; withdraw it and watch the file turn not allowed.
import { test, expect, type Page } from '@playwright/test';
import * as path from 'node:path';
import {
  gotoOk, PERSON, PHOTOS, assetByName, checkA11y, consentPdf, expectCompliance, openFile, personByName,
  recordConsent,
} from './helpers';

test.describe.configure({ mode: 'serial' });

const CHANNELS = ['web', 'print', 'social'];
const SCAN = 'signed-consent-al-pacino.pdf';

async function theFile() {
  return assetByName(path.basename(PHOTOS.approve));
}

/** The consent on the person page that carries the scanned document. */
function scannedConsent(page: Page) {
  return page.locator('article.consent').filter({ hasText: SCAN });
}

test('journey 5: record a consent with a scanned document; the file turns allowed', async ({ page }, testInfo) => {
  const asset = await theFile();
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered (journey 3)`).toBeTruthy();

  // The file shows the person (confirmed in journey 3); its legal basis is consent.
  await openFile(page, asset.id);
  const basis = page.locator('form').filter({ has: page.getByLabel('Legal basis') });
  await basis.getByLabel('Legal basis').selectOption('consent');
  await basis.getByRole('button').first().click();
  await openFile(page, asset.id);
  await expect(page.getByLabel('Legal basis')).toHaveValue('consent');
  // Only the person's first consent (internal, covering face matching) is in force.
  await expectCompliance(page, { internal: 'Yes', web: 'No', print: 'No', social: 'No' });

  // On the person's page, as staff: a signed paper form, scanned.
  await gotoOk(page, `/admin/persons/${person!.id}`);
  await recordConsent(page, {
    channels: CHANNELS,
    note: 'Signed at the photo shoot',
    document: { name: SCAN, mimeType: 'application/pdf', buffer: consentPdf(PERSON, CHANNELS) },
  });
  await expect(page.getByRole('button', { name: 'Withdraw' })).toHaveCount(2);
  await expect(scannedConsent(page)).toBeVisible();
  await expect(scannedConsent(page)).toHaveAttribute('data-state', /^(valid|active)$/);
  await expect(scannedConsent(page).getByRole('link', { name: SCAN })).toBeVisible();
  await checkA11y(page, 'person', testInfo);

  await openFile(page, asset.id);
  await expectCompliance(page, { internal: 'Yes', web: 'Yes', print: 'Yes', social: 'Yes' });
});

test('journey 6: withdraw the consent; the file turns not allowed', async ({ page }) => {
  const asset = await theFile();
  const person = (await personByName(PERSON))!;
  await gotoOk(page, `/admin/persons/${person.id}`);
  const consent = scannedConsent(page);
  await expect(consent).toHaveAttribute('data-state', /^(valid|active)$/);
  await consent.getByLabel('Reason for the withdrawal').fill('Withdrawn by letter');
  // The button asks for confirmation (console.js); accept it.
  page.once('dialog', (d) => void d.accept());
  await consent.getByRole('button', { name: 'Withdraw' }).click();
  await expect(consent).toHaveAttribute('data-state', 'withdrawn');
  await gotoOk(page, `/admin/persons/${person.id}`);
  await expect(page.getByRole('button', { name: 'Withdraw' })).toHaveCount(1);
  await expect(scannedConsent(page)).toHaveAttribute('data-state', 'withdrawn');
  await expect(scannedConsent(page)).toContainText('Withdrawn by letter');

  await openFile(page, asset.id);
  await expectCompliance(page, { internal: 'Yes', web: 'No', print: 'No', social: 'No' });
  // The reasons say why, per channel.
  const table = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Allowed' }) });
  for (const ch of CHANNELS) {
    await expect(table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: ch, exact: true }) })).toContainText(/withdrawn/i);
  }
});
