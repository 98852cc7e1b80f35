// Journey 7, digital signing (issue 13): staff write an agreement template and ask Al Pacino for
// consent from his page; the test reads the mail from the real SMTP server's Maildir, opens the
// link in a second browser context (the person, on a phone), ticks the scopes, reads the code
// mail and types the code; staff see the file turn allowed. Then the person opens the receipt
// link from the next mail and withdraws with a code; staff see the file turn not allowed.
// axe-core runs on the new console pages and on every public page of the way.
import { test, expect, devices, type Browser, type BrowserContext, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  PERSON, PHOTOS, assetByName, checkA11y, expectCompliance, gotoOk, openFile, personByName,
} from './helpers';

test.describe.configure({ mode: 'serial' });

const TEMPLATE = 'Photo consent (browser test)';
const TITLE = 'Photos of you in our image bank';
const EMAIL = 'al.pacino@example.org';
const CHANNELS = ['web', 'print', 'social'];

// ---------------------------------------------------------------------------------------------
// The Maildir of deploy/test-mail-servers.sh (aiosmtpd): one file per mail in new/.

interface Mail { file: string; to: string; subject: string; text: string }

function maildir(): string {
  const d = process.env.LIKENESS_MAILDIR;
  if (!d) throw new Error('LIKENESS_MAILDIR is not set: run the tests through deploy/browser-tests.sh');
  return d;
}

function decodeQuotedPrintable(s: string): Buffer {
  const bytes: number[] = [];
  const t = s.replace(/=\r?\n/g, '');
  for (let i = 0; i < t.length; i++) {
    if (t[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(t.slice(i + 1, i + 3))) {
      bytes.push(parseInt(t.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(t[i], 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2047 encoded words (`=?utf-8?q?...?=`, `=?utf-8?b?...?=`). */
function decodeWords(v: string): string {
  return v
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_, _cs, enc: string, data: string) =>
      enc.toLowerCase() === 'b'
        ? Buffer.from(data, 'base64').toString('utf8')
        : decodeQuotedPrintable(data.replace(/_/g, ' ')).toString('utf8'));
}

function splitHeaders(raw: string): { headers: Record<string, string>; body: string } {
  const m = raw.match(/\r?\n\r?\n/);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice((m.index ?? 0) + m[0].length) : '';
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] ??= line.slice(i + 1).trim();
  }
  return { headers, body };
}

/** The text/plain parts of a MIME entity, decoded. */
function textParts(raw: string): string[] {
  const { headers, body } = splitHeaders(raw);
  const type = (headers['content-type'] ?? 'text/plain').toLowerCase();
  if (type.startsWith('multipart/')) {
    const b = (headers['content-type'] ?? '').match(/boundary="?([^";]+)"?/i)?.[1];
    if (!b) return [];
    return body.split(`--${b}`).slice(1).filter((p) => !p.startsWith('--')).flatMap((p) => textParts(p.replace(/^\r?\n/, '')));
  }
  if (!type.startsWith('text/plain')) return [];
  const enc = (headers['content-transfer-encoding'] ?? '').toLowerCase();
  if (enc === 'base64') return [Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')];
  if (enc === 'quoted-printable') return [decodeQuotedPrintable(body).toString('utf8')];
  return [body];
}

function readMails(): Mail[] {
  const dir = path.join(maildir(), 'new');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((f) => {
    const raw = fs.readFileSync(path.join(dir, f), 'latin1');
    const { headers } = splitHeaders(raw);
    return {
      file: f,
      to: decodeWords(headers['to'] ?? ''),
      subject: decodeWords(headers['subject'] ?? ''),
      text: textParts(raw).join('\n'),
    };
  });
}

/** Mails already used by this journey: each step waits for a new one. */
const used = new Set<string>();

/** Waits for a new mail to `to` whose subject contains `subject`. */
async function waitForMail(to: string, subject: string): Promise<Mail> {
  let found: Mail | undefined;
  await expect
    .poll(() => {
      found = readMails().find((m) => !used.has(m.file) && m.to.toLowerCase().includes(to) && m.subject.includes(subject));
      return !!found;
    }, { message: `a mail to ${to}: "${subject}..." in ${maildir()}`, timeout: 30_000, intervals: [200, 300, 500] })
    .toBe(true);
  used.add(found!.file);
  return found!;
}

function linkIn(mail: Mail, part: string): string {
  const link = mail.text.match(/https?:\/\/\S+/g)?.find((l) => l.includes(part));
  expect(link, `a link to ${part} in "${mail.subject}":\n${mail.text}`).toBeTruthy();
  return link!;
}

function codeIn(mail: Mail): string {
  const code = mail.text.match(/\bis (\d{6})\b/)?.[1];
  expect(code, `a 6-digit code in "${mail.subject}":\n${mail.text}`).toBeTruthy();
  return code!;
}

/** The person's own browser: a phone, no session of the console. */
async function personContext(browser: Browser): Promise<BrowserContext> {
  const { defaultBrowserType: _ignored, ...phone } = devices['Pixel 5'];
  return browser.newContext({ ...phone, storageState: { cookies: [], origins: [] }, locale: 'en-GB', timezoneId: 'UTC' });
}

async function theFile() {
  return assetByName(path.basename(PHOTOS.approve));
}

/** The request row on the requests list for our template. */
function requestRows(page: Page) {
  return page.locator('table.signing-requests tbody tr').filter({ hasText: TITLE });
}

// ---------------------------------------------------------------------------------------------

test('journey 7a: staff write a template (preview, scopes, face matching apart) and the console pages pass axe', async ({ page }, testInfo) => {
  await gotoOk(page, '/admin/templates');
  await expect(page.getByRole('heading', { level: 1, name: 'Agreement templates' })).toBeVisible();
  await checkA11y(page, 'templates', testInfo);
  await page.getByRole('link', { name: 'New template' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'New agreement template' })).toBeVisible();

  await page.getByLabel('Name', { exact: true }).fill(TEMPLATE);
  await page.getByLabel('Title', { exact: true }).fill(TITLE);
  await page.getByLabel('Agreement text').fill(
    '# Your photos\n\nWe would like to use **photos of you** on the channels you choose below.\n\n' +
    '- You choose each channel.\n- You can withdraw at any time through your receipt.\n');
  await page.getByRole('checkbox', { name: 'Offer internal' }).uncheck();
  await page.getByRole('checkbox', { name: 'Mandatory: web' }).check();
  await page.getByLabel('Label for web').fill('Our website');
  await page.getByLabel('Text of the face-matching choice').fill('You allow us to recognise your face in new photos.');
  await page.getByLabel('Valid for (days)').fill('365');
  await page.getByLabel('Text shown after signing').fill('Thank you. Your choices apply from now on.');

  // The preview renders the Markdown without saving; the form keeps what was typed.
  await page.getByRole('button', { name: 'Show a preview' }).click();
  const preview = page.locator('#preview .agreement-text');
  await expect(preview.locator('strong')).toHaveText('photos of you');
  await expect(preview.locator('li')).toHaveCount(2);
  await expect(page.getByLabel('Label for web')).toHaveValue('Our website');
  await checkA11y(page, 'template form with preview', testInfo);

  await page.getByRole('button', { name: 'Create template' }).click();
  await expect(page.getByText('Template created.')).toBeVisible();
  await expect(page.getByRole('heading', { level: 1, name: TEMPLATE })).toBeVisible();
  await expect(page.locator('table.versions tbody tr')).toHaveCount(1);
  await checkA11y(page, 'template', testInfo);

  await gotoOk(page, '/admin/outbox');
  await expect(page.getByRole('heading', { level: 1, name: 'Outbox' })).toBeVisible();
  await checkA11y(page, 'outbox', testInfo);
});

test('journey 7b: ask for consent from the person page, sign as the person on a phone, the file turns allowed', async ({ page, browser }, testInfo) => {
  const asset = await theFile();
  const person = await personByName(PERSON);
  expect(person, `${PERSON} registered (journey 3)`).toBeTruthy();
  // Journey 6 withdrew his consent for these channels.
  await openFile(page, asset.id);
  await expectCompliance(page, { web: 'No', print: 'No', social: 'No' });

  // Staff give him an e-mail address, then ask for consent with the file shown.
  await gotoOk(page, `/admin/persons/${person!.id}`);
  await page.getByLabel('E-mail', { exact: true }).fill(EMAIL);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByText('Saved.')).toBeVisible();
  const ask = page.locator('form.ask-consent');
  await ask.getByLabel('Agreement template').selectOption({ label: `${TEMPLATE} (${TITLE})` });
  await expect(ask.getByRole('radio', { name: new RegExp(`E-mail to ${EMAIL.replace(/\./g, '\\.')}`) })).toBeChecked();
  await ask.getByRole('checkbox', { name: path.basename(PHOTOS.approve) }).check();
  await checkA11y(page, 'person with the ask-for-consent form', testInfo);
  await ask.getByRole('button', { name: 'Send the request' }).click();
  await expect(page.getByText('Request sent.')).toBeVisible();
  await expect(page.locator('#signing-requests tbody tr').first()).toHaveAttribute('data-status', 'sent');

  // The requests list and the request's page (its mail delivered by the outbox).
  await gotoOk(page, '/admin/requests');
  await expect(requestRows(page).first()).toHaveAttribute('data-status', 'sent');
  await expect(requestRows(page).first()).toContainText('E-mail');
  await checkA11y(page, 'requests', testInfo);

  // The mail, from the SMTP server.
  const invite = await waitForMail(EMAIL, 'asks for your consent');
  const signLink = linkIn(invite, '/sign/');

  const phone = await personContext(browser);
  try {
    const p = await phone.newPage();
    await p.goto(signLink);
    await expect(p.getByRole('heading', { level: 1, name: TITLE })).toBeVisible();
    await expect(p.locator('section.agreement strong')).toHaveText('photos of you');
    // The file, shown with the other faces blurred.
    await expect(p.locator('ul.thumbs img')).toHaveCount(1);
    // Face matching is asked apart and not ticked.
    await expect(p.locator('#face-matching')).not.toBeChecked();
    await checkA11y(p, 'public: sign (phone)', testInfo);
    for (const ch of CHANNELS) await p.locator(`input[name="scope"][value="${ch}"]`).check();
    await p.getByRole('button', { name: 'Continue' }).click();

    const codeMail = await waitForMail(EMAIL, 'Your code:');
    await expect(p.getByLabel('Your 6-digit code')).toBeVisible();
    await checkA11y(p, 'public: code (phone)', testInfo);
    await p.getByLabel('Your 6-digit code').fill(codeIn(codeMail));
    await p.locator('form.stack button[type="submit"]').click();
    await expect(p.getByRole('link', { name: 'See your receipt' })).toBeVisible();
    await checkA11y(p, 'public: signed (phone)', testInfo);
  } finally {
    await phone.close();
  }

  // Staff: the request is signed and the file is allowed on the channels he chose.
  await gotoOk(page, '/admin/requests?status=signed');
  await expect(requestRows(page).first()).toHaveAttribute('data-status', 'signed');
  await requestRows(page).first().getByRole('link').first().click();
  await expect(page.locator('#request-status')).toHaveText('Signed');
  await expect(page.locator('table.messages tbody tr').first()).toBeVisible();
  await checkA11y(page, 'request', testInfo);
  await openFile(page, asset.id);
  await expectCompliance(page, { web: 'Yes', print: 'Yes', social: 'Yes' });
});

test('journey 7c: the person withdraws through the receipt link with a code; the file turns not allowed', async ({ page, browser }, testInfo) => {
  const asset = await theFile();
  const receiptMail = await waitForMail(EMAIL, 'Your receipt:');
  const receiptLink = linkIn(receiptMail, '/receipt/');

  const phone = await personContext(browser);
  try {
    const p = await phone.newPage();
    await p.goto(receiptLink);
    await expect(p.getByRole('heading', { level: 1, name: 'Your receipt' })).toBeVisible();
    await checkA11y(p, 'public: receipt (phone)', testInfo);
    await p.getByRole('button', { name: 'Withdraw my consent' }).click();
    const codeMail = await waitForMail(EMAIL, 'Your code to withdraw:');
    await expect(p.getByLabel('Your 6-digit code')).toBeVisible();
    await checkA11y(p, 'public: withdrawal code (phone)', testInfo);
    await p.getByLabel('Your 6-digit code').fill(codeIn(codeMail));
    await p.getByRole('button', { name: 'Withdraw', exact: true }).click();
    await expect(p.getByRole('heading', { level: 1, name: 'Your consent is withdrawn' })).toBeVisible();
    await checkA11y(p, 'public: withdrawn (phone)', testInfo);
  } finally {
    await phone.close();
  }

  // Staff: the file is no longer allowed on those channels; the consent shows as withdrawn.
  await openFile(page, asset.id);
  await expectCompliance(page, { web: 'No', print: 'No', social: 'No' });
});
