// Every console page: axe-core (no serious or critical violations) and, for the main pages, a
// screenshot in control/console-tests/screenshots/ (taken here after the journeys, so they show
// data; the review and upload screenshots come from the journeys themselves).
import { test, expect } from '@playwright/test';
import * as path from 'node:path';
import { GROUP, PERSON, api, assetByName, checkA11y, getJson, gotoOk, personByName, screenshot } from './helpers';

const pages: { name: string; url: () => Promise<string>; h1?: string | RegExp; shot?: string }[] = [
  { name: 'overview', url: async () => '/admin', h1: 'Overview', shot: 'overview' },
  { name: 'review', url: async () => '/admin/review', h1: 'Review queue' },
  { name: 'review (not identified)', url: async () => '/admin/review?tab=unknown', h1: 'Review queue' },
  { name: 'files', url: async () => '/admin/files', h1: 'Files' },
  { name: 'file', url: async () => `/admin/files/${(await assetByName(path.basename(GROUP))).id}`, shot: 'file' },
  { name: 'upload', url: async () => '/admin/upload', h1: 'Upload' },
  { name: 'persons', url: async () => '/admin/persons', h1: 'Persons', shot: 'persons' },
  { name: 'new person', url: async () => '/admin/persons/new' },
  { name: 'person', url: async () => `/admin/persons/${(await personByName(PERSON))?.id}`, shot: 'person' },
  { name: 'settings', url: async () => '/admin/settings', shot: 'settings' },
  { name: 'users', url: async () => '/admin/users' },
  { name: 'tokens', url: async () => '/admin/tokens' },
  { name: 'roles', url: async () => '/admin/roles' },
  { name: 'audit', url: async () => '/admin/audit', shot: 'audit' },
  { name: 'rematch', url: async () => '/admin/rematch' },
  // Digital signing (journey 7 made a template and a request). A template's text has its own
  // headings (its Markdown's `#`), hence the names of the pages' h1.
  { name: 'templates', url: async () => '/admin/templates', h1: 'Agreement templates', shot: 'templates' },
  { name: 'new template', url: async () => '/admin/templates/new', h1: 'New agreement template' },
  { name: 'template', url: async () => `/admin/templates/${(await getJson<any[]>('/api/v1/consent-templates'))[0]?.id}`, h1: 'Photo consent (browser test)' },
  { name: 'template version', url: async () => `/admin/templates/${(await getJson<any[]>('/api/v1/consent-templates'))[0]?.id}/versions/1`, h1: 'Photo consent (browser test): Version 1' },
  { name: 'requests', url: async () => '/admin/requests', h1: 'Signing requests', shot: 'requests' },
  { name: 'request', url: async () => `/admin/requests/${(await getJson<any[]>('/api/v1/signing-requests'))[0]?.id}` },
  { name: 'outbox', url: async () => '/admin/outbox', h1: 'Outbox' },
  // Publishing (journey 70 made a share link; the webhook endpoint is made here).
  { name: 'shares', url: async () => '/admin/shares', h1: 'Share links', shot: 'shares' },
  { name: 'share', url: async () => `/admin/shares/${(await getJson<any[]>('/api/v1/shares'))[0]?.id}` },
  { name: 'new share', url: async () => `/admin/shares?asset=${(await assetByName(path.basename(GROUP))).id}`, h1: 'Share links' },
  { name: 'alerts', url: async () => '/admin/alerts', h1: 'Consents ending soon' },
  { name: 'webhooks', url: async () => '/admin/webhooks', h1: 'Webhooks' },
  { name: 'webhook endpoint', url: async () => `/admin/webhooks/${await webhookEndpoint()}`, shot: 'webhook' },
  // Data-subject rights (journey 11).
  { name: 'rights policy', url: async () => '/admin/settings/rights', h1: 'Data-subject rights' },
  { name: 'record of processing', url: async () => '/admin/settings/processing-record', h1: 'Record of processing activities' },
  { name: 'erasure preview', url: async () => `/admin/persons/${(await personByName(PERSON))?.id}/erase`, h1: /Erase this person\?/ },
];

/** An endpoint to show (made through the API once; its URL is never called by this test). */
async function webhookEndpoint(): Promise<string> {
  const have = await getJson<any[]>('/api/v1/webhooks');
  if (have.length > 0) return have[0].id;
  const r = await (await api()).post('/api/v1/webhooks', {
    data: { url: 'https://cms.example.org/hooks', description: 'Website', event_types: ['asset.hidden'] },
  });
  expect(r.status(), await r.text()).toBe(201);
  return (await r.json()).endpoint.id;
}

for (const p of pages) {
  test(`page ${p.name}: axe-core${p.shot ? ', screenshot' : ''}`, async ({ page }, testInfo) => {
    // Script errors and CSP violations fail the page; other console errors are printed.
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
      else console.log(`${p.name}: browser console: ${m.text()}`);
    });
    const url = await p.url();
    const r = await page.goto(url);
    expect(r?.status(), `GET ${url}`).toBe(200);
    await expect(page.getByRole('heading', { level: 1, ...(p.h1 ? { name: p.h1 } : {}) })).toBeVisible();
    if (p.shot) await screenshot(page, p.shot);
    await checkA11y(page, p.name, testInfo);
    expect(problems, `${p.name}: errors in the browser`).toEqual([]);
  });
}

test('page audit: "Verify the chain" reports an intact chain', async ({ page }, testInfo) => {
  await gotoOk(page, '/admin/audit');
  await page.getByRole('button', { name: 'Verify the chain' }).click();
  await expect(page.getByRole('status')).toContainText('The chain is intact.');
  await expect(page.locator('.verify-result')).toHaveAttribute('data-ok', 'true');
  // The entries so far were checked.
  const checked = page.locator('dt', { hasText: 'Entries checked' }).locator('xpath=following-sibling::dd[1]');
  expect(Number(await checked.innerText())).toBeGreaterThan(0);
  await checkA11y(page, 'audit verification', testInfo);
});

test('keyboard: the skip link comes first, and every focused control shows its focus', async ({ page }) => {
  const person = await personByName(PERSON);
  const group = await assetByName(path.basename(GROUP));
  for (const url of ['/admin', `/admin/files/${group.id}`, `/admin/persons/${person?.id}`, '/admin/review?tab=unknown', '/admin/templates/new']) {
    await gotoOk(page, url);
    await page.keyboard.press('Tab');
    await expect(page.getByRole('link', { name: 'Skip to content' }), url).toBeFocused();
    const missing: string[] = [];
    for (let i = 0; i < 25; i++) {
      const f = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el || el === document.body) return null;
        const cs = getComputedStyle(el);
        const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
        const shadow = cs.boxShadow !== 'none';
        // A native date field's calendar button is focused inside the field (Chromium draws
        // that ring itself; the field does not match :focus-visible then).
        const native = el instanceof HTMLInputElement && /^(date|time|datetime-local|month|week)$/.test(el.type);
        return { what: `${el.tagName.toLowerCase()} "${(el.innerText || el.getAttribute('aria-label') || el.getAttribute('name') || '').trim().slice(0, 40)}"`, shown: outline || shadow || native };
      });
      if (f && !f.shown) missing.push(f.what);
      await page.keyboard.press('Tab');
    }
    expect(missing, `${url}: focused without a visible focus indicator`).toEqual([]);
  }
});
