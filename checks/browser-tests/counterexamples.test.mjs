// Browser tests of the viewer on REAL counterexamples, made by the real CLI (see run.sh):
//   PETREL_S1_URL              `petrel-check view target/traces/s1.json`
//                              (S1, dup-restart-in-prepare / s1-min-checkpoint-reset, SAFE-6: safety)
//   PETREL_S2_LASSO_URL        `petrel-check view target/traces/s2-lasso.json`
//                              (S2, dup-create-reply-lost / s2-app-exist-is-failure, LIVE-3 lasso)
//   PETREL_S4_URL              `petrel-check view target/traces/s4.json` (S4, SAFE-9: safety)
//   PETREL_S5_URL              `petrel-check view target/traces/s5.json` (S5, LIVE-2: liveness)
//   PETREL_S4_LASSO_URL        `petrel-check view target/traces/s4-lasso.json` (S4, LIVE-2 lasso)
//   PETREL_S1_EXPLORER_URL     the stateright Explorer URL `petrel-check explore` printed for S1
//   PETREL_S1_EXPLORE_VIEW_URL the viewer that same `explore` serves
//   PETREL_EXPLORER_URL        the same two for S4
//   PETREL_EXPLORE_VIEW_URL
//   PETREL_S1_TRACE, PETREL_S4_TRACE  the paths of s1.json and s4.json
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
const URLS = {
  s1: process.env.PETREL_S1_URL,
  s2lasso: process.env.PETREL_S2_LASSO_URL,
  s4: process.env.PETREL_S4_URL,
  s5: process.env.PETREL_S5_URL,
  lasso: process.env.PETREL_S4_LASSO_URL,
  explorer: process.env.PETREL_EXPLORER_URL,
  exploreView: process.env.PETREL_EXPLORE_VIEW_URL,
  s1Explorer: process.env.PETREL_S1_EXPLORER_URL,
  s1ExploreView: process.env.PETREL_S1_EXPLORE_VIEW_URL,
};
// Each test needs its own URLs (run.sh sets them all).
const need = (...keys) => {
  const missing = keys.filter((k) => !URLS[k]);
  return missing.length ? `URLs not set (${missing.join(', ')}): run checks/browser-tests/run.sh` : false;
};

let browser;

before(async () => {
  if (Object.values(URLS).every((u) => !u)) return;
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

async function newPage(url, { width = 1440, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const response = await page.goto(url);
  return { context, page, errors, response };
}

async function openViewer(url, size) {
  const o = await newPage(url, size);
  assert.equal(o.response.status(), 200, `${url} answers 200`);
  await o.page.waitForSelector('html[data-rendered="true"]', { timeout: 20000 });
  o.trace = await (await o.page.request.get(new URL('/trace.json', url).href)).json();
  return o;
}

const selectedStep = (page) => page.locator('[data-testid="selected-step"]').getAttribute('data-step').then(Number);
const highlighted = (page) => page.locator('[data-testid="diff-changed"]').evaluateAll((els) => els.map((e) => e.dataset.path).sort());

// The changes the viewer must highlight between two states, computed independently of it:
// `actor:path` of every changed leaf, of every added or removed key (the key itself, not
// what is under it), `actor:(crashed)` for a crash flag, `actor:` when a state changes shape.
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
function changedPaths(before, after) {
  const out = [];
  const walk = (a, b, p, actor) => {
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const bothObj = isObj(a) && isObj(b);
    const bothArr = Array.isArray(a) && Array.isArray(b);
    if (!bothObj && !bothArr) { out.push(actor + ':' + p.join('.')); return; }
    const keys = bothObj ? [...new Set([...Object.keys(a), ...Object.keys(b)])] : [...Array(Math.max(a.length, b.length)).keys()].map(String);
    for (const k of keys) {
      const inA = bothObj ? Object.hasOwn(a, k) : Number(k) < a.length;
      const inB = bothObj ? Object.hasOwn(b, k) : Number(k) < b.length;
      if (inA && inB) walk(a[k], b[k], p.concat([k]), actor);
      else out.push(actor + ':' + p.concat([k]).join('.'));
    }
  };
  after.actors.forEach((s, actor) => {
    if (before.crashed[actor] !== after.crashed[actor]) out.push(actor + ':(crashed)');
    walk(before.actors[actor], s, [], actor);
  });
  return out.sort();
}

// Press → through the whole trace: every step highlights exactly its own changes, and the
// highlighted set changes as the selection moves.
async function stepThrough(page, trace, label) {
  await page.keyboard.press('Home');
  assert.equal(await selectedStep(page), 0);
  let prev = await highlighted(page);
  let changedSets = 0;
  for (let i = 1; i <= trace.steps.length; i++) {
    await page.keyboard.press('ArrowRight');
    assert.equal(await selectedStep(page), i, `${label}: → selects step ${i}`);
    const before = i === 1 ? trace.initial : trace.steps[i - 2];
    const expected = changedPaths(before, trace.steps[i - 1]);
    const got = await highlighted(page);
    assert.deepEqual(got, expected, `${label}: step ${i} highlights exactly what changed`);
    if (JSON.stringify(got) !== JSON.stringify(prev)) changedSets++;
    prev = got;
  }
  assert.ok(changedSets >= trace.steps.length / 2, `${label}: → changes the highlighted diff (${changedSets} of ${trace.steps.length} steps)`);
}

async function commonChecks(page, trace, label) {
  assert.equal(await page.locator('[data-testid="lane"]').count(), trace.actors.length, `${label}: one lane per actor`);
  const laneNames = await page.locator('[data-testid="lane"]').evaluateAll((ls) => ls.map((l) => l.getAttribute('title').split(' — ')[0]));
  assert.deepEqual(laneNames, trace.actors.map((a) => a.name), `${label}: lanes in actor order`);
  assert.equal((await page.locator('[data-testid="property-name"]').textContent()).trim(), trace.property.name, `${label}: failing property named`);
  assert.equal((await page.locator('#property-id').textContent()).trim(), trace.property.id);
  assert.equal(await page.locator('[data-testid="step-row"]').count(), trace.steps.length + 1, `${label}: a row per step, plus the initial state`);
  assert.equal((await page.locator('#scenario').textContent()).trim(), trace.scenario);
  assert.equal((await page.locator('#mutant').textContent()).trim(), trace.mutant);
}

// The actor whose `broken` invariant message is set, or -1 (SAFE-6: no replica is ever broken).
const brokenActor = (st) => st.actors.findIndex((a) => a && typeof a.broken === 'string');

test('S1 (dup-restart-in-prepare, s1-min-checkpoint-reset): safety counterexample', { skip: need('s1') }, async () => {
  const { context, page, errors, trace } = await openViewer(URLS.s1, { width: 1440, height: 860 });
  assert.equal(trace.scenario, 'dup-restart-in-prepare');
  assert.equal(trace.mutant, 's1-min-checkpoint-reset');
  assert.equal(trace.property.id, 'SAFE-6');
  assert.equal(trace.property.kind, 'always');
  assert.equal(trace.loop_start, null);
  // Lane count = actors (meta-A, replica-A1, meta-B, replica-B1), failing property named.
  await commonChecks(page, trace, 's1');
  assert.equal(trace.actors.length, 4);
  assert.equal((await page.locator('[data-testid="property-name"]').textContent()).trim(), 'SAFE-6 no-broken-invariant');
  assert.match(await page.locator('#verdict-badge').textContent(), /^safety$/);
  assert.equal(await page.locator('[data-testid="loop-marker"]:visible').count(), 0, 'no loop marker on a safety trace');
  const n = trace.steps.length;
  assert.match(await page.locator('#failing').textContent(), new RegExp(`^Violated after step ${n}:`));
  assert.equal(await page.locator(`[data-testid="step-row"][data-step="${n}"].failing .fail-tag`).textContent(), '✖ SAFE-6');

  // The story: replica-A1 crashes and restarts while the duplication is in PREPARE.
  const a1 = trace.actors.findIndex((a) => a.name === 'replica-A1');
  assert.ok(a1 >= 0, 'replica-A1 is an actor');
  assert.ok(trace.steps.some((st) => st.kind === 'crash' && st.actor === a1), 'replica-A1 crashes');
  assert.ok(trace.steps.some((st) => st.kind === 'recover' && st.actor === a1), 'replica-A1 restarts');

  // → once from the start: the selection moves and the highlighted diff changes with it.
  await page.keyboard.press('Home');
  const d0 = await highlighted(page);
  await page.keyboard.press('ArrowRight');
  assert.equal(await selectedStep(page), 1);
  const d1 = await highlighted(page);
  assert.ok(d1.length > 0, 'step 1 highlights what it changed');
  assert.notDeepEqual(d1, d0, '→ changes the highlighted diff');

  // Every step highlights exactly its own changes.
  await stepThrough(page, trace, 's1');

  // The last step breaks the replica's invariant (`broken` set), and → onto it shows that.
  assert.equal(await selectedStep(page), n);
  const culprit = brokenActor(trace.steps[n - 1]);
  assert.equal(culprit, a1, 'the trace ends with replica-A1 broken');
  assert.equal(brokenActor(trace.steps[n - 2]), -1, 'not broken before the last step');
  await page.keyboard.press('ArrowLeft');
  const before = await highlighted(page);
  await page.keyboard.press('ArrowRight');
  const last = await highlighted(page);
  assert.notDeepEqual(last, before, '→ onto the last step changes the highlighted diff');
  assert.ok(last.includes(`${culprit}:broken`), `the last step highlights ${culprit}:broken (${last})`);
  assert.match(await page.locator('#insp-head .fail-tag').textContent(), /SAFE-6 no-broken-invariant is violated after this step/);
  const card = page.locator(`.actor-card[data-actor="${culprit}"]`);
  assert.equal(await card.getAttribute('open'), '', 'replica-A1\'s card is open');
  // The change list jumps to the field in the tree: show the broken invariant for the README.
  await page.locator('[data-testid="change-item"]', { hasText: 'broken' }).first().click();
  const focus = page.locator('.line.focus');
  assert.equal(await focus.count(), 1, 'the clicked change is revealed in the tree');
  assert.match(await focus.innerText(), /broken: "dup 1: checkpoint triggered with an invalid min_checkpoint_decree"/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-s1.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('S2 LIVE-3 (dup-create-reply-lost, s2-app-exist-is-failure, --property LIVE-3): lasso with loop marker', { skip: need('s2lasso') }, async () => {
  const { context, page, errors, trace } = await openViewer(URLS.s2lasso, { width: 1440, height: 860 });
  assert.equal(trace.scenario, 'dup-create-reply-lost');
  assert.equal(trace.mutant, 's2-app-exist-is-failure');
  assert.equal(trace.property.id, 'LIVE-3');
  assert.equal(trace.property.kind, 'eventually');
  assert.ok(Number.isInteger(trace.loop_start) && trace.loop_start >= 1, `loop_start is set (${trace.loop_start})`);
  const S = trace.steps.length, L = trace.loop_start;
  assert.ok(L <= S);
  assert.deepEqual(trace.steps[S - 1].actors, (L === 1 ? trace.initial : trace.steps[L - 2]).actors, 'the lasso closes');
  // The loop: B answers the retried CreateFollower with Err(Exists), A takes it for a failure.
  const loop = trace.steps.slice(L - 1);
  assert.ok(loop.some((st) => st.msg_kind === 'CreateFollowerReply' && /Err\(Exists\)/.test(st.label)), 'the loop delivers Err(Exists)');
  assert.ok(loop.some((st) => st.msg_kind === 'CreateFollower'), 'the loop delivers CreateFollower again');
  await commonChecks(page, trace, 's2-lasso');
  assert.match(await page.locator('#verdict-badge').textContent(), /liveness lasso/);

  // The loop marker: one bracket, visible, spanning steps L..S, and the banners.
  const marker = page.locator('[data-testid="loop-marker"]');
  assert.equal(await marker.count(), 1);
  await marker.scrollIntoViewIfNeeded();
  assert.ok(await marker.isVisible(), 'loop bracket visible');
  assert.equal(await page.locator('[data-testid="step-row"].in-loop').count(), S - L + 1, 'the loop rows are marked');
  const inLoop = await page.locator('[data-testid="step-row"].in-loop').evaluateAll((rs) => rs.map((r) => Number(r.dataset.step)));
  assert.deepEqual(inLoop.sort((a, b) => a - b), Array.from({ length: S - L + 1 }, (_, k) => L + k));
  assert.match(await page.locator('.loop-banner').textContent(), new RegExp(`from here it loops.*steps ${L}–${S} repeat forever`));
  assert.match(await page.locator('.back-banner').textContent(), new RegExp(`after step ${S} the system is back in the state before`));
  assert.match(await page.locator('#failing').textContent(), new RegExp(`steps ${L}–${S} repeat forever`));
  const br = await marker.boundingBox();
  const first = await page.locator(`[data-testid="step-row"][data-step="${L}"]`).boundingBox();
  const lastRow = await page.locator(`[data-testid="step-row"][data-step="${S}"]`).boundingBox();
  assert.ok(br.y < first.y && br.y + br.height > lastRow.y + lastRow.height / 2, 'the bracket covers the loop');

  await stepThrough(page, trace, 's2-lasso');

  // Play loop: the selection cycles through steps L..S and wraps from S back to L; Stop freezes it.
  await page.keyboard.press('Home');
  await page.locator('[data-testid="play-loop"]').click();
  const seq = [];
  for (let k = 0; k < 24; k++) {
    seq.push(await selectedStep(page));
    await page.waitForTimeout(150);
  }
  for (const s of seq) assert.ok(s >= L && s <= S, `played step ${s} is inside the loop (${seq})`);
  assert.deepEqual([...new Set(seq)].sort((a, b) => a - b), Array.from({ length: S - L + 1 }, (_, k) => L + k), `every loop step is played (${seq})`);
  assert.ok(seq.some((s, k) => k > 0 && seq[k - 1] === S && s === L), `play wraps from step ${S} to step ${L} (${seq})`);
  await page.locator('[data-testid="stop-loop"]').click();
  const frozen = await selectedStep(page);
  await page.waitForTimeout(1000);
  assert.equal(await selectedStep(page), frozen, 'stop freezes the selection');

  // For the README: the last step, where A receives Err(Exists) and sends CreateFollower again.
  await page.evaluate((s) => window.__petrel.select(s), S);
  assert.match(await page.locator('#insp-head .loop-tag').textContent(), new RegExp(`part of the loop \\(steps ${L}–${S}\\)`));
  await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-s2-lasso.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('S4 (learner-primary-dies, s4-recovering-not-cleared): safety counterexample', { skip: need('s4') }, async () => {
  const { context, page, errors, trace } = await openViewer(URLS.s4, { width: 1440, height: 860 });
  assert.equal(trace.property.id, 'SAFE-9');
  assert.equal(trace.loop_start, null);
  await commonChecks(page, trace, 's4');
  assert.match(await page.locator('#verdict-badge').textContent(), /^safety$/);
  assert.equal(await page.locator('[data-testid="loop-marker"]:visible').count(), 0, 'no loop marker on a safety trace');
  const n = trace.steps.length;
  assert.match(await page.locator('#failing').textContent(), new RegExp(`^Violated after step ${n}:`));
  assert.equal(await page.locator(`[data-testid="step-row"][data-step="${n}"].failing .fail-tag`).textContent(), '✖ SAFE-9');

  await stepThrough(page, trace, 's4');

  // The last step: the promoted learner is primary while still recovering — what SAFE-9 forbids.
  assert.equal(await selectedStep(page), n);
  assert.match(await page.locator('#insp-head .fail-tag').textContent(), /SAFE-9 primary-not-recovering is violated after this step/);
  const last = trace.steps[n - 1];
  const culprit = last.actors.findIndex((s) => s && s.parts && Object.values(s.parts).some((p) => p.status === 'Primary' && p.recovering === true));
  assert.ok(culprit > 0, 'the trace ends with a recovering primary');
  const card = page.locator(`.actor-card[data-actor="${culprit}"]`);
  assert.equal(await card.getAttribute('open'), '', `${trace.actors[culprit].name}'s card is open`);
  const cardText = await card.innerText();
  assert.match(cardText, /status: "Primary"/);
  assert.match(cardText, /recovering: true/);
  // The change list jumps to a field in the tree: show the status change (and, next to it,
  // the recovering flag) for the README screenshot.
  await page.locator('[data-testid="change-item"]', { hasText: 'status' }).first().click();
  const focus = page.locator('.line.focus');
  assert.equal(await focus.count(), 1, 'the clicked change is revealed in the tree');
  assert.match(await focus.innerText(), /status: "Primary"/);
  assert.ok(await page.locator(`.actor-card[data-actor="${culprit}"] .line`, { hasText: 'recovering: true' }).isVisible(), 'recovering: true is in view');
  await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-s4.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('S5 (client-primary-crash, s5-client-no-refresh): liveness counterexample', { skip: need('s5') }, async () => {
  const { context, page, errors, trace } = await openViewer(URLS.s5);
  assert.equal(trace.property.id, 'LIVE-2');
  assert.equal(trace.property.kind, 'eventually');
  await commonChecks(page, trace, 's5');
  if (trace.loop_start) {
    console.log(`# s5: a lasso, loop from step ${trace.loop_start}`);
    assert.equal(await page.locator('[data-testid="loop-marker"]').count(), 1);
    assert.ok(await page.locator('[data-testid="loop-marker"]').isVisible());
    assert.match(await page.locator('#verdict-badge').textContent(), /liveness lasso/);
  } else {
    // The engine found a path to a state where no fair step is enabled: the client gave up
    // on the dead primary and the system may stay there forever.
    console.log(`# s5: no loop (loop_start null): ends stuck after step ${trace.steps.length}`);
    assert.match(await page.locator('#verdict-badge').textContent(), /liveness · stuck/);
    assert.match(await page.locator('#failing').textContent(), /may stay in this state forever without LIVE-2 ever holding/);
    assert.ok(await page.locator('[data-testid="loop-marker"]').isHidden());
  }
  await stepThrough(page, trace, 's5');
  await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-s5.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('S4 LIVE-2 (check --property LIVE-2): a real lasso shows the loop marker', { skip: need('lasso') }, async () => {
  const { context, page, errors, trace } = await openViewer(URLS.lasso, { width: 1440, height: 860 });
  assert.equal(trace.property.id, 'LIVE-2');
  assert.ok(Number.isInteger(trace.loop_start) && trace.loop_start >= 1, `loop_start is set (${trace.loop_start})`);
  const S = trace.steps.length, L = trace.loop_start;
  // After the last step the system is back in the state before step L.
  assert.deepEqual(trace.steps[S - 1].actors, (L === 1 ? trace.initial : trace.steps[L - 2]).actors, 'the lasso closes');
  await commonChecks(page, trace, 'lasso');
  assert.match(await page.locator('#verdict-badge').textContent(), /liveness lasso/);
  const marker = page.locator('[data-testid="loop-marker"]');
  assert.equal(await marker.count(), 1);
  assert.ok(await marker.isVisible(), 'loop bracket visible');
  assert.equal(await page.locator('[data-testid="step-row"].in-loop').count(), S - L + 1, 'the loop rows are marked');
  assert.match(await page.locator('.loop-banner').textContent(), new RegExp(`from here it loops.*steps ${L}–${S} repeat forever`));
  assert.match(await page.locator('#failing').textContent(), new RegExp(`steps ${L}–${S} repeat forever`));
  // The bracket spans from the banner above step L to the "back to" banner after step S.
  const br = await marker.boundingBox();
  const first = await page.locator(`[data-testid="step-row"][data-step="${L}"]`).boundingBox();
  const lastRow = await page.locator(`[data-testid="step-row"][data-step="${S}"]`).boundingBox();
  assert.ok(br.y < first.y && br.y + br.height > lastRow.y + lastRow.height / 2, 'the bracket covers the loop');

  await stepThrough(page, trace, 'lasso');
  await page.evaluate((ls) => window.__petrel.select(ls), L);
  await page.locator(`[data-testid="step-row"][data-step="${L}"]`).scrollIntoViewIfNeeded();
  assert.match(await page.locator('#insp-head .loop-tag').textContent(), new RegExp(`part of the loop \\(steps ${L}–${S}\\)`));
  await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-s4-lasso.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

// `petrel-check explore`: the viewer it serves shows the counterexample `check` found and links
// its last step to the Explorer URL that `explore` printed; that URL opens the same path in
// stateright's Explorer, ending in the violating state (`checkState` checks what it shows).
async function checkExplore({ label, viewUrl, explorerUrl, traceFile, propertyId, checkState, shot }) {
  const v = await openViewer(viewUrl);
  const trace = v.trace;
  assert.equal(trace.property.id, propertyId);
  const S = trace.steps.length;
  const fromFile = JSON.parse(readFileSync(traceFile, 'utf8'));
  assert.equal(trace.scenario, fromFile.scenario);
  assert.equal(trace.mutant, fromFile.mutant);
  assert.deepEqual(trace.steps.map((s) => s.label), fromFile.steps.map((s) => s.label), `${label}: explore found the same counterexample as check`);
  if (fromFile.explorer_path !== trace.explorer_path) {
    console.log(`# ${label}: explorer_path differs between processes (${fromFile.explorer_path} vs ${trace.explorer_path})`);
  }
  assert.equal(new URL(explorerUrl).hash, trace.explorer_path, `${label}: the printed URL is the served trace's explorer_path`);
  await v.page.keyboard.press('End');
  const link = await v.page.locator('#insp-head [data-testid="explorer-link"]').getAttribute('href');
  assert.equal(link, explorerUrl, `${label}: the last step links to the Explorer URL explore printed`);
  assert.match(explorerUrl, new RegExp('^http://127\\.0\\.0\\.1:\\d+/#/steps/0(/\\d+){' + S + '}$'), 'init index, then one action index per step');
  // Every row's ↗ opens that step's prefix of the same path.
  const comps = trace.explorer_path.replace(/^#\/steps\//, '').split('/');
  const base = explorerUrl.slice(0, explorerUrl.indexOf('#'));
  await v.page.keyboard.press('Home');
  for (let i = 1; i <= S; i++) {
    await v.page.keyboard.press('ArrowRight');
    const href = await v.page.locator('#insp-head [data-testid="explorer-link"]').getAttribute('href');
    assert.equal(href, base + '#/steps/' + comps.slice(0, i + 1).join('/'), `${label}: step ${i} links to its prefix`);
  }
  assert.deepEqual(v.errors, []);
  await v.context.close();

  // The Explorer itself.
  const { context, page, errors, response } = await newPage(explorerUrl, { width: 1440, height: 900 });
  assert.equal(response.status(), 200, 'the Explorer answers 200');
  const pathItems = page.locator('ol.path-list > li');
  // Pre-init, Init 0, then one entry per step; the Explorer fetches them one by one.
  await page.waitForFunction((n) => document.querySelectorAll('ol.path-list > li').length === n, S + 2, { timeout: 20000 });
  const actions = await pathItems.allInnerTexts();
  assert.equal(actions[0].trim(), 'Pre-init');
  assert.equal(actions[1].trim(), 'Init 0');
  trace.steps.forEach((st, k) => {
    const a = actions[k + 2].replace(/\s+/g, ' ');
    assert.ok(a.includes(st.label.replace(/\s+/g, ' ')), `${label}: Explorer step ${k + 1} is "${st.label}" (got "${a}")`);
  });
  // The last step is the selected one, and the state shown is the one after the path.
  const selected = page.locator('ol.path-list a.is-selected-state');
  assert.equal(await selected.count(), 1);
  assert.ok((await selected.innerText()).replace(/\s+/g, ' ').includes(trace.steps[S - 1].label.replace(/\s+/g, ' ')), 'the last step is selected');
  const state = page.locator('section.main-flex-right div.font-code.font-small');
  await state.waitFor();
  const text = await state.innerText();
  assert.match(text, /^ActorModelState \{/, 'the current state is shown');
  const crashed = trace.steps[S - 1].crashed;
  assert.match(text.replace(/\s+/g, ''), new RegExp('crashed:\\[' + crashed.map(String).join(',') + ',?\\]'), 'the crash flags after the path');
  checkState(text, trace);
  await page.screenshot({ path: path.join(ARTIFACTS, shot) });
  assert.deepEqual(errors.filter((e) => !/favicon|404/.test(e)), []);
  await context.close();
}

test('explore S1: the stateright Explorer URL it prints resolves to the same counterexample, and the viewer links there', { skip: need('s1Explorer', 's1ExploreView') || (!process.env.PETREL_S1_TRACE && 'PETREL_S1_TRACE not set') }, async () => {
  await checkExplore({
    label: 'explore s1',
    viewUrl: URLS.s1ExploreView,
    explorerUrl: URLS.s1Explorer,
    traceFile: process.env.PETREL_S1_TRACE,
    propertyId: 'SAFE-6',
    shot: 'explorer-s1.png',
    checkState: (text, trace) => {
      // SAFE-6's violation is visible: replica-A1's `broken` is set, to the same message.
      const S = trace.steps.length;
      const culprit = brokenActor(trace.steps[S - 1]);
      assert.ok(culprit >= 0);
      const msg = trace.steps[S - 1].actors[culprit].broken;
      const flat = text.replace(/\s+/g, '');
      assert.ok(flat.includes('broken:Some("' + msg.replace(/\s+/g, '') + '"'), `the Explorer shows broken: Some("${msg}")`);
      assert.equal(flat.split('broken:Some(').length - 1, 1, 'exactly one replica is broken');
    },
  });
});

test('explore S4: the stateright Explorer opens the same counterexample, and the viewer links there', { skip: need('explorer', 'exploreView') || (!process.env.PETREL_S4_TRACE && 'PETREL_S4_TRACE not set') }, async () => {
  await checkExplore({
    label: 'explore s4',
    viewUrl: URLS.exploreView,
    explorerUrl: URLS.explorer,
    traceFile: process.env.PETREL_S4_TRACE,
    propertyId: 'SAFE-9',
    shot: 'explorer-s4.png',
    checkState: (text) => {
      // SAFE-9's violation is visible: a partition replica that is Primary and still recovering.
      const parts = text.split(/\bPart \{/).slice(1);
      assert.ok(parts.length >= 2, 'the replicas\' partitions are shown');
      assert.ok(parts.some((p) => /\bstatus: Primary,/.test(p) && /\brecovering: true,/.test(p)), 'a recovering primary is shown');
    },
  });
});
