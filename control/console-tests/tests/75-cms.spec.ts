// Journeys 9 and 10, the CMS side of publishing (issue 14).
//
// 9: an admin connects the CMS: creates a webhook endpoint pointing at a real receiver that
// verifies every request with the Standard Webhooks reference library
// (deploy/webhook-receiver.py, started by deploy/browser-tests.sh), hands it the secret shown
// once, and sends a test event: the delivery log shows it delivered and the receiver verified it.
// The admin then rotates the secret: the receiver (still on the old one) refuses the next test
// event with 401, the log shows the failure; the admin reveals the new secret, gives it to the
// receiver and redelivers: delivered and verified. Finally the endpoint is disabled.
//
// 10: a consent of Al Pacino's ends in ten days: the alerts page lists it with the days left; the
// privacy officer sends the renewal request from there (a mail reaches the real SMTP server's
// Maildir) and the row then shows the request waiting; the user opts out of the daily digest and
// back in. axe-core on every page of the way.
import { test, expect, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PERSON, checkA11y, gotoOk, personByName, recordConsent, reloadUntil, today } from './helpers';

test.describe.configure({ mode: 'serial' });

function receiver(): string {
  const r = process.env.LIKENESS_WEBHOOK_RECEIVER;
  if (!r) throw new Error('LIKENESS_WEBHOOK_RECEIVER is not set: run the tests through deploy/browser-tests.sh');
  return r;
}

interface Received { verified: boolean; error: string | null; webhook_id: string; type: string; answered: number }

async function received(): Promise<Received[]> {
  const r = await fetch(`${receiver()}/_control/received`);
  expect(r.status).toBe(200);
  return (await r.json()) as Received[];
}

/** What the CMS operator does with the secret shown in the console: configure the receiver. */
async function giveSecretToReceiver(secret: string): Promise<void> {
  const r = await fetch(`${receiver()}/_control/config`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ secret }),
  });
  expect(r.status).toBe(200);
}

/** The status of the newest delivery in the endpoint's log (data-status of its first row). */
function newestDelivery(page: Page) {
  return page.locator('table.webhook-deliveries tbody tr').first();
}

let endpointPath = '';

test('journey 9a: connect the CMS: a webhook endpoint, its secret, a verified test event', async ({ page }, testInfo) => {
  const url = `${receiver()}/hooks/cms`;
  await gotoOk(page, '/admin/webhooks');
  const form = page.locator('section.new-webhook form');
  await form.getByLabel('URL (http or https)').fill(url);
  await form.getByLabel('Description (optional)').fill('CMS (browser test)');
  await form.getByRole('button', { name: 'Create endpoint' }).click();

  await expect(page.getByRole('heading', { level: 1, name: "The endpoint's signing secret" })).toBeVisible();
  const secret = await page.getByLabel('Secret', { exact: true }).inputValue();
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{20,}$/);
  await checkA11y(page, 'webhook secret', testInfo);
  await giveSecretToReceiver(secret);

  await page.getByRole('link', { name: 'Back to the endpoint' }).click();
  await expect(page.getByRole('heading', { level: 1, name: /Webhook endpoint/ })).toBeVisible();
  endpointPath = new URL(page.url()).pathname;
  expect(endpointPath).toMatch(/^\/admin\/webhooks\/[A-Za-z0-9_-]+$/);
  await expect(page.getByText(url)).toBeVisible();

  const before = (await received()).length;
  await page.getByRole('button', { name: 'Send a test event' }).click();
  await gotoOk(page, endpointPath);
  await reloadUntil(page, async () => {
    await expect(newestDelivery(page)).toHaveAttribute('data-status', 'delivered', { timeout: 1000 });
  });
  await expect(newestDelivery(page).locator('code').first()).toHaveText('webhook.test');
  const got = (await received()).slice(before);
  expect(got.length, 'the receiver got the test event').toBeGreaterThanOrEqual(1);
  expect(got.every((r) => r.verified), JSON.stringify(got)).toBe(true);
  expect(got.map((r) => r.type)).toContain('webhook.test');
  await checkA11y(page, 'webhook endpoint with a delivery', testInfo);
});

test('journey 9b: a rotated secret fails at the receiver until it gets the new one; redelivery succeeds', async ({ page }, testInfo) => {
  expect(endpointPath, 'the endpoint of journey 9a').toBeTruthy();
  await gotoOk(page, endpointPath);
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  await expect(page.getByRole('heading', { level: 1, name: "The endpoint's signing secret" })).toBeVisible();
  const rotated = await page.getByLabel('Secret', { exact: true }).inputValue();
  expect(rotated).toMatch(/^whsec_/);

  // The receiver still holds the old secret: the next event fails verification there (401).
  await gotoOk(page, endpointPath);
  const before = (await received()).length;
  await page.getByRole('button', { name: 'Send a test event' }).click();
  await gotoOk(page, endpointPath);
  await reloadUntil(page, async () => {
    await expect(newestDelivery(page).locator('td').nth(5)).toHaveText('401', { timeout: 1000 });
  });
  await expect(newestDelivery(page)).not.toHaveAttribute('data-status', 'delivered');
  const refused = (await received()).slice(before);
  expect(refused.some((r) => !r.verified && r.answered === 401), JSON.stringify(refused)).toBe(true);
  await checkA11y(page, 'webhook endpoint with a failed delivery', testInfo);

  // The admin reveals the current secret and hands it over; then redelivers the failed event.
  await page.getByRole('button', { name: 'Show secret' }).click();
  const shown = await page.getByLabel('Secret', { exact: true }).inputValue();
  expect(shown).toBe(rotated);
  await giveSecretToReceiver(shown);
  await gotoOk(page, endpointPath);
  const seq = await newestDelivery(page).getAttribute('data-seq');
  await newestDelivery(page).getByRole('button', { name: new RegExp(`^Redeliver ${seq}$`) }).click();
  await gotoOk(page, endpointPath);
  await reloadUntil(page, async () => {
    await expect(page.locator(`table.webhook-deliveries tr[data-seq="${seq}"]`)).toHaveAttribute('data-status', 'delivered', { timeout: 1000 });
  }, 45_000);
  const after = (await received()).slice(before);
  expect(after.some((r) => r.verified && r.type === 'webhook.test'), JSON.stringify(after)).toBe(true);

  // Disconnect: disabled endpoints receive nothing.
  await page.getByRole('button', { name: 'Disable' }).click();
  await gotoOk(page, endpointPath);
  await expect(page.getByRole('heading', { level: 1 }).getByText('Disabled')).toBeVisible();
});

// ---------------------------------------------------------------------------------------------
// Journey 10: alerts

function daysFromToday(n: number): string {
  const d = new Date(`${today()}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** Files in the Maildir of deploy/test-mail-servers.sh addressed to `to`. */
function mailsTo(to: string): string[] {
  const dir = process.env.LIKENESS_MAILDIR;
  if (!dir) throw new Error('LIKENESS_MAILDIR is not set: run the tests through deploy/browser-tests.sh');
  const newDir = path.join(dir, 'new');
  if (!fs.existsSync(newDir)) return [];
  return fs.readdirSync(newDir)
    .map((f) => fs.readFileSync(path.join(newDir, f), 'utf8'))
    .filter((m) => new RegExp(`^To: .*${to.replace(/[.]/g, '\\.')}`, 'mi').test(m));
}

test('journey 10: a consent ending in ten days is listed; renewal is requested from the alerts page; digest preference', async ({ page }, testInfo) => {
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered (journey 3)`).toBeTruthy();
  const lastDay = daysFromToday(10);
  await gotoOk(page, `/admin/persons/${person!.id}`);
  await recordConsent(page, { channels: ['print'], validUntil: lastDay, note: 'Ends soon (alerts journey)' });

  await gotoOk(page, '/admin/alerts');
  const row = page.locator('#alerts tbody tr').filter({ has: page.locator(`time[datetime="${lastDay}"]`) });
  await expect(row).toHaveCount(1);
  await expect(row.getByRole('link', { name: PERSON })).toBeVisible();
  await expect(row.locator('td').nth(2)).toHaveText('10');
  await expect(row.locator('td').nth(3)).toContainText('print');
  await checkA11y(page, 'alerts', testInfo);

  // Renewal: one click sends a signing request to the address of his earlier request.
  const mailsBefore = mailsTo('al.pacino@example.org').length;
  await row.getByRole('button', { name: 'Send a renewal request' }).click();
  await gotoOk(page, '/admin/alerts');
  const again = page.locator('#alerts tbody tr').filter({ has: page.locator(`time[datetime="${lastDay}"]`) });
  await expect(again.getByRole('link', { name: /Request waiting since/ })).toBeVisible();
  await expect.poll(() => mailsTo('al.pacino@example.org').length, { timeout: 30_000 }).toBeGreaterThan(mailsBefore);

  // The digest preference sticks, both ways.
  const optOut = page.getByLabel('Do not send me the daily digest e-mail');
  await optOut.check();
  await page.getByRole('button', { name: 'Save preference' }).click();
  await gotoOk(page, '/admin/alerts');
  await expect(optOut).toBeChecked();
  await optOut.uncheck();
  await page.getByRole('button', { name: 'Save preference' }).click();
  await gotoOk(page, '/admin/alerts');
  await expect(optOut).not.toBeChecked();
});
