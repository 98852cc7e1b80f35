// More of the daily work, after the six journeys: an exact duplicate flagged on upload and its
// suggestion approved with the keyboard; unknown faces of the group photo named as new persons
// from the review queue; a minor who must never be published registered through the form and
// found with the register's search and filters. (They also give the screenshots their data.)
import { test, expect, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  GROUP, PERSON, PHOTOS, assetByName, box, data, facesOf, getJson, gotoOk, jobsIdle, openFile,
  personByName, screenshot, type Face,
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
