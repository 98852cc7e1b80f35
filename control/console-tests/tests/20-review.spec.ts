// Journeys 3 and 4: approve a suggestion in the review queue; reject one and see the rejection stay
// after a re-matching run. The suggestion comes from the real matcher: a person with a consent
// covering face matching is confirmed on a first photo (which enrols them), then two more photos
// of the same person are uploaded and the matcher suggests them.
import { test, expect, type Page } from '@playwright/test';
import * as path from 'node:path';
import {
  gotoOk, PERSON, PHOTOS, assetByName, box, checkA11y, facesOf, getJson, jobsIdle, openFile,
  personByName, recordConsent, reloadUntil, screenshot, statePath, uploadThroughConsole, type Face,
} from './helpers';

test.describe.configure({ mode: 'serial' });

const card = (page: Page, faceId: string) => page.locator(`article.face-card[data-face-id="${faceId}"]`);

async function faceOfPhoto(rel: string): Promise<Face> {
  const asset = await assetByName(path.basename(rel));
  const [face] = await facesOf(asset.id, 1);
  return { ...face, asset_id: asset.id } as Face & { asset_id: string };
}

async function faceNow(faceId: string, assetId: string): Promise<Face> {
  const faces = await getJson<Face[]>(`/api/v1/assets/${assetId}/faces`);
  const f = faces.find((x) => x.id === faceId);
  if (!f) throw new Error(`face ${faceId} is gone from ${assetId}`);
  return f;
}

test('setup: register the person, record a consent covering face matching, confirm their face on a file', async ({ page }) => {
  await gotoOk(page, '/admin/persons/new');
  await page.getByLabel('Name', { exact: true }).fill(PERSON);
  await page.getByRole('button', { name: 'Create person' }).click();
  await expect(page).toHaveURL(/\/admin\/persons\/[^/]+$/);
  await expect(page.getByRole('heading', { level: 1 })).toContainText(PERSON);

  // Internal use only, but it covers face matching: the matcher may learn the face.
  await recordConsent(page, { channels: ['internal'], coversFaceMatching: true, note: 'Staff badge photo' });
  await expect(page.getByRole('button', { name: 'Withdraw' })).toHaveCount(1);

  await uploadThroughConsole(page, [PHOTOS.enrol]);
  const asset = await assetByName(path.basename(PHOTOS.enrol));
  const [face] = await facesOf(asset.id, 1);

  // Link the face to the person on the file page: offer persons by name, pick, Link.
  await openFile(page, asset.id);
  await page.getByLabel('Persons to offer (search by name)').fill(PERSON);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const row = page.locator(`li.face-row[data-face-id="${face.id}"]`);
  await row.getByLabel('Person', { exact: true }).selectOption({ label: PERSON });
  await row.getByRole('button', { name: 'Link' }).click();
  await reloadUntil(page, async () => {
    await expect(box(page, face.id)).toHaveAttribute('data-status', 'confirmed', { timeout: 1_000 });
  });
  await expect(box(page, face.id)).toContainText(PERSON);
  expect((await faceNow(face.id, asset.id)).status).toBe('confirmed');
  // The consent covers face matching: the face is enrolled in the matcher.
  await expect.poll(async () => (await faceNow(face.id, asset.id)).template_enrolled).toBe(true);
});

test('journey 3: approve a suggestion in the review queue', async ({ page }, testInfo) => {
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered`).toBeTruthy();
  // Both photos at once; the matcher suggests the enrolled person on each.
  await uploadThroughConsole(page, [PHOTOS.approve, PHOTOS.reject]);
  await jobsIdle();
  const approve = await faceOfPhoto(PHOTOS.approve) as Face & { asset_id: string };
  const reject = await faceOfPhoto(PHOTOS.reject) as Face & { asset_id: string };
  for (const f of [approve, reject]) {
    expect(f.status, `face on ${f.asset_id}`).toBe('suggested');
    expect(f.candidates?.[0]?.person_id).toBe(person!.id);
  }

  await gotoOk(page, '/admin/review');
  await expect(page.getByRole('heading', { level: 1, name: 'Review queue' })).toBeVisible();
  await expect(card(page, approve.id)).toBeVisible();
  await expect(card(page, reject.id)).toBeVisible();
  await expect(card(page, approve.id)).toContainText(PERSON);
  await screenshot(page, 'review');
  await checkA11y(page, 'review', testInfo);

  // With JavaScript the decision is taken in place: the card goes, the page stays.
  const url = page.url();
  await card(page, approve.id).getByRole('button', { name: 'Approve' }).click();
  await expect(card(page, approve.id)).toHaveCount(0);
  expect(page.url()).toBe(url);
  await expect.poll(async () => (await faceNow(approve.id, approve.asset_id)).status).toBe('confirmed');
  await gotoOk(page, '/admin/review');
  await expect(card(page, approve.id)).toHaveCount(0);
  await expect(card(page, reject.id)).toBeVisible();

  // The file page labels the face with the person's name.
  await openFile(page, approve.asset_id);
  await expect(box(page, approve.id)).toHaveAttribute('data-status', 'confirmed');
  await expect(box(page, approve.id)).toContainText(PERSON);
});

test('journey 4: reject a suggestion; it stays rejected after re-matching', async ({ page, browser }) => {
  const person = (await personByName(PERSON))!;
  const reject = await faceOfPhoto(PHOTOS.reject) as Face & { asset_id: string };
  expect(reject.status).toBe('suggested');

  // This one without JavaScript: the plain form posts and the server redirects back to the queue.
  const noJs = await browser.newContext({ storageState: statePath(), javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await gotoOk(plain, '/admin/review');
  await card(plain, reject.id).getByRole('button', { name: 'Reject' }).click();
  await expect(plain).toHaveURL(/\/admin\/review/);
  await expect(card(plain, reject.id)).toHaveCount(0);
  await noJs.close();
  await expect.poll(async () => (await faceNow(reject.id, reject.asset_id)).status).not.toBe('suggested');
  await gotoOk(page, '/admin/review');
  await expect(card(page, reject.id)).toHaveCount(0);

  // A re-matching run over the whole archive: the matcher would suggest the person again (the
  // approved face is enrolled too now), but a human's rejection is never overwritten.
  const runsBefore = (await getJson<any[]>('/api/v1/rematch')).length;
  await gotoOk(page, '/admin/rematch');
  await page.getByRole('button', { name: 'Start re-matching' }).click();
  let runId = '';
  await expect.poll(async () => {
    const runs: any[] = await getJson<any[]>('/api/v1/rematch');
    runId = runs.length > runsBefore ? runs[0].id : '';
    return runId;
  }, { message: 'a new re-matching run' }).not.toBe('');
  // The runs table shows it with its progress until it is done (admin.js refreshes the table;
  // a reload does the same without JavaScript).
  await gotoOk(page, '/admin/rematch');
  const row = page.locator(`table.runs tr[data-run-id="${runId}"]`);
  await reloadUntil(page, async () => {
    await expect(row).toHaveAttribute('data-status', 'done', { timeout: 2_000 });
  }, 60_000);
  const total = (await getJson<any>(`/api/v1/rematch/${runId}`)).total;
  expect(total, 'files in the run').toBeGreaterThanOrEqual(4);
  await expect(row).toContainText(`${total} files of ${total}`);
  await expect(row).toContainText(/[1-9]\d* human decisions kept/);
  await jobsIdle();

  const after = await faceNow(reject.id, reject.asset_id);
  expect(after.status).not.toBe('suggested');
  expect(after.status).not.toBe('confirmed');
  expect((after.candidates ?? []).map((c) => c.person_id)).not.toContain(person.id);

  await gotoOk(page, '/admin/review');
  await expect(card(page, reject.id)).toHaveCount(0);
  await openFile(page, reject.asset_id);
  await expect(box(page, reject.id)).not.toHaveAttribute('data-status', /suggested|confirmed/);
  await expect(box(page, reject.id)).not.toContainText(PERSON);
});
