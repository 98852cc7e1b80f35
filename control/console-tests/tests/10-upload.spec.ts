// Journey 2: upload the group photo through /admin/upload, open the file, see one box per detected
// face in the <svg class="boxes"> overlay, each labelled.
import { test, expect } from '@playwright/test';
import * as path from 'node:path';
import { gotoOk, GROUP, assetByName, box, checkA11y, facesOf, jobsIdle, openFile, reloadUntil, uploadThroughConsole } from './helpers';

test('journey 2: upload the group photo and see a box on every face', async ({ page }, testInfo) => {
  await gotoOk(page, '/admin/upload');
  await expect(page.getByRole('heading', { level: 1, name: 'Upload' })).toBeVisible();
  await checkA11y(page, 'upload (empty)', testInfo);

  await uploadThroughConsole(page, [GROUP]);
  const filename = path.basename(GROUP);
  await expect(page.getByText(/error/i)).toHaveCount(0);
  await checkA11y(page, 'upload (results)', testInfo);

  // Detection runs in the background (the real matcher): wait for it, then open the file.
  const asset = await assetByName(filename);
  await jobsIdle();
  const faces = await facesOf(asset.id, 1);
  expect(faces.length, 'faces the matcher found on the group photo').toBe(6);

  // From the files list to the file page.
  await gotoOk(page, '/admin/files');
  await expect(page.getByRole('heading', { level: 1, name: 'Files' })).toBeVisible();
  await page.getByRole('link', { name: filename }).first().click();
  await expect(page).toHaveURL(new RegExp(`/admin/files/${asset.id}`));

  await reloadUntil(page, async () => {
    await expect(page.locator('svg.boxes g.face')).toHaveCount(faces.length, { timeout: 1_000 });
  });
  for (const f of faces) {
    const g = box(page, f.id);
    await expect(g).toHaveAttribute('data-status', 'unknown');
    await expect(g).toContainText('Unknown');
    // The box is drawn where the face is: a visible rectangle of some size.
    const bb = await g.boundingBox();
    expect(bb && bb.width > 5 && bb.height > 5, `box of face ${f.id}: ${JSON.stringify(bb)}`).toBeTruthy();
  }
  // The image itself is shown (loaded, not broken).
  const img = page.locator('main img').first();
  await expect(img).toBeVisible();
  expect(await img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth > 0)).toBe(true);

  await openFile(page, asset.id);
  await checkA11y(page, 'file (group photo)', testInfo);
});
