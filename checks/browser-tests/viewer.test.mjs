// Browser tests of the Petrel counterexample viewer, in Debian's headless Chromium.
//
// The viewer servers are started outside (see run.sh, which uses the `serve_synthetic`
// example); their URLs come in through the environment:
//   PETREL_VIEW_URL   a safety counterexample
//   PETREL_LASSO_URL  a liveness lasso
//   PETREL_BIG_URL    a 1,000-step × 10-actor trace
// Screenshots go to PETREL_ARTIFACTS (default: <repo>/target/browser-artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = process.env.PETREL_ARTIFACTS || path.resolve(HERE, '../../target/browser-artifacts');
const CHROMIUM = process.env.PETREL_CHROMIUM || '/usr/bin/chromium';
const RENDER_BOUND_MS = Number(process.env.PETREL_RENDER_BOUND_MS || 5000);
const URLS = {
  view: process.env.PETREL_VIEW_URL,
  lasso: process.env.PETREL_LASSO_URL,
  big: process.env.PETREL_BIG_URL,
};
const missing = Object.entries(URLS).filter(([, v]) => !v).map(([k]) => k);
const skip = missing.length ? `viewer URLs not set (${missing.join(', ')}): run checks/browser-tests/run.sh` : false;

let browser;

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  if (browser) await browser.close();
});

async function open(url, { width = 1440, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  // No request may leave the viewer's own origin (no CDN, no fonts, nothing).
  const origin = new URL(url).origin;
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) foreign.push(r.url()); });
  await page.goto(url);
  await page.waitForSelector('html[data-rendered="true"]', { timeout: 20000 });
  const trace = await (await page.request.get(new URL('/trace.json', url).href)).json();
  return { context, page, errors, foreign, trace };
}

const selectedStep = (page) => page.locator('[data-testid="selected-step"]').getAttribute('data-step').then(Number);
const diffPaths = (page) => page.locator('[data-testid="diff-changed"]').evaluateAll((els) => els.map((e) => e.dataset.path).sort());

test('safety trace: lanes, property, keyboard stepping with structural diffs, download', { skip }, async () => {
  const { context, page, errors, foreign, trace } = await open(URLS.view);

  assert.equal(await page.locator('[data-testid="lane"]').count(), trace.actors.length, 'one lane per actor');
  assert.equal((await page.locator('[data-testid="property-name"]').textContent()).trim(), trace.property.name);
  assert.match(await page.locator('#verdict-badge').textContent(), /safety/);
  assert.ok(await page.locator('[data-testid="step-row"]').count() > 0, 'step rows rendered');
  assert.ok(await page.locator('.row.failing').count() >= 0);
  await page.screenshot({ path: path.join(ARTIFACTS, 'safety.png') });

  // → moves the selection; the highlighted diff set follows the step.
  const s0 = await selectedStep(page);
  const d0 = await diffPaths(page);
  await page.keyboard.press('ArrowRight');
  const s1 = await selectedStep(page);
  const d1 = await diffPaths(page);
  assert.equal(s1, s0 + 1, 'ArrowRight selects the next step');
  assert.ok(d1.length > 0, 'the new step highlights changed fields');
  assert.notDeepEqual(d1, d0, 'diff highlights change with the step');
  assert.equal(await page.locator(`[data-testid="step-row"][data-step="${s1}"].selected`).count(), 1, 'row marked selected');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await selectedStep(page), s0, 'ArrowLeft goes back');

  // Each highlight is a real structural change between consecutive states.
  await page.keyboard.press('ArrowRight');
  for (const p of d1) {
    const [actor, fieldPath] = p.split(':');
    if (fieldPath === '(crashed)') continue;
    const get = (st) => fieldPath.split('.').reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), st.actors[Number(actor)]);
    const before = s1 === 1 ? trace.initial : trace.steps[s1 - 2];
    const afterSt = trace.steps[s1 - 1];
    assert.notDeepEqual(get(afterSt), get(before), `highlighted ${p} really changed`);
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'safety-step.png') });

  // Clicking a row selects it.
  await page.locator('[data-testid="step-row"][data-step="5"]').click();
  assert.equal(await selectedStep(page), 5);

  // Explorer link: the explorer_path prefix up to the selected step.
  const comps = trace.explorer_path.replace(/^#\/steps\/?/, '').split('/').filter(Boolean);
  const href = await page.locator('#insp-head [data-testid="explorer-link"]').getAttribute('href');
  assert.equal(href, 'http://127.0.0.1:3001/#/steps/' + comps.slice(0, 6).join('/'));

  // Search: a field name lists the steps where it changes; clicking jumps there.
  await page.locator('[data-testid="search"]').fill('ballot');
  const firstHit = page.locator('[data-testid="search-result"]').first();
  await firstHit.waitFor();
  const hitStep = Number(await firstHit.getAttribute('data-step'));
  await firstHit.click();
  assert.equal(await selectedStep(page), hitStep, 'search result jumps to its step');
  assert.ok(await page.locator('.line.focus').count() >= 1, 'the matching field is revealed');

  // Filters: hiding an actor removes its lane; hiding a kind removes its rows.
  await page.locator('[data-testid="actor-filter"]').nth(1).uncheck();
  assert.equal(await page.locator('[data-testid="lane"]').count(), trace.actors.length - 1);
  await page.locator('[data-testid="actor-filter"]').nth(1).check();
  const kindBox = page.locator('[data-testid="kind-filter"]').first();
  const kind = await kindBox.getAttribute('data-kind');
  await kindBox.uncheck();
  const shownKinds = await page.locator('[data-testid="step-row"]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.step)));
  for (const i of shownKinds) {
    if (i === 0) continue;
    const st = trace.steps[i - 1];
    assert.notEqual(st.msg_kind || st.kind, kind, `step ${i} of hidden kind ${kind} is not shown`);
  }
  await kindBox.check();

  // Download: the button's href serves the trace as an attachment.
  const dl = page.locator('[data-testid="download-json"]');
  assert.equal(await dl.getAttribute('href'), '/trace.json?download=1');
  const resp = await page.request.get(new URL('/trace.json?download=1', URLS.view).href);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-disposition'], /^attachment;/);
  const [download] = await Promise.all([page.waitForEvent('download'), dl.click()]);
  const saved = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(saved.schema, 'petrel-trace/1');
  assert.equal(saved.steps.length, trace.steps.length);

  assert.deepEqual(foreign, [], 'no request leaves the viewer');
  assert.deepEqual(errors, [], 'no page errors');
  await context.close();
});

test('lasso trace: loop marker, "from here it loops", play/stop', { skip }, async () => {
  const { context, page, errors, trace } = await open(URLS.lasso);
  assert.ok(trace.loop_start, 'lasso fixture has loop_start');
  assert.match(await page.locator('#verdict-badge').textContent(), /liveness lasso/);
  const marker = page.locator('[data-testid="loop-marker"]');
  assert.equal(await marker.count(), 1);
  await marker.scrollIntoViewIfNeeded();
  assert.ok(await marker.isVisible(), 'loop bracket visible');
  await page.evaluate((ls) => window.__petrel.select(ls), trace.loop_start);
  const banner = page.locator('.loop-banner');
  await banner.waitFor();
  assert.match(await banner.textContent(), /from here it loops/);
  assert.equal(await page.locator('[data-testid="step-row"].in-loop').count() > 0, true);
  await page.screenshot({ path: path.join(ARTIFACTS, 'lasso.png') });

  // Play animates the selection around the loop; Stop freezes it.
  await page.locator('[data-testid="play-loop"]').click();
  const seen = new Set();
  for (let k = 0; k < 6; k++) {
    await page.waitForTimeout(400);
    seen.add(await selectedStep(page));
  }
  assert.ok(seen.size >= 2, `selection moves while playing (${[...seen]})`);
  for (const s of seen) assert.ok(s >= trace.loop_start && s <= trace.steps.length, `played step ${s} is inside the loop`);
  await page.locator('[data-testid="stop-loop"]').click();
  const frozen = await selectedStep(page);
  await page.waitForTimeout(1000);
  assert.equal(await selectedStep(page), frozen, 'stop freezes the selection');
  assert.deepEqual(errors, []);
  await context.close();
});

test('1,000 steps × 10 actors: first render time and responsiveness', { skip }, async () => {
  const { context, page, errors, trace } = await open(URLS.big);
  assert.equal(trace.steps.length, 1000);
  assert.equal(trace.actors.length, 10);
  const ms = await page.evaluate(() => window.__petrelRenderMs);
  const nav = await page.evaluate(() => window.__petrelRenderFromNavigationMs);
  console.log(`# time to first render (1000 steps x 10 actors): ${ms.toFixed(1)} ms from script start, ${nav.toFixed(1)} ms from navigation start`);
  assert.ok(typeof ms === 'number' && ms > 0, '__petrelRenderMs is set');
  assert.ok(ms < RENDER_BOUND_MS, `first render ${ms.toFixed(1)} ms is under ${RENDER_BOUND_MS} ms`);
  assert.equal(await page.locator('[data-testid="lane"]').count(), 10);
  const rows = await page.locator('[data-testid="step-row"]').count();
  assert.ok(rows > 10 && rows < 200, `rows are virtualised (${rows} in the DOM)`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'big.png') });

  // Hold → for 100 steps: each step re-renders lanes and the inspector.
  const t0 = Date.now();
  for (let k = 0; k < 100; k++) await page.keyboard.press('ArrowRight');
  const per = (Date.now() - t0) / 100;
  console.log(`# stepping: ${per.toFixed(1)} ms per key press`);
  assert.equal(await selectedStep(page), 101);
  assert.ok(per < 250, `stepping stays responsive (${per.toFixed(1)} ms per step)`);

  // Jump to the end: the failing step is rendered and highlighted.
  await page.keyboard.press('End');
  assert.equal(await selectedStep(page), 1000);
  assert.equal(await page.locator('[data-testid="step-row"][data-step="1000"].failing').count(), 1);

  // Search over all 1,000 steps.
  const s0 = Date.now();
  await page.locator('[data-testid="search"]').fill('round');
  await page.locator('[data-testid="search-result"]').first().waitFor();
  console.log(`# search over 1000 steps: ${Date.now() - s0} ms (incl. 120 ms debounce)`);
  await page.keyboard.press('Escape');
  await page.screenshot({ path: path.join(ARTIFACTS, 'big-end.png') });
  assert.deepEqual(errors, []);
  await context.close();
});
