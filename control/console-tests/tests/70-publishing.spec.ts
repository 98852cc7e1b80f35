// Journey 8, share links (issue 14): staff record a web consent for Al Pacino, so the file he was
// approved on (journey 3) turns allowed on web; from the file's page ("Share") they create a
// share link for the web channel with downloads; the link is opened in a second browser context
// (a visitor without a session) and shows the image. Staff then withdraw that consent on his
// page, and the visitor's link stops serving the file within a second: the page answers 451
// "No longer available" and the image URL 451. axe-core on the shares pages and the portal.
import { test, expect, type Browser, type BrowserContext } from '@playwright/test';
import * as path from 'node:path';
import {
  PERSON, PHOTOS, assetByName, checkA11y, expectCompliance, gotoOk, openFile, personByName,
  recordConsent,
} from './helpers';

test.describe.configure({ mode: 'serial' });

const NOTE = 'For the press kit (share link journey)';
const TITLE = 'Press kit (browser test)';

/** The share link, from the page that showed it once. */
let shareUrl = '';

async function theFile() {
  return assetByName(path.basename(PHOTOS.approve));
}

/** A visitor's browser: no session of the console. */
async function visitorContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ storageState: { cookies: [], origins: [] }, locale: 'en-GB', timezoneId: 'UTC' });
}

test('journey 8a: a web consent makes the file allowed; staff share it from the file page', async ({ page }, testInfo) => {
  const asset = await theFile();
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered (journey 3)`).toBeTruthy();

  // A consent for web, recorded by staff (the earlier ones for web were withdrawn).
  await gotoOk(page, `/admin/persons/${person!.id}`);
  await recordConsent(page, { channels: ['web'], note: NOTE });
  await expect(page.locator('article.consent').filter({ hasText: NOTE })).toHaveAttribute('data-state', /^(valid|active)$/);
  await openFile(page, asset.id);
  await expectCompliance(page, { web: 'Yes' });

  // "Share" on the file's page opens the form with the file filled in.
  await page.getByRole('link', { name: 'Share', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Share links' })).toBeVisible();
  const form = page.locator('#new-share form');
  await expect(form.getByLabel('Files (IDs, one per line)')).toHaveValue(asset.id);
  await checkA11y(page, 'shares', testInfo);
  await form.getByLabel('Title').fill(TITLE);
  await form.getByLabel('Channel').selectOption('web');
  await form.getByLabel('Visitors may download the files').check();
  await form.getByRole('button', { name: 'Create share link' }).click();

  await expect(page.getByRole('heading', { level: 1, name: 'Share link created' })).toBeVisible();
  await expect(page.getByText('shown only this once')).toBeVisible();
  shareUrl = await page.getByLabel('Link', { exact: true }).inputValue();
  expect(shareUrl).toMatch(/\/s\/[A-Za-z0-9_-]{43}$/);
  await checkA11y(page, 'share created', testInfo);

  await page.getByRole('link', { name: "Go to the share's page" }).click();
  await expect(page.getByRole('heading', { level: 1, name: TITLE })).toBeVisible();
  await expect(page.locator(`table.share-files tr[data-asset-id="${asset.id}"]`)).toHaveAttribute('data-served', 'true');
  await checkA11y(page, 'share', testInfo);
});

test('journey 8b: the visitor sees the file; the consent is withdrawn; the link stops within a second', async ({ page, browser }, testInfo) => {
  expect(shareUrl, 'the link of journey 8a').toBeTruthy();
  const asset = await theFile();
  const person = (await personByName(PERSON))!;
  const link = new URL(shareUrl);
  const portal = link.pathname;
  const image = `${portal}/${asset.id}/small.jpg`;

  const visitor = await visitorContext(browser);
  try {
    const v = await visitor.newPage();
    const r = await v.goto(portal);
    expect(r?.status()).toBe(200);
    await expect(v.getByRole('heading', { level: 1, name: TITLE })).toBeVisible();
    const img = v.locator(`li.share-file[data-asset-id="${asset.id}"] img`);
    await expect(img).toBeVisible();
    // The image really loaded (not a broken picture).
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth > 0)).toBe(true);
    await expect(v.getByRole('link', { name: /Download/ })).toBeVisible();
    await checkA11y(v, 'public: share portal', testInfo);
    expect((await visitor.request.get(image)).status()).toBe(200);

    // Staff withdraw the consent on his page (the staff withdrawal).
    await gotoOk(page, `/admin/persons/${person.id}`);
    const consent = page.locator('article.consent').filter({ hasText: NOTE });
    await expect(consent).toHaveAttribute('data-state', /^(valid|active)$/);
    await consent.getByLabel('Reason for the withdrawal').fill('Withdrawn by phone');
    page.once('dialog', (d) => void d.accept());
    const withdrawn = page.waitForResponse((res) =>
      res.request().method() === 'POST' && /\/consents\/[^/]+\/withdraw$/.test(new URL(res.url()).pathname));
    await consent.getByRole('button', { name: 'Withdraw' }).click();
    const res = await withdrawn;
    expect(res.status()).toBeLessThan(400);
    const t0 = Date.now();

    // Within a second the link no longer serves the file.
    await expect
      .poll(async () => (await visitor.request.get(image)).status(), {
        message: 'the shared image to answer 451 after the withdrawal', timeout: 1_000, intervals: [50],
      })
      .toBe(451);
    const took = Date.now() - t0;
    console.log(`share link stopped serving ${took} ms after the withdrawal's answer`);
    expect(took).toBeLessThanOrEqual(1_000);

    // The portal of this one-file share says so, with 451.
    const again = await v.goto(portal);
    expect(again?.status()).toBe(451);
    await expect(v.getByRole('heading', { level: 1, name: 'No longer available' })).toBeVisible();
    await expect(v.locator('li.share-file')).toHaveCount(0);
    await checkA11y(v, 'public: share no longer available', testInfo);
  } finally {
    await visitor.close();
  }

  // Staff: the share's page shows the file as not shown, and the access log has the denial.
  await gotoOk(page, '/admin/shares');
  await page.getByRole('link', { name: TITLE }).first().click();
  await expect(page.locator(`table.share-files tr[data-asset-id="${asset.id}"]`)).toHaveAttribute('data-served', 'false');
  await expect(page.locator('table.share-log tr[data-outcome="denied"]').first()).toBeVisible();
  await openFile(page, asset.id);
  await expectCompliance(page, { web: 'No' });
});
