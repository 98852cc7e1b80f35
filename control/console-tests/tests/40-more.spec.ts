// More of the daily work, after the six journeys: an exact duplicate flagged on upload and its
// suggestion approved with the keyboard; unknown faces of the group photo named as new persons
// from the review queue; a minor who must never be published registered through the form and
// found with the register's search and filters. (They also give the screenshots their data.)
import { test, expect, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  GROUP, PERSON, PHOTOS, assetByName, box, data, facesOf, getJson, gotoOk, jobsIdle, openFile,
  personByName, recordConsent, screenshot, statePath, type Face,
} from './helpers';

const card = (page: Page, faceId: string) => page.locator(`article.face-card[data-face-id="${faceId}"]`);
const COPY = 'pacino-press-kit-copy.jpg';

test('upload an exact duplicate: flagged; its suggestion approved with the keyboard (j, a)', async ({ page }) => {
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered (journey 3)`).toBeTruthy();
  const original = await assetByName(path.basename(PHOTOS.approve));

  await gotoOk(page, '/admin/upload');
  await page.getByLabel('Files').setInputFiles({
    name: COPY, mimeType: 'image/jpeg', buffer: fs.readFileSync(data(PHOTOS.approve)),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  const item = page.locator('li.upload-item').filter({ hasText: COPY });
  await expect(item).toBeVisible({ timeout: 30_000 });
  // "the same file as <the original>", linked.
  await expect(item.getByText(/the same file as/i)).toBeVisible();
  await expect(item.getByRole('link', { name: path.basename(PHOTOS.approve) })).toHaveAttribute('href', `/admin/files/${original.id}`);
  await screenshot(page, 'upload');

  const copy = await assetByName(COPY);
  await jobsIdle();
  const [face] = await facesOf(copy.id, 1);
  expect(face.status).toBe('suggested');
  expect(face.candidates?.[0]?.person_id).toBe(person!.id);

  await gotoOk(page, '/admin/review');
  await expect(card(page, face.id)).toBeVisible();
  // j moves to the first card, a approves the focused one (review.js); the card goes in place.
  await page.locator('body').press('j');
  await expect(card(page, face.id)).toBeFocused();
  await page.keyboard.press('a');
  await expect(card(page, face.id)).toHaveCount(0);
  await expect.poll(async () => (await getJson<Face[]>(`/api/v1/assets/${copy.id}/faces`))[0].status).toBe('confirmed');

  // The copy's page names the original under Duplicates.
  await openFile(page, copy.id);
  const dups = page.getByRole('region', { name: 'Duplicates' });
  await expect(dups.getByRole('link', { name: path.basename(PHOTOS.approve) })).toHaveAttribute('href', `/admin/files/${original.id}`);
});

test('upload by drag and drop (a progress bar per file), and without JavaScript', async ({ page, browser }) => {
  const dropped = ['faces_dev/Jack_Nicholson_46805_crop.jpg', 'faces_dev/Jack_Nicholson_46806_crop.jpg'];
  await gotoOk(page, '/admin/upload');
  // What the browser does when files are dropped on the zone: a drop event carrying them.
  const files = dropped.map((rel) => ({ name: path.basename(rel), b64: fs.readFileSync(data(rel)).toString('base64') }));
  const transfer = await page.evaluateHandle((fs) => {
    const dt = new DataTransfer();
    for (const f of fs) {
      const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], f.name, { type: 'image/jpeg' }));
    }
    return dt;
  }, files);
  // Count the progress bars upload.js shows while sending (one per file; gone once answered).
  await page.evaluate(() => {
    (window as any).__bars = new Set<string>();
    new MutationObserver(() => document.querySelectorAll('li.upload-item progress')
      .forEach((b) => (window as any).__bars.add(b.getAttribute('aria-label'))))
      .observe(document.body, { childList: true, subtree: true });
  });
  await page.locator('#dropzone').dispatchEvent('dragenter', { dataTransfer: transfer });
  await page.locator('#dropzone').dispatchEvent('drop', { dataTransfer: transfer });
  for (const f of files) {
    const item = page.locator('li.upload-item').filter({ hasText: f.name });
    await expect(item.getByRole('link', { name: f.name })).toBeVisible({ timeout: 30_000 });
    await expect(item).toContainText(/uploaded/i);
  }
  expect((await page.evaluate(() => [...(window as any).__bars])).sort()).toEqual(files.map((f) => f.name).sort());

  // No JavaScript: the plain multipart form posts and the server answers the results page.
  const noJs = await browser.newContext({ storageState: statePath(), javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await gotoOk(plain, '/admin/upload');
  await plain.getByLabel('Files').setInputFiles(data('group/deepface_couple.jpg'));
  await plain.getByRole('button', { name: 'Upload' }).click();
  await expect(plain.locator('li.upload-item').filter({ hasText: 'deepface_couple.jpg' })).toContainText(/uploaded/i);
  await noJs.close();
  await jobsIdle();
});

test('draw a face by hand (drag on the image), then delete it', async ({ page }) => {
  const copy = await assetByName(COPY);
  await openFile(page, copy.id);
  const before = await page.locator('svg.boxes g.face').count();
  // Drag a rectangle on the image (file.js fills the four fields), then add it.
  const svg = page.locator('svg.boxes');
  const bb = (await svg.boundingBox())!;
  await page.mouse.move(bb.x + bb.width * 0.05, bb.y + bb.height * 0.05);
  await page.mouse.down();
  await page.mouse.move(bb.x + bb.width * 0.25, bb.y + bb.height * 0.2, { steps: 5 });
  await page.mouse.up();
  for (const f of ['Left (x1)', 'Top (y1)', 'Right (x2)', 'Bottom (y2)']) {
    await expect(page.getByLabel(f), f).not.toHaveValue('');
  }
  await page.getByRole('button', { name: 'Add face' }).click();
  await openFile(page, copy.id);
  await expect(page.locator('svg.boxes g.face')).toHaveCount(before + 1);
  const drawn = page.locator('li.face-row').filter({ hasText: 'drawn by hand' });
  await expect(drawn).toHaveCount(1);
  const id = await drawn.getAttribute('data-face-id');
  await expect(box(page, id!)).toHaveAttribute('data-status', 'unknown');

  page.once('dialog', (d) => void d.accept());
  await drawn.getByRole('button', { name: 'Delete face' }).click();
  await openFile(page, copy.id);
  await expect(page.locator('svg.boxes g.face')).toHaveCount(before);
});

test('name unknown faces of the group photo as new persons from the review queue', async ({ page }) => {
  const group = await assetByName(path.basename(GROUP));
  const faces = (await facesOf(group.id, 6)).sort((a, b) => a.box[0] - b.box[0]);
  const names = ['Rachel Green', 'Monica Geller'];
  await gotoOk(page, '/admin/review?tab=unknown');
  await expect(page.getByRole('link', { name: 'Not identified' })).toHaveAttribute('aria-current', 'page');
  for (const [i, name] of names.entries()) {
    const c = card(page, faces[i].id);
    await expect(c).toBeVisible();
    await c.getByLabel('Name of the new person').fill(name);
    await c.getByRole('button', { name: 'New person' }).click();
    await expect(c).toHaveCount(0);
  }
  await openFile(page, group.id);
  for (const [i, name] of names.entries()) {
    await expect(box(page, faces[i].id)).toHaveAttribute('data-status', 'confirmed');
    await expect(box(page, faces[i].id)).toContainText(name);
  }
  await expect(page.locator('svg.boxes g.face[data-status="unknown"]')).toHaveCount(faces.length - names.length);
});

test('register a minor who must never be published; find them with the register filters', async ({ page }) => {
  const name = 'Emma Geller-Green';
  await gotoOk(page, '/admin/persons/new');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Date of birth').fill('2015-04-27');
  await page.getByLabel("Guardian's name").fill('Rachel Green');
  await page.getByLabel('Never publish this person').check();
  await page.getByRole('button', { name: 'Create person' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toContainText(name);

  await gotoOk(page, '/admin/persons');
  const rows = page.getByRole('row');
  await expect(rows.filter({ hasText: name })).toHaveCount(1);
  await expect(rows.filter({ hasText: PERSON })).toHaveCount(1);
  for (const show of ['Minors', 'Never publish']) {
    await page.getByLabel('Show').selectOption({ label: show });
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows.filter({ hasText: name })).toHaveCount(1);
    await expect(rows.filter({ hasText: PERSON })).toHaveCount(0);
  }
  await page.getByLabel('Show').selectOption({ label: 'Everyone' });
  await page.getByLabel('Search').fill('Pacino');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(rows.filter({ hasText: PERSON })).toHaveCount(1);
  await expect(rows.filter({ hasText: name })).toHaveCount(0);
});

test('settings: a new channel and a longer notice period reach the other pages', async ({ page }) => {
  await gotoOk(page, '/admin/settings');
  await page.getByLabel('Add a channel').fill('newsletter');
  await page.getByLabel('Notice period (days)').fill('60');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await gotoOk(page, '/admin/settings');
  await expect(page.getByLabel('Notice period (days)')).toHaveValue('60');
  await expect(page.getByRole('group', { name: 'Channels' })).toContainText('newsletter');

  // A consent ending in 20 days is within the notice period now.
  const rachel = (await personByName('Rachel Green'))!;
  await gotoOk(page, `/admin/persons/${rachel.id}`);
  const until = new Date(Date.now() + 20 * 86_400_000).toISOString().slice(0, 10);
  await recordConsent(page, { channels: ['web', 'social'], validUntil: until, note: 'Season photo shoot' });
  await expect(page.locator('article.consent')).toHaveCount(1);

  await gotoOk(page, '/admin');
  const expiring = page.getByRole('region', { name: /notice period/i });
  await expect(expiring.getByRole('heading')).toContainText('60');
  await expect(expiring).toContainText('Rachel Green');
  const person = (await personByName(PERSON))!;
  await gotoOk(page, `/admin/persons/${person.id}`);
  await expect(page.getByRole('checkbox', { name: 'newsletter', exact: true })).toBeVisible();
  const file = await assetByName(path.basename(PHOTOS.approve));
  await openFile(page, file.id);
  const table = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Allowed' }) });
  await expect(table.getByRole('row').filter({ hasText: 'newsletter' })).toContainText('No');
});
