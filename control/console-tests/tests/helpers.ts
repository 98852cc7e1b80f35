// Shared pieces of the console's browser tests: the environment deploy/browser-tests.sh exports,
// axe-core checks, screenshots, read-only API look-ups (to find IDs and wait for background jobs;
// every action of the journeys goes through the console) and small generated documents.
import { expect, request, type APIRequestContext, type Page, type TestInfo } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';

function env(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the tests through deploy/browser-tests.sh`);
  }
  return v;
}

/** The throwaway system deploy/browser-tests.sh started. */
export const sys = {
  get base() { return env('LIKENESS_BASE_URL'); },
  get tenant() { return env('LIKENESS_TENANT'); },
  get email() { return env('LIKENESS_ADMIN_EMAIL'); },
  get password() { return env('LIKENESS_ADMIN_PASSWORD'); },
  get token() { return env('LIKENESS_API_TOKEN'); },
  get report() { return process.env.LIKENESS_BROWSER_REPORT ?? path.join(__dirname, '..', 'test-results'); },
};

/** A file of ../shared/data (LIKENESS_DATA_DIR). */
export function data(rel: string): string {
  return path.join(env('LIKENESS_DATA_DIR'), rel);
}

/** Where the logged-in browser state is kept between the login journey and the others. */
export const statePath = () => path.join(sys.report, 'admin-state.json');

// The identity of the review and consent journeys: four crops in ../shared/data/faces_dev.
export const PERSON = 'Al Pacino';
export const PHOTOS = {
  enrol: 'faces_dev/Al_Pacino_1800_crop.jpg',
  approve: 'faces_dev/Al_Pacino_1806_crop.jpg', // suggested at cosine 0.57 against the enrolled face
  reject: 'faces_dev/Al_Pacino_1805_crop.jpg', // 0.48 (the threshold is 0.45)
};
export const GROUP = 'group/insightface_t1.jpg'; // six people

// ---------------------------------------------------------------------------------------------
// API look-ups (bearer token of the run's first admin)

let apiCtx: APIRequestContext | undefined;

/** A request context on the REST API with the run's API token. */
export async function api(): Promise<APIRequestContext> {
  apiCtx ??= await request.newContext({
    baseURL: sys.base,
    storageState: { cookies: [], origins: [] }, // the token only, not the browser's session
    extraHTTPHeaders: { Authorization: `Bearer ${sys.token}` },
  });
  return apiCtx;
}

/** GET a JSON document of the API (fails the test on an error status). */
export async function getJson<T = any>(url: string): Promise<T> {
  const r = await (await api()).get(url);
  expect(r.ok(), `GET ${url}: ${r.status()} ${await r.text()}`).toBeTruthy();
  return (await r.json()) as T;
}

export interface Face {
  id: string;
  status: string;
  person_id?: string | null;
  box: number[];
  candidates?: { person_id: string; score: number }[];
  template_enrolled?: boolean;
}

/** The newest asset with this file name (the console's upload is the only writer). */
export async function assetByName(filename: string): Promise<{ id: string; filename: string }> {
  let found: any;
  await expect
    .poll(async () => {
      const page = await getJson<any>('/api/v1/assets?per_page=100&sort=-created_at');
      const items: any[] = page.items ?? page.data ?? page;
      found = items.find((a) => a.filename === filename);
      return !!found;
    }, { message: `an asset named ${filename}`, timeout: 15_000 })
    .toBe(true);
  return found;
}

/**
 * Waits until the background jobs that are due are done (detection, matching, re-matching); a job
 * queued for later (e.g. at the end of a consent) does not count.
 */
export async function jobsIdle(timeout = 60_000): Promise<void> {
  const busy = async () => {
    const running = await getJson<any[]>('/api/v1/jobs?status=running&limit=1000');
    const queued = await getJson<any[]>('/api/v1/jobs?status=queued&limit=1000');
    const now = Date.now();
    // run_after is UTC, with or without an offset; unreadable counts as due.
    const due = (t: string) => {
      const ms = Date.parse(/(Z|[+-]\d\d:\d\d)$/i.test(t) ? t : `${t}Z`);
      return Number.isNaN(ms) || ms <= now;
    };
    return running.length + queued.filter((j) => due(String(j.run_after))).length;
  };
  await expect
    .poll(busy, { message: 'background jobs to finish', timeout, intervals: [200, 300, 500] })
    .toBe(0);
}

/** The faces of an asset once detection ran (at least `min`). */
export async function facesOf(assetId: string, min = 1, timeout = 60_000): Promise<Face[]> {
  let faces: Face[] = [];
  await expect
    .poll(async () => {
      faces = await getJson<Face[]>(`/api/v1/assets/${assetId}/faces`);
      return faces.length;
    }, { message: `faces detected on ${assetId}`, timeout, intervals: [200, 300, 500, 1000] })
    .toBeGreaterThanOrEqual(min);
  return faces;
}

// ---------------------------------------------------------------------------------------------
// Console helpers

/** Reloads `page` until `check` passes (server-rendered pages show new data after a reload). */
export async function reloadUntil(page: Page, check: () => Promise<void>, timeout = 30_000): Promise<void> {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await page.waitForTimeout(500);
      await page.reload();
    }
  }
}

/** The ID in a console URL such as /admin/files/{id}. */
export function idFromUrl(url: string, kind: string): string {
  const m = new URL(url).pathname.match(new RegExp(`/admin/${kind}/([^/?#]+)`));
  if (!m) throw new Error(`no /admin/${kind}/{id} in ${url}`);
  return decodeURIComponent(m[1]);
}

/** Opens a console page and checks that it answered 200 (a missing page fails at once). */
export async function gotoOk(page: Page, url: string): Promise<void> {
  const r = await page.goto(url);
  expect(r?.status(), `GET ${url}`).toBe(200);
}

/** Uploads files through /admin/upload and waits for the result list to name each of them. */
export async function uploadThroughConsole(page: Page, rels: string[]): Promise<void> {
  await gotoOk(page, '/admin/upload');
  await page.getByLabel('Files').setInputFiles(rels.map(data));
  await page.getByRole('button', { name: 'Upload' }).click();
  for (const rel of rels) {
    await expect(page.getByText(path.basename(rel)).first()).toBeVisible({ timeout: 30_000 });
  }
}

/** Opens a file's page by its asset ID. */
export async function openFile(page: Page, assetId: string): Promise<void> {
  await gotoOk(page, `/admin/files/${assetId}`);
  await expect(page.locator('svg.boxes')).toBeAttached();
}

// ---------------------------------------------------------------------------------------------
// axe-core and screenshots

const AXE = path.join(__dirname, '..', 'node_modules', 'axe-core', 'axe.min.js');
let axeSource: string | undefined;

interface AxeNode { target: unknown[]; html: string; failureSummary?: string }
interface AxeViolation { id: string; impact: string | null; help: string; helpUrl: string; nodes: AxeNode[] }

/** Readable text of axe violations. */
export function formatViolations(vs: AxeViolation[]): string {
  return vs
    .map((v) => {
      const nodes = v.nodes
        .slice(0, 8)
        .map((n) => `    - ${JSON.stringify(n.target)}  ${n.html.replace(/\s+/g, ' ').slice(0, 160)}\n` +
          (n.failureSummary ?? '').split('\n').map((l) => `        ${l}`).join('\n'))
        .join('\n');
      const more = v.nodes.length > 8 ? `\n    ... and ${v.nodes.length - 8} more` : '';
      return `  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n${nodes}${more}`;
    })
    .join('\n');
}

/**
 * Runs axe-core on the page as it is; prints every violation; fails on serious or critical ones.
 * The results are also appended to axe-results.jsonl in the report folder.
 */
export async function checkA11y(page: Page, name: string, testInfo?: TestInfo): Promise<void> {
  // Not page.addScriptTag: the console's Content-Security-Policy (script-src 'self') blocks an
  // inline script, and the tests keep the CSP on (bypassCSP would hide the console's own CSP
  // mistakes). A DevTools evaluation is not subject to the page's CSP.
  axeSource ??= fs.readFileSync(AXE, 'utf8');
  await page.evaluate(`${axeSource}\n;void 0`);
  const violations: AxeViolation[] = await page.evaluate(async () => {
    // @ts-expect-error axe is the global the script above defined
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v: any) => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.map((n: any) => ({ target: n.target, html: n.html, failureSummary: n.failureSummary })),
    }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  fs.mkdirSync(sys.report, { recursive: true });
  fs.appendFileSync(path.join(sys.report, 'axe-results.jsonl'), JSON.stringify({
    page: name, url: page.url(),
    counts: violations.reduce<Record<string, number>>((m, v) => ({ ...m, [v.impact ?? 'none']: (m[v.impact ?? 'none'] ?? 0) + 1 }), {}),
    violations: violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })),
  }) + '\n');
  const text = violations.length ? `axe on ${name} (${page.url()}):\n${formatViolations(violations)}` : `axe on ${name}: no violations`;
  console.log(text);
  testInfo?.annotations.push({ type: 'axe', description: `${name}: ${violations.length} violations, ${bad.length} serious/critical` });
  expect(bad, `serious or critical axe violations on ${name}:\n${formatViolations(bad)}`).toEqual([]);
}

/**
 * The photos of ../shared/data may be used for tests inside the project but not copied into the
 * repository, and the screenshots are committed: every photo, thumbnail and face crop is blurred
 * in them (the boxes, labels and the rest of the page stay sharp). LIKENESS_SCREENSHOT_PHOTOS=1
 * leaves them sharp, for a look at home; do not commit those.
 */
const PHOTOS_SELECTOR = 'img, svg.crop, svg image';

/** Writes control/console-tests/screenshots/<name>.png (committed; the README shows some). */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = path.join(__dirname, '..', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  // The whole page, cut at 1,400 px (some pages run long: a file's audit trail, the audit log).
  const { w, h } = await page.evaluate(() => ({
    w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight,
  }));
  const vw = page.viewportSize()?.width ?? w;
  if (w > vw) console.log(`${name}: the page is ${w} px wide in a ${vw} px window (horizontal scrolling)`);
  // Through the CSSOM: the console's CSP (style-src 'self') refuses the <style> element that
  // page.screenshot's `style` option would add.
  const blur = process.env.LIKENESS_SCREENSHOT_PHOTOS !== '1';
  const setBlur = (on: boolean) => page.evaluate(([sel, on]) => {
    document.querySelectorAll<HTMLElement | SVGElement>(sel as string).forEach((el) => {
      el.style.filter = on ? 'blur(9px)' : '';
    });
  }, [PHOTOS_SELECTOR, on] as const);
  if (blur) await setBlur(true);
  await page.screenshot({
    path: path.join(dir, `${name}.png`), fullPage: true, animations: 'disabled', caret: 'hide',
    clip: { x: 0, y: 0, width: w, height: Math.min(h, 1400) },
  });
  if (blur) await setBlur(false);
}

// ---------------------------------------------------------------------------------------------
// A scanned consent form: a small one-page PDF, made here.

export function consentPdf(name: string, channels: string[]): Buffer {
  const text = [
    'Consent to the use of my image',
    `I, ${name}, agree that photos showing me may be used in: ${channels.join(', ')}.`,
    'Signed on paper; scanned by staff. (Generated by the console browser tests.)',
  ];
  const esc = (s: string) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const stream = 'BT /F1 12 Tf 56 760 Td 16 TL\n' + text.map((l) => `(${esc(l)}) Tj T*`).join('\n') + '\nET';
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${Buffer.byteLength(stream)} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n` +
    offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('') +
    `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

// ---------------------------------------------------------------------------------------------
// Page pieces used by several journeys

/** Today (UTC) as YYYY-MM-DD. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** The person of this name (API look-up), if registered. */
export async function personByName(name: string): Promise<{ id: string; name: string } | undefined> {
  const page = await getJson<any>(`/api/v1/persons?q=${encodeURIComponent(name)}&per_page=100`);
  return (page.items as any[]).find((p) => p.name === name);
}

/** The face of a file page: its box in the <svg class="boxes"> overlay. */
export function box(page: Page, faceId: string) {
  return page.locator(`svg.boxes g.face[data-face-id="${faceId}"]`);
}

/** The file page's compliance table as channel -> the "allowed" cell (Yes / No). */
export async function complianceOf(page: Page): Promise<Record<string, string>> {
  const table = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: /allowed/i }) });
  await expect(table).toBeVisible();
  const out: Record<string, string> = {};
  for (const row of await table.locator('tbody tr').all()) {
    const cells = await row.locator('th, td').allInnerTexts();
    out[cells[0].trim().toLowerCase()] = cells[1].trim();
  }
  return out;
}

/** Reloads the file page until its compliance table shows `want` (channel -> Yes/No). */
export async function expectCompliance(page: Page, want: Record<string, string>): Promise<void> {
  await reloadUntil(page, async () => {
    const got = await complianceOf(page);
    const sub = Object.fromEntries(Object.keys(want).map((k) => [k, got[k]]));
    expect(sub, `compliance table ${JSON.stringify(got)}`).toEqual(want);
  }, 15_000);
}

/** Fills and sends the person page's "Record a consent" form. */
export async function recordConsent(page: Page, opts: {
  channels: string[]; coversFaceMatching?: boolean; note?: string; validUntil?: string;
  document?: { name: string; mimeType: string; buffer: Buffer };
}): Promise<void> {
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Record consent' }) });
  for (const ch of opts.channels) {
    await form.getByRole('checkbox', { name: ch, exact: true }).check();
  }
  await form.getByLabel('Valid from').fill(today());
  if (opts.validUntil) await form.getByLabel('Valid until').fill(opts.validUntil);
  // How it was given: a signed paper form when a scan comes with it.
  await form.getByLabel('How it was given').selectOption(opts.document ? 'paper_scan' : 'digital');
  if (opts.coversFaceMatching) await form.getByLabel('Covers face matching').check();
  if (opts.note) await form.getByLabel('Note').fill(opts.note);
  if (opts.document) await form.getByLabel('Scanned document').setInputFiles(opts.document);
  await form.getByRole('button', { name: 'Record consent' }).click();
}
