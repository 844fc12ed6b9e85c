// Petrel counterexample viewer (petrel-trace/1). Vanilla JS + SVG, no dependencies.
// The trace is inlined in the page (#petrel-data); nothing is fetched at run time.
'use strict';
(function () {
  const T0 = performance.now();

  // ---------------------------------------------------------------- data
  const DATA = JSON.parse(document.getElementById('petrel-data').textContent);
  const TR = DATA.trace;
  const EXPLORER = DATA.explorer_base || null;
  const ACTORS = TR.actors;
  const N = ACTORS.length;
  const STEPS = TR.steps;
  const S = STEPS.length;
  const LOOP = TR.loop_start || null;
  const LASSO = LOOP !== null;
  const FAIL = S; // safety: the state after the last step breaks the property
  // Liveness without a loop: after the last step no fair step is enabled, so the system may
  // stay in that state forever without the property ever holding.
  const STUCK = !LASSO && TR.property.kind === 'eventually';

  const ROW_H = 28;
  const GUTTER = 64;
  const LABEL_MIN = 250;
  const OVERSCAN = 10;
  const HEAD_H = 46; // #lanes-head, fixed in the CSS
  const LONG_SPAN = 6; // messages in flight longer than this are drawn at delivery only

  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';

  function stateAt(i) { return i === 0 ? TR.initial : STEPS[i - 1]; }
  function step(i) { return i === 0 ? null : STEPS[i - 1]; }
  function kindKey(st) { return st.msg_kind || st.kind; }
  function actorName(a) { return a === null || a === undefined || !ACTORS[a] ? '?' : ACTORS[a].name; }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k in attrs) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of kids) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  // Message-kind colours: a fixed palette, picked by a stable hash of the kind name.
  const PALETTE = ['#2563eb', '#0d9488', '#c2410c', '#be185d', '#4f46e5', '#15803d', '#a16207', '#0891b2', '#7c3aed', '#b91c1c'];
  const kindColorCache = new Map();
  function kindColor(k) {
    let c = kindColorCache.get(k);
    if (!c) {
      let h = 2166136261;
      for (let i = 0; i < k.length; i++) { h ^= k.charCodeAt(i); h = Math.imul(h, 16777619); }
      c = PALETTE[(h >>> 0) % PALETTE.length];
      kindColorCache.set(k, c);
    }
    return c;
  }
  const EVENT_COLOR = { timeout: '#d97706', crash: '#dc2626', recover: '#16a34a', drop: '#6b7280', env: '#7c3aed' };
  function stepColor(st) { return st.kind === 'deliver' ? kindColor(st.msg_kind || 'message') : EVENT_COLOR[st.kind] || '#475569'; }

  // ------------------------------------------------- send ↔ delivery matching
  // sentAt[i] = step that sent the message delivered (or dropped) at step i; deliveredAt[i][j] =
  // step at which send j of step i arrived. Best effort: same sender, receiver and kind, the
  // oldest one with an identical label first, else the oldest.
  const sentAt = new Array(S + 1).fill(-1);
  const deliveredAt = new Array(S + 1);
  (function matchMessages() {
    const queues = new Map();
    for (let i = 1; i <= S; i++) {
      const st = STEPS[i - 1];
      if ((st.kind === 'deliver' || st.kind === 'drop') && st.src !== null && st.src !== undefined) {
        const q = queues.get(st.src + '>' + st.actor + '>' + (st.msg_kind || ''));
        if (q && q.length) {
          let k = q.findIndex((m) => m.label === st.label);
          if (k < 0) k = 0;
          const m = q.splice(k, 1)[0];
          sentAt[i] = m.step;
          deliveredAt[m.step][m.j] = { step: i, dropped: st.kind === 'drop' };
        }
      }
      const sends = st.sends || [];
      deliveredAt[i] = new Array(sends.length).fill(null);
      sends.forEach((m, j) => {
        const key = st.actor + '>' + m.dst + '>' + (m.msg_kind || '');
        let q = queues.get(key);
        if (!q) { q = []; queues.set(key, q); }
        q.push({ step: i, j, label: m.label });
      });
    }
  })();

  // ------------------------------------------------------------- state
  const ui = {
    sel: S > 0 ? 1 : 0,
    actorOn: new Array(N).fill(true),
    kindOn: new Map(),
    rows: [],        // row items: {t:'step', i} | {t:'loop'} | {t:'back'}
    rowOf: new Int32Array(S + 1),
    laneOrder: [],
    laneX: new Float64Array(N),
    LW: 100,
    lanesW: 0,
    totalW: 0,
    focus: null,     // {actor, path} to reveal in the inspector after a search jump
    playTimer: null,
  };
  const kindCounts = new Map();
  for (const st of STEPS) {
    const k = kindKey(st);
    kindCounts.set(k, (kindCounts.get(k) || 0) + 1);
    ui.kindOn.set(k, true);
  }

  function stepVisible(i) {
    if (i === 0) return true;
    const st = STEPS[i - 1];
    if (!ui.kindOn.get(kindKey(st))) return false;
    return ui.actorOn[st.actor] || (st.src !== null && st.src !== undefined && ui.actorOn[st.src]);
  }

  function buildRows() {
    const rows = [];
    ui.rowOf.fill(-1);
    let loopPlaced = false;
    for (let i = 0; i <= S; i++) {
      if (LASSO && !loopPlaced && i >= LOOP) {
        if (stepVisible(i)) { rows.push({ t: 'loop' }); loopPlaced = true; }
      }
      if (stepVisible(i)) { ui.rowOf[i] = rows.length; rows.push({ t: 'step', i }); }
    }
    if (LASSO) {
      if (!loopPlaced) rows.push({ t: 'loop' });
      rows.push({ t: 'back' });
    }
    ui.rows = rows;
  }

  function layoutLanes() {
    ui.laneOrder = [];
    for (let a = 0; a < N; a++) if (ui.actorOn[a]) ui.laneOrder.push(a);
    const scroll = $('lanes-scroll');
    const avail = Math.max(0, scroll.clientWidth - GUTTER - LABEL_MIN);
    const n = Math.max(1, ui.laneOrder.length);
    ui.LW = Math.max(58, Math.min(112, Math.floor(avail / n)));
    ui.lanesW = ui.laneOrder.length * ui.LW;
    // The event column takes whatever width the lanes leave (at least LABEL_MIN).
    ui.totalW = Math.max(GUTTER + ui.lanesW + LABEL_MIN, scroll.clientWidth);
    ui.laneX.fill(NaN);
    ui.laneOrder.forEach((a, k) => { ui.laneX[a] = k * ui.LW + ui.LW / 2; });
  }

  // --------------------------------------------------------------- header
  function renderHeader() {
    $('scenario').textContent = TR.scenario;
    $('mutant').textContent = TR.mutant === null || TR.mutant === undefined ? '— (clean model)' : TR.mutant;
    $('property-id').textContent = TR.property.id;
    $('property-name').textContent = TR.property.name;
    const badge = $('verdict-badge');
    badge.textContent = LASSO ? 'liveness lasso' : STUCK ? 'liveness · stuck' : 'safety';
    badge.classList.add(LASSO || STUCK ? 'badge-lasso' : 'badge-safety');
    badge.title = 'property kind: ' + TR.property.kind;
    const f = $('failing');
    f.textContent = '';
    if (LASSO) {
      f.append(
        'Never satisfied: steps ', jumpLink(LOOP, String(LOOP)), '–', jumpLink(S, String(S)),
        ' repeat forever (after step ' + S + ' the system is back in the state before step ' + LOOP + ').'
      );
    } else if (STUCK) {
      f.append('Never satisfied: after ', S ? jumpLink(S) : 'the initial state',
        ' no fair step is enabled, so the system may stay in this state forever without ' + TR.property.id + ' ever holding.');
    } else if (S === 0) {
      f.append('Violated in the initial state.');
    } else {
      const st = STEPS[S - 1];
      f.append('Violated after ', jumpLink(S), ': ', el('span', { class: 'pill pill-' + st.kind, text: st.kind }), ' ',
        el('code', { text: st.label }), ' at ', el('b', { text: actorName(st.actor) }), '.');
    }
    const dl = $('download');
    dl.setAttribute('download', (TR.scenario + (TR.mutant ? '--' + TR.mutant : '')).replace(/[^A-Za-z0-9._-]/g, '_') + '.trace.json');
    if (LASSO) { $('play-loop').hidden = false; $('stop-loop').hidden = false; }
  }
  function jumpLink(i, text) {
    return el('a', { href: '#step=' + i, class: 'jump', text: text || 'step ' + i, onclick: (e) => { e.preventDefault(); select(i, { scroll: true }); } });
  }

  // -------------------------------------------------------------- filters
  function renderFilters() {
    const af = $('actor-filters');
    af.textContent = '';
    ACTORS.forEach((a, k) => {
      const cb = el('input', { type: 'checkbox', 'data-testid': 'actor-filter', 'data-actor': k, value: a.name });
      cb.checked = ui.actorOn[k];
      cb.addEventListener('change', () => { ui.actorOn[k] = cb.checked; refilter(); });
      af.append(el('label', { class: 'chip', title: [a.role, a.cluster].filter(Boolean).join(' · ') }, cb, a.name));
    });
    const kf = $('kind-filters');
    kf.textContent = '';
    kf.parentElement.hidden = kindCounts.size === 0;
    const kinds = [...kindCounts.keys()].sort((x, y) => kindCounts.get(y) - kindCounts.get(x) || x.localeCompare(y));
    for (const k of kinds) {
      const sample = STEPS.find((st) => kindKey(st) === k);
      const color = stepColor(sample);
      const cb = el('input', { type: 'checkbox', 'data-testid': 'kind-filter', 'data-kind': k, value: k });
      cb.checked = ui.kindOn.get(k);
      cb.addEventListener('change', () => { ui.kindOn.set(k, cb.checked); refilter(); });
      const sw = el('span', { class: 'swatch' });
      sw.style.background = color;
      kf.append(el('label', { class: 'chip', title: sample.kind + ': ' + kindCounts.get(k) + ' steps' }, cb, sw, k, el('span', { class: 'count', text: String(kindCounts.get(k)) })));
    }
  }
  function refilter() {
    buildRows();
    layoutLanes();
    renderLaneHead();
    renderBody();
    renderInspector();
  }

  // -------------------------------------------------------------- lanes
  function renderLaneHead() {
    const head = $('lanes-head');
    head.textContent = '';
    head.style.width = ui.totalW + 'px';
    head.append(el('div', { class: 'head-gutter', text: 'step' }));
    const sst = stateAt(ui.sel);
    const cur = step(ui.sel);
    for (const a of ui.laneOrder) {
      const A = ACTORS[a];
      const cls = ['lane-head'];
      if (sst.crashed[a]) cls.push('is-crashed');
      if (cur && (cur.actor === a || cur.src === a)) cls.push('is-active');
      const title = A.name + (A.role ? ' — ' + A.role : '') + (A.cluster ? ' · cluster ' + A.cluster : '');
      // Narrow lanes: split "replica-A1" into a small "replica-" over a bold "A1".
      const cut = Math.max(A.name.lastIndexOf('-'), A.name.lastIndexOf('_'), A.name.lastIndexOf('.'));
      const split = A.name.length * 7.4 > ui.LW - 8 && cut > 0 && cut < A.name.length - 1;
      if (split) cls.push('split');
      const h = el('div', { class: cls.join(' '), 'data-testid': 'lane', 'data-actor': a, title },
        split ? el('div', { class: 'lane-pre', text: A.name.slice(0, cut + 1) }) : null,
        el('div', { class: 'lane-name', text: split ? A.name.slice(cut + 1) : A.name }),
        split ? null : el('div', { class: 'lane-sub', text: sst.crashed[a] ? 'crashed' : [A.role, A.cluster].filter(Boolean).join(' · ') }));
      if (split && sst.crashed[a]) h.append(el('div', { class: 'lane-crashed-dot', title: 'crashed' }));
      h.style.left = (GUTTER + ui.laneX[a] - ui.LW / 2) + 'px';
      h.style.width = ui.LW + 'px';
      head.append(h);
    }
    const lab = el('div', { class: 'head-label', text: 'event' });
    lab.style.left = (GUTTER + ui.lanesW) + 'px';
    head.append(lab);
  }

  function visibleRange() {
    const scroll = $('lanes-scroll');
    const top = Math.max(0, scroll.scrollTop - HEAD_H);
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(ui.rows.length - 1, Math.ceil((top + scroll.clientHeight) / ROW_H) + OVERSCAN);
    return [first, last];
  }

  function renderBody() {
    const body = $('lanes-body');
    body.style.height = (ui.rows.length * ROW_H + 8) + 'px';
    body.style.width = ui.totalW + 'px';
    renderLoopBracket();
    renderVisible(true);
  }

  function renderLoopBracket() {
    const br = $('loop-bracket');
    if (!LASSO) { br.hidden = true; return; }
    const top = ui.rows.findIndex((r) => r.t === 'loop');
    const bottom = ui.rows.length - 1;
    br.hidden = false;
    br.style.top = (top * ROW_H + ROW_H / 2) + 'px';
    br.style.height = ((bottom - top) * ROW_H) + 'px';
    br.title = 'from here it loops: steps ' + LOOP + '–' + S + ' repeat forever';
  }

  let renderQueued = false;
  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; renderVisible(); });
  }

  // Rows are kept by row index while they stay in view; only rows scrolling in are built.
  // `rebuild` drops them all (after filtering or a resize changed the layout).
  const rowEls = new Map();
  let svgRange = '';
  function renderVisible(rebuild) {
    const [first, last] = visibleRange();
    const rowsEl = $('rows');
    if (rebuild) { rowEls.clear(); rowsEl.textContent = ''; svgRange = ''; }
    for (const [r, e] of rowEls) {
      if (r < first || r > last) { e.remove(); rowEls.delete(r); }
    }
    const frag = document.createDocumentFragment();
    const labelLeft = GUTTER + ui.lanesW;
    for (let r = first; r <= last; r++) {
      if (rowEls.has(r)) continue;
      const item = ui.rows[r];
      let row;
      if (item.t === 'step') row = stepRow(item.i, labelLeft);
      else if (item.t === 'loop') {
        row = el('div', { class: 'row banner loop-banner' },
          el('span', { class: 'banner-text' }, el('b', { text: '⟲ from here it loops' }),
            ' — steps ' + LOOP + '–' + S + ' repeat forever'));
      } else {
        row = el('div', { class: 'row banner back-banner' },
          el('span', { class: 'banner-text' }, '↑ after step ' + S + ' the system is back in the state before ', jumpLink(LOOP)));
      }
      row.style.top = (r * ROW_H) + 'px';
      rowEls.set(r, row);
      frag.append(row);
    }
    rowsEl.append(frag);
    const range = first + ':' + last;
    if (range !== svgRange) { svgRange = range; renderSvg(first, last); }
  }

  // Move the selection marks (row highlight, bold arrows) without rebuilding anything.
  function markSelection(prevSel) {
    const rowsEl = $('rows');
    for (const e of rowsEl.querySelectorAll('.row.selected')) e.classList.remove('selected');
    const rNew = ui.rowOf[ui.sel];
    if (rNew >= 0 && rowEls.has(rNew)) rowEls.get(rNew).classList.add('selected');
    const svg = $('lanes-svg');
    if (prevSel !== undefined) for (const g of svg.querySelectorAll('g.sel')) g.classList.remove('sel');
    const g = svg.querySelector('g[data-s="' + ui.sel + '"]');
    if (g) g.classList.add('sel');
  }

  function stepRow(i, labelLeft) {
    const st = step(i);
    const cls = ['row'];
    if (i === ui.sel) cls.push('selected');
    if (!LASSO && i === FAIL) cls.push('failing');
    if (LASSO && i >= LOOP) cls.push('in-loop');
    const row = el('div', { class: cls.join(' '), 'data-testid': 'step-row', 'data-step': i });
    row.append(el('span', { class: 'idx', text: i === 0 ? 'init' : String(i) }));
    const lab = el('span', { class: 'label-cell' });
    lab.style.left = labelLeft + 'px';
    if (!st) {
      lab.append(el('span', { class: 'pill pill-init', text: 'initial' }), el('span', { class: 'lbl muted', text: S ? 'state before step 1' : 'the initial state' }));
      if (!LASSO && FAIL === 0) lab.append(el('span', { class: 'fail-tag', text: failTag() }));
    } else {
      lab.append(el('span', { class: 'pill pill-' + st.kind, text: st.kind }));
      const t = el('span', { class: 'lbl', text: st.label });
      if (st.kind === 'deliver' || st.kind === 'drop') t.style.borderLeftColor = stepColor(st);
      lab.append(t);
      if (!LASSO && i === FAIL) lab.append(el('span', { class: 'fail-tag', text: failTag(), title: STUCK ? 'the system may stay here forever' : 'the property is violated after this step' }));
      lab.title = describeStep(i);
    }
    if (EXPLORER) {
      lab.append(el('a', { class: 'xlink', 'data-testid': 'explorer-link', href: explorerUrl(i), target: '_blank', rel: 'noopener', title: 'open this step in the stateright Explorer', text: '↗' }));
    }
    row.append(lab);
    row.addEventListener('click', (e) => { if (e.target.closest('a')) return; select(i); });
    return row;
  }

  function failTag() { return '✖ ' + TR.property.id + (STUCK ? ' · stuck' : ''); }

  function describeStep(i) {
    const st = step(i);
    if (!st) return 'initial state';
    const who = actorName(st.actor);
    switch (st.kind) {
      case 'deliver': return 'step ' + i + ': ' + actorName(st.src) + ' → ' + who + ': ' + st.label;
      case 'drop': return 'step ' + i + ': dropped ' + actorName(st.src) + ' → ' + who + ': ' + st.label;
      case 'timeout': return 'step ' + i + ': timer at ' + who + ': ' + st.label;
      case 'crash': return 'step ' + i + ': ' + who + ' crashes';
      case 'recover': return 'step ' + i + ': ' + who + ' recovers';
      default: return 'step ' + i + ': environment event at ' + who + ': ' + st.label;
    }
  }

  function renderSvg(first, last) {
    const svg = $('lanes-svg');
    const h = (last - first + 1) * ROW_H;
    svg.style.top = (first * ROW_H) + 'px';
    svg.style.left = GUTTER + 'px';
    svg.setAttribute('width', Math.max(1, ui.lanesW));
    svg.setAttribute('height', Math.max(1, h));
    svg.setAttribute('viewBox', '0 0 ' + Math.max(1, ui.lanesW) + ' ' + Math.max(1, h));
    const yOf = (r) => (r - first) * ROW_H + ROW_H / 2;
    const out = [];

    // Lane lines, merged into runs of equal style (alive / crashed).
    for (const a of ui.laneOrder) {
      const x = ui.laneX[a];
      let runStart = first, runCrashed = null;
      const flush = (endR) => {
        if (runCrashed === null) return;
        const y0 = (runStart - first) * ROW_H, y1 = (endR - first + 1) * ROW_H;
        out.push('<line class="lane-line' + (runCrashed ? ' crashed' : '') + '" x1="' + x + '" y1="' + y0 + '" x2="' + x + '" y2="' + y1 + '"/>');
      };
      let lastI = 0;
      for (let r = first; r <= last; r++) {
        const it = ui.rows[r];
        if (it.t === 'step') lastI = it.i;
        else if (r === first) lastI = rowStepBefore(r);
        const c = !!stateAt(lastI).crashed[a];
        if (c !== runCrashed) { flush(r - 1); runStart = r; runCrashed = c; }
      }
      flush(last);
    }

    // Long-lived messages: arrows from the sending row to the delivering row when both are
    // visible and the message was in flight for at most LONG_SPAN rows.
    for (let r = first; r <= last; r++) {
      const it = ui.rows[r];
      if (it.t !== 'step' || it.i === 0) continue;
      const i = it.i, st = STEPS[i - 1];
      const y = yOf(r);
      const xa = ui.laneX[st.actor];
      const hasA = !Number.isNaN(xa);
      const col = stepColor(st);
      out.push('<g data-s="' + i + '"' + (i === ui.sel ? ' class="sel"' : '') + '>');
      if (st.kind === 'deliver' || st.kind === 'drop') {
        const xs = st.src === null || st.src === undefined ? NaN : ui.laneX[st.src];
        const sr = sentAt[i] >= 0 ? ui.rowOf[sentAt[i]] : -1;
        let y0 = y;
        if (sr >= 0 && r - sr <= LONG_SPAN && r > sr) y0 = yOf(sr);
        if (st.kind === 'deliver') {
          if (hasA && !Number.isNaN(xs) && xs !== xa) {
            out.push(arrow(xs, y0, xa, y, col, ''));
            if (y0 === y) {
              const len = Math.abs(xa - xs);
              const txt = st.msg_kind || '';
              if (txt && txt.length * 6.2 < len - 18) {
                out.push('<text class="msg-text" x="' + ((xs + xa) / 2) + '" y="' + (y - 5) + '" fill="' + col + '">' + esc(txt) + '</text>');
              }
            }
          } else if (hasA && !Number.isNaN(xs)) {
            out.push('<path class="msg" d="M' + xa + ' ' + (y - 7) + ' c 22 0 22 14 4 14" stroke="' + col + '" fill="none"/>');
          } else if (hasA) {
            out.push(arrow(xa - 26, y, xa, y, col, ' from-hidden'));
          }
          if (hasA) out.push('<circle class="recv-dot" cx="' + xa + '" cy="' + y + '" r="3.5" fill="' + col + '"/>');
        } else {
          // dropped: dashed line that stops short, with a cross where the message was lost
          if (!Number.isNaN(xs)) {
            const tx = hasA ? xa : xs + 40;
            const mx = xs + (tx - xs) * 0.6;
            const my = y0 + (y - y0) * 0.6;
            out.push('<line class="drop-line" x1="' + xs + '" y1="' + y0 + '" x2="' + mx + '" y2="' + my + '"/>');
            out.push('<path class="drop-x" d="M' + (mx - 4) + ' ' + (my - 4) + 'l8 8m0 -8l-8 8"/>');
          } else if (hasA) {
            out.push('<path class="drop-x" d="M' + (xa - 4) + ' ' + (y - 4) + 'l8 8m0 -8l-8 8"/>');
          }
        }
      } else if (hasA) {
        out.push(eventIcon(st.kind, xa, y));
      }
      // Sends of this step that are never delivered within the trace: short stubs.
      if (hasA && st.sends) {
        st.sends.forEach((m, j) => {
          const d = deliveredAt[i][j];
          const dr = d ? ui.rowOf[d.step] : -1;
          if (d && dr >= 0 && dr - r <= LONG_SPAN) return; // drawn as a whole arrow at delivery
          const xd = ui.laneX[m.dst];
          if (Number.isNaN(xd) || xd === xa) return;
          out.push(sendStub(xa, y, xd > xa ? 1 : -1, kindColor(m.msg_kind || 'message')));
        });
      }
      out.push('</g>');
    }
    svg.innerHTML = out.join('');
  }

  function rowStepBefore(r) {
    for (let k = r; k >= 0; k--) if (ui.rows[k].t === 'step') return ui.rows[k].i;
    return 0;
  }

  function arrow(x0, y0, x1, y1, col, cls) {
    const ang = Math.atan2(y1 - y0, x1 - x0);
    const hx = x1 - Math.cos(ang) * 5, hy = y1 - Math.sin(ang) * 5;
    const a1 = ang + Math.PI - 0.45, a2 = ang + Math.PI + 0.45;
    const p = (hx + Math.cos(a1) * 8) + ',' + (hy + Math.sin(a1) * 8) + ' ' + hx + ',' + hy + ' ' + (hx + Math.cos(a2) * 8) + ',' + (hy + Math.sin(a2) * 8);
    return '<line class="msg' + cls + '" x1="' + x0 + '" y1="' + y0 + '" x2="' + hx + '" y2="' + hy + '" stroke="' + col + '"/>' +
      '<polygon class="msg-head' + cls + '" points="' + p + '" fill="' + col + '"/>';
  }

  // A message leaving its sender (drawn when its delivery is not drawn as a whole arrow).
  function sendStub(x, y, dir, col) {
    const ex = x + dir * 17, ey = y + 7;
    return '<path class="send-stub" stroke="' + col + '" d="M' + (x + dir * 5) + ' ' + (y + 2) + 'L' + ex + ' ' + ey +
      'M' + (ex - dir * 5.5) + ' ' + (ey - 0.2) + 'L' + ex + ' ' + ey + 'L' + (ex - dir * 2.5) + ' ' + (ey - 5) + '"/>';
  }

  function eventIcon(kind, x, y) {
    switch (kind) {
      case 'timeout':
        return '<g class="ev ev-timeout"><circle cx="' + x + '" cy="' + y + '" r="7.5"/><path d="M' + x + ' ' + (y - 4.5) + 'V' + y + 'h3.5"/></g>';
      case 'crash':
        return '<g class="ev ev-crash"><circle cx="' + x + '" cy="' + y + '" r="8"/><path d="M' + (x - 4) + ' ' + (y - 4) + 'l8 8m0 -8l-8 8"/></g>';
      case 'recover':
        return '<g class="ev ev-recover"><circle cx="' + x + '" cy="' + y + '" r="8"/><path d="M' + (x - 4) + ' ' + (y + 2) + 'l4 -4l4 4M' + x + ' ' + (y - 2) + 'v6"/></g>';
      default:
        return '<g class="ev ev-env"><path class="diamond" d="M' + x + ' ' + (y - 8) + 'l8 8l-8 8l-8 -8z"/><path class="bang" d="M' + x + ' ' + (y - 4) + 'v4.5M' + x + ' ' + (y + 3) + 'v1"/></g>';
    }
  }

  function renderLegend() {
    const lg = $('legend');
    const item = (svg, text) => {
      const s = document.createElementNS(SVGNS, 'svg');
      s.setAttribute('width', '30'); s.setAttribute('height', '18'); s.setAttribute('viewBox', '0 0 30 18');
      s.innerHTML = svg;
      return el('span', { class: 'legend-item' }, s, text);
    };
    lg.replaceChildren(
      item(arrow(2, 9, 28, 9, '#2563eb', ''), 'message delivered'),
      item('<line class="drop-line" x1="2" y1="9" x2="20" y2="9"/><path class="drop-x" d="M16 5l8 8m0 -8l-8 8"/>', 'dropped'),
      item(eventIcon('timeout', 15, 9), 'timer'),
      item(eventIcon('crash', 15, 9), 'crash'),
      item(eventIcon('recover', 15, 9), 'recover'),
      item(eventIcon('env', 15, 9), 'environment'),
      item('<line class="lane-line crashed" x1="15" y1="0" x2="15" y2="18"/>', 'actor down'),
      item(sendStub(6, 4, 1, '#2563eb'), 'sent (delivered later or never)'),
    );
  }

  // ------------------------------------------------------------- selection
  function select(i, opts) {
    i = Math.max(0, Math.min(S, i));
    const prev = ui.sel;
    const changed = i !== prev;
    ui.sel = i;
    ui.focus = opts && opts.focus ? opts.focus : null;
    if (!opts || opts.scroll !== false) scrollToStep(i);
    renderLaneHead();
    renderVisible();
    markSelection(prev);
    renderInspector();
    if (changed || (opts && opts.hash)) {
      try { history.replaceState(null, '', '#step=' + i); } catch (e) { /* file:// */ }
    }
  }

  function scrollToStep(i) {
    const r = ui.rowOf[i];
    if (r < 0) return;
    const scroll = $('lanes-scroll');
    const headH = HEAD_H;
    const y = headH + r * ROW_H;
    const viewTop = scroll.scrollTop + headH;
    const viewBottom = scroll.scrollTop + scroll.clientHeight;
    if (y < viewTop + ROW_H) scroll.scrollTop = Math.max(0, y - headH - ROW_H * 2);
    else if (y + ROW_H > viewBottom - ROW_H) scroll.scrollTop = y + ROW_H * 3 - scroll.clientHeight;
  }

  function neighbour(i, dir) {
    for (let k = i + dir; k >= 0 && k <= S; k += dir) if (ui.rowOf[k] >= 0) return k;
    return i;
  }
  function prevVisible(i) {
    for (let k = i - 1; k >= 0; k--) if (ui.rowOf[k] >= 0) return k;
    return i > 0 ? i - 1 : -1;
  }

  // --------------------------------------------------------- structural diff
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  // null when equal; otherwise {k:'chg', old} | {k:'add'} | {k:'del', old} | {k:'obj', kids, n}
  function diff(a, b) {
    if (a === b) return null;
    const ao = isObj(a), bo = isObj(b), aa = Array.isArray(a), ba = Array.isArray(b);
    if ((ao && bo) || (aa && ba)) {
      const kids = new Map();
      let n = 0;
      const keys = ao ? new Set([...Object.keys(a), ...Object.keys(b)]) : null;
      const iter = ao ? keys : Array.from({ length: Math.max(a.length, b.length) }, (_, k) => k);
      for (const k of iter) {
        const inA = ao ? Object.prototype.hasOwnProperty.call(a, k) : k < a.length;
        const inB = ao ? Object.prototype.hasOwnProperty.call(b, k) : k < b.length;
        let d;
        if (inA && !inB) d = { k: 'del', old: a[k] };
        else if (!inA && inB) d = { k: 'add' };
        else d = diff(a[k], b[k]);
        if (d) { kids.set(String(k), d); n += d.k === 'obj' ? d.n : 1; }
      }
      return n ? { k: 'obj', kids, n } : null;
    }
    if (typeof a !== 'object' && typeof b !== 'object') return a === b ? null : { k: 'chg', old: a };
    return { k: 'chg', old: a };
  }

  function diffCount(d) { return !d ? 0 : d.k === 'obj' ? d.n : 1; }

  const diffCache = new Map();
  function diffsFor(prev, cur) {
    const key = prev + ':' + cur;
    let d = diffCache.get(key);
    if (!d) {
      const ps = prev < 0 ? null : stateAt(prev), cs = stateAt(cur);
      d = ACTORS.map((_, a) => {
        if (!ps) return { d: null, crashed: null };
        return { d: diff(ps.actors[a], cs.actors[a]), crashed: ps.crashed[a] !== cs.crashed[a] ? ps.crashed[a] : null };
      });
      if (diffCache.size > 64) diffCache.clear();
      diffCache.set(key, d);
    }
    return d;
  }

  // ------------------------------------------------------------- inspector
  function renderInspector() {
    const i = ui.sel;
    const st = step(i);
    const prev = i === 0 ? -1 : prevVisible(i);
    const head = $('insp-head');
    const nav = el('div', { class: 'insp-nav' },
      el('button', { type: 'button', class: 'nav-btn', title: 'previous step (←)', onclick: () => select(neighbour(ui.sel, -1)), disabled: neighbour(i, -1) === i }, '←'),
      el('span', { class: 'sel-step', 'data-testid': 'selected-step', 'data-step': i },
        i === 0 ? 'Initial state' : 'Step ', i === 0 ? null : el('b', { text: String(i) }), i === 0 ? null : ' / ' + S),
      el('button', { type: 'button', class: 'nav-btn', title: 'next step (→)', onclick: () => select(neighbour(ui.sel, 1)), disabled: neighbour(i, 1) === i }, '→'),
      st ? el('span', { class: 'pill pill-' + st.kind, text: st.kind }) : el('span', { class: 'pill pill-init', text: 'initial' }),
      el('span', { class: 'spacer' }),
      EXPLORER ? el('a', { class: 'xlink-btn', 'data-testid': 'explorer-link', href: explorerUrl(i), target: '_blank', rel: 'noopener', text: 'Explorer ↗', title: 'open the path up to this step in the stateright Explorer' }) : null,
    );
    const info = el('div', { class: 'insp-info' });
    if (st) {
      const who = el('div', { class: 'who' });
      if (st.kind === 'deliver' || st.kind === 'drop') {
        who.append(el('b', { text: actorName(st.src) }), ' → ', el('b', { text: actorName(st.actor) }),
          st.kind === 'drop' ? ' (dropped)' : '',
          sentAt[i] >= 0 ? el('span', { class: 'muted' }, ' · sent at ', jumpLink(sentAt[i])) : el('span', { class: 'muted', text: ' · sent before the trace or unmatched' }));
      } else {
        who.append(el('b', { text: actorName(st.actor) }), el('span', { class: 'muted', text: ' · ' + ({ timeout: 'timer fired', crash: 'crashed', recover: 'recovered', env: 'environment event' }[st.kind] || st.kind) }));
      }
      const tags = el('div', { class: 'insp-tags' },
        (!LASSO && i === FAIL) ? el('span', { class: 'fail-tag', text: STUCK ? '✖ stuck: no fair step is left, ' + TR.property.name + ' never holds' : '✖ ' + TR.property.name + ' is violated after this step' }) : null,
        (LASSO && i >= LOOP) ? el('span', { class: 'loop-tag', text: '⟲ part of the loop (steps ' + LOOP + '–' + S + ')' }) : null);
      if (tags.childElementCount) info.append(tags);
      info.append(el('code', { class: 'insp-label', text: st.label }), who);
      if (st.sends && st.sends.length) {
        const ul = el('ul', { class: 'sends' });
        st.sends.forEach((m, j) => {
          const d = deliveredAt[i][j];
          const sw = el('span', { class: 'swatch' });
          sw.style.background = kindColor(m.msg_kind || 'message');
          ul.append(el('li', { title: 'to ' + actorName(m.dst) + ': ' + (m.label || m.msg_kind || '') },
            sw, el('span', { class: 'send-to' }, '→ ', el('b', { text: actorName(m.dst) })),
            el('code', { class: 'send-label', text: m.label || m.msg_kind || '' }),
            d ? el('span', { class: 'send-fate' }, d.dropped ? 'dropped at ' : 'delivered at ', jumpLink(d.step)) : el('span', { class: 'send-fate muted', text: 'not delivered' })));
        });
        info.append(ul);
      }
    } else {
      if (!LASSO && FAIL === 0) info.append(el('div', { class: 'insp-tags' }, el('span', { class: 'fail-tag', text: STUCK ? '✖ stuck in the initial state: ' + TR.property.name + ' never holds' : '✖ ' + TR.property.name + ' is violated in the initial state' })));
      info.append(el('div', { class: 'muted', text: 'The state of every actor before the first step.' }));
    }
    const diffs = diffsFor(prev, i);
    let total = 0, touched = 0;
    for (const a of ui.laneOrder) {
      const d = diffs[a];
      const n = diffCount(d.d) + (d.crashed !== null ? 1 : 0);
      total += n; if (n) touched++;
    }
    const summary = el('div', { class: 'diff-summary' });
    if (prev >= 0) {
      summary.append(total ? (total + ' field' + (total === 1 ? '' : 's') + ' changed in ' + touched + ' actor' + (touched === 1 ? '' : 's')) : 'no state change',
        ' since ', prev === i - 1 ? 'the previous step' : jumpLink(prev), prev !== i - 1 && prev === 0 ? ' (initial)' : '');
    }
    const changes = prev >= 0 ? changeList(diffs, prev, i) : null;
    head.replaceChildren(...[nav, info, summary, changes].filter(Boolean));

    const body = $('insp-body');
    const frag = document.createDocumentFragment();
    const sst = stateAt(i);
    for (const a of ui.laneOrder) {
      const d = diffs[a];
      const n = diffCount(d.d) + (d.crashed !== null ? 1 : 0);
      const A = ACTORS[a];
      const involved = st && (st.actor === a || st.src === a);
      const focusHere = ui.focus && ui.focus.actor === a;
      const open = n > 0 || (st && st.actor === a) || focusHere || (i === 0 && a === 0);
      const card = el('details', { class: 'actor-card' + (n ? ' has-changes' : '') + (involved ? ' involved' : ''), 'data-actor': a });
      card.open = open;
      const sum = el('summary', null,
        el('span', { class: 'card-name', text: A.name }),
        el('span', { class: 'card-sub', text: [A.role, A.cluster].filter(Boolean).join(' · ') }),
        sst.crashed[a] ? el('span', { class: 'tag tag-crashed', text: 'crashed' }) : null,
        involved ? el('span', { class: 'tag tag-involved', text: st.actor === a ? 'acts' : 'sender' }) : null,
        n ? el('span', { class: 'tag tag-changes', text: n + ' change' + (n === 1 ? '' : 's') }) : null);
      card.append(sum);
      const fill = () => {
        if (card.dataset.filled) return;
        card.dataset.filled = '1';
        const tree = el('div', { class: 'tree' });
        if (d.crashed !== null) {
          tree.append(el('div', { class: 'line d-chg', 'data-testid': 'diff-changed', 'data-path': a + ':(crashed)', 'data-diff': 'changed' },
            el('span', { class: 'key meta-key', text: '(crashed)' }), el('span', { class: 'colon', text: ': ' }),
            valueSpan(sst.crashed[a]), el('span', { class: 'old', text: 'was ' + JSON.stringify(d.crashed) })));
        }
        if (d.d && d.d.k !== 'obj') {
          // The whole state was replaced by a value of another shape.
          tree.append(el('div', { class: 'line d-chg', 'data-testid': 'diff-changed', 'data-path': a + ':', 'data-diff': 'changed' },
            el('span', { class: 'key meta-key', text: '(whole state)' }), el('span', { class: 'old', text: 'was ' + short(d.d.old) })));
        }
        renderChildren(tree, sst.actors[a], d.d && d.d.k === 'obj' ? d.d : null, 0, [], a);
        card.append(tree);
      };
      if (open) fill(); else card.addEventListener('toggle', fill, { once: true });
      frag.append(card);
    }
    body.replaceChildren(frag);
    if (ui.focus) {
      const f = body.querySelector('.focus');
      if (f) f.scrollIntoView({ block: 'center' });
    }
  }

  // A field path for the narrow change list: its last segments, as many as fit in about 26
  // characters (at least the last one), "…." in front when some were left out.
  function shortPath(path) {
    if (!path.length) return '(whole state)';
    let out = String(path[path.length - 1]);
    let k = path.length - 2;
    for (; k >= 0 && out.length + String(path[k]).length + 1 <= 26; k--) out = path[k] + '.' + out;
    return k >= 0 ? '….' + out : out;
  }

  // One line per changed field: "actor  path  old → new"; click reveals it in the tree.
  function changeList(diffs, prev, i) {
    const items = [];
    const ps = stateAt(prev), cs = stateAt(i);
    for (const a of ui.laneOrder) {
      const d = diffs[a];
      if (d.crashed !== null) items.push({ a, path: ['(crashed)'], oldV: d.crashed, newV: cs.crashed[a], kind: 'chg' });
      if (!d.d) continue;
      const walk = (node, path, oldV, newV) => {
        if (node.k === 'obj') {
          for (const [k, kd] of node.kids) walk(kd, path.concat([k]), oldV == null ? undefined : oldV[k], newV == null ? undefined : newV[k]);
        } else {
          items.push({ a, path, oldV: node.k === 'add' ? undefined : node.old, newV: node.k === 'del' ? undefined : newV, kind: node.k });
        }
      };
      walk(d.d, [], ps.actors[a], cs.actors[a]);
    }
    if (!items.length) return null;
    const MAX = 6;
    const box = el('div', { class: 'changes' });
    const row = (it) => {
      const b = el('button', { type: 'button', class: 'change-item ch-' + it.kind, 'data-testid': 'change-item', title: 'show in the state tree' },
        el('span', { class: 'ch-actor', text: actorName(it.a) }),
        el('span', { class: 'ch-path', text: shortPath(it.path), title: it.path.join('.') }),
        el('span', { class: 'ch-val' },
          it.kind === 'add' ? el('span', { class: 'ch-tag', text: 'added ' }) : el('span', { class: 'ch-old', text: short(it.oldV) }),
          it.kind === 'add' ? null : ' → ',
          it.kind === 'del' ? el('span', { class: 'ch-tag', text: 'removed' }) : el('span', { class: 'ch-new', text: short(it.newV) })));
      b.addEventListener('click', () => { if (it.path[0] !== '(crashed)') select(ui.sel, { focus: { actor: it.a, path: it.path }, scroll: false }); });
      return b;
    };
    items.slice(0, MAX).forEach((it) => box.append(row(it)));
    if (items.length > MAX) {
      const more = el('button', { type: 'button', class: 'change-more', text: '+ ' + (items.length - MAX) + ' more' });
      more.addEventListener('click', () => { more.remove(); items.slice(MAX).forEach((it) => box.append(row(it))); });
      box.append(more);
    }
    return box;
  }

  function valueSpan(v) {
    if (v === null) return el('span', { class: 'v v-null', text: 'null' });
    switch (typeof v) {
      case 'string': return el('span', { class: 'v v-str', text: JSON.stringify(v) });
      case 'number': return el('span', { class: 'v v-num', text: String(v) });
      case 'boolean': return el('span', { class: 'v v-bool', text: String(v) });
      default: return el('span', { class: 'v', text: JSON.stringify(v) });
    }
  }
  function short(v) {
    const s = JSON.stringify(v);
    return s === undefined ? 'undefined' : s.length > 60 ? s.slice(0, 57) + '…' : s;
  }
  function sizeOf(v) { return Array.isArray(v) ? v.length : isObj(v) ? Object.keys(v).length : 0; }
  function isContainer(v) { return v !== null && typeof v === 'object'; }

  function pathMatchesFocus(actor, path) {
    const f = ui.focus;
    if (!f || f.actor !== actor || path.length > f.path.length) return false;
    for (let k = 0; k < path.length; k++) if (String(f.path[k]) !== String(path[k])) return false;
    return true;
  }

  // Append the children of container `v` (current value) to `parent`, annotated by `d`.
  function renderChildren(parent, v, d, depth, path, actor) {
    if (!isContainer(v)) { parent.append(el('div', { class: 'line' }, valueSpan(v))); return; }
    const arr = Array.isArray(v);
    const keys = arr ? v.map((_, k) => String(k)) : Object.keys(v);
    const kids = d && d.k === 'obj' ? d.kids : null;
    for (const k of keys) {
      parent.append(node(k, v[k], kids ? kids.get(k) || null : null, depth + 1, path.concat([k]), actor, arr));
    }
    if (kids) {
      for (const [k, kd] of kids) {
        if (kd.k !== 'del') continue;
        const p = path.concat([k]);
        parent.append(el('div', { class: 'line d-del', 'data-testid': 'diff-changed', 'data-diff': 'removed', 'data-path': actor + ':' + p.join('.'), style: 'padding-left:' + (depth * 16 + 18) + 'px' },
          el('span', { class: arr ? 'key idx-key' : 'key', text: k }), el('span', { class: 'colon', text: ': ' }),
          el('span', { class: 'v removed', text: short(kd.old) }), el('span', { class: 'old', text: 'removed' })));
      }
    }
  }

  function node(k, v, d, depth, path, actor, inArray) {
    const pad = 'padding-left:' + ((depth - 1) * 16 + 18) + 'px';
    const keySpan = el('span', { class: inArray ? 'key idx-key' : 'key', text: k });
    const dataPath = actor + ':' + path.join('.');
    const focus = ui.focus && pathMatchesFocus(actor, path) && ui.focus.path.length === path.length;
    let cls = 'line';
    let testid = null, kind = null, oldNote = null;
    if (d && d.k === 'chg') { cls += ' d-chg'; testid = 'diff-changed'; kind = 'changed'; oldNote = el('span', { class: 'old', text: 'was ' + short(d.old) }); }
    else if (d && d.k === 'add') { cls += ' d-add'; testid = 'diff-changed'; kind = 'added'; oldNote = el('span', { class: 'old', text: 'added' }); }
    if (focus) cls += ' focus';
    if (!isContainer(v)) {
      return el('div', { class: cls, style: pad, 'data-testid': testid, 'data-diff': kind, 'data-path': dataPath },
        keySpan, el('span', { class: 'colon', text: ': ' }), valueSpan(v), oldNote);
    }
    const arr = Array.isArray(v);
    const n = sizeOf(v);
    const innerDiff = d && d.k === 'obj';
    const wrap = el('div', { class: 'node' });
    const tog = el('span', { class: 'tog' });
    const brief = el('span', { class: 'brief', text: n === 0 ? (arr ? '[]' : '{}') : (arr ? '[' + n + ' item' + (n === 1 ? '' : 's') + ']' : '{' + n + ' key' + (n === 1 ? '' : 's') + '}') });
    const line = el('div', { class: cls + ' branch' + (innerDiff ? ' d-inner' : ''), style: pad, 'data-testid': testid, 'data-diff': kind, 'data-path': dataPath },
      tog, keySpan, el('span', { class: 'colon', text: ': ' }), brief,
      innerDiff ? el('span', { class: 'inner-count', text: d.n + ' changed' }) : null, oldNote);
    wrap.append(line);
    // An empty container has nothing to unfold, unless the step emptied it: then it lists
    // what was removed.
    if (n === 0 && !innerDiff) { tog.textContent = ' '; return wrap; }
    const kidsEl = el('div', { class: 'kids' });
    let filled = false;
    const fill = () => { if (!filled) { filled = true; renderChildren(kidsEl, v, innerDiff ? d : null, depth, path, actor); } };
    const small = n <= 4 && depth <= 2 && !Object.values(v).some(isContainer);
    let open = innerDiff || pathMatchesFocus(actor, path) || small || depth === 1 && n <= 8;
    const setOpen = (o) => { open = o; tog.textContent = o ? '▾' : '▸'; kidsEl.hidden = !o; if (o) fill(); };
    setOpen(open);
    line.addEventListener('click', () => setOpen(!open));
    wrap.append(kidsEl);
    return wrap;
  }

  // ------------------------------------------------------------- explorer
  const explorerComps = (TR.explorer_path || '').replace(/^#\/steps\/?/, '').split('/').filter((s) => s !== '');
  function explorerUrl(i) {
    // The Explorer path is one action index per transition starting with the init state, so
    // step i is reached by the first i+1 components (or i, if the path has no init component).
    let n;
    if (explorerComps.length === S + 1) n = i + 1;
    else if (explorerComps.length === S) n = i;
    else n = Math.min(i + 1, explorerComps.length);
    const frag = '#/steps' + (n > 0 ? '/' + explorerComps.slice(0, n).join('/') : '');
    return EXPLORER + '/' + frag;
  }

  // --------------------------------------------------------------- search
  function searchSteps(q) {
    q = q.trim().toLowerCase();
    if (!q) return [];
    const res = [];
    const LIMIT = 300;
    const valMatch = (v) => {
      if (v === undefined || isContainer(v)) return false;
      const s = String(v).toLowerCase();
      return typeof v === 'string' ? s.includes(q) : s === q;
    };
    for (let i = 1; i <= S && res.length < LIMIT; i++) {
      const ps = stateAt(i - 1), cs = stateAt(i);
      for (let a = 0; a < N && res.length < LIMIT; a++) {
        if (!ui.actorOn[a]) continue;
        walkChanges(ps.actors[a], cs.actors[a], [], (path, oldV, newV) => {
          const keyHit = path.some((p) => String(p).toLowerCase().includes(q));
          if (keyHit || valMatch(oldV) || valMatch(newV)) {
            res.push({ i, a, path: path.slice(), oldV, newV });
            return res.length < LIMIT;
          }
          return true;
        });
      }
    }
    return res;
  }
  // Calls f(path, old, new) for each changed leaf (or added/removed subtree); f returns false
  // to stop. `path` is a shared stack: copy it to keep it.
  function walkChanges(a, b, path, f) {
    if (a === b) return true;
    const ao = isObj(a), bo = isObj(b), aa = Array.isArray(a), ba = Array.isArray(b);
    if (ao && bo) {
      for (const k in b) {
        path.push(k);
        const ok = walkChanges(a[k], b[k], path, f);
        path.pop();
        if (!ok) return false;
      }
      for (const k in a) {
        if (Object.prototype.hasOwnProperty.call(b, k)) continue;
        path.push(k);
        const ok = f(path, a[k], undefined);
        path.pop();
        if (!ok) return false;
      }
      return true;
    }
    if (aa && ba) {
      const n = Math.max(a.length, b.length);
      for (let k = 0; k < n; k++) {
        path.push(String(k));
        const ok = walkChanges(a[k], b[k], path, f);
        path.pop();
        if (!ok) return false;
      }
      return true;
    }
    return f(path, a, b);
  }

  function renderSearch() {
    const box = $('search-results');
    const q = $('search').value;
    if (!q.trim()) { box.hidden = true; box.textContent = ''; return; }
    const res = searchSteps(q);
    box.textContent = '';
    box.hidden = false;
    const stepsHit = new Set(res.map((r) => r.i)).size;
    box.append(el('div', { class: 'sr-head', text: res.length ? (res.length >= 300 ? '300+' : res.length) + ' change' + (res.length === 1 ? '' : 's') + ' in ' + stepsHit + ' step' + (stepsHit === 1 ? '' : 's') : 'No field named or valued “' + q.trim() + '” changes' }));
    for (const r of res) {
      const b = el('button', { type: 'button', class: 'sr-item', 'data-testid': 'search-result', 'data-step': r.i },
        el('span', { class: 'sr-step', text: 'step ' + r.i }),
        el('span', { class: 'sr-actor', text: actorName(r.a) }),
        el('span', { class: 'sr-path', text: r.path.join('.') }),
        el('span', { class: 'sr-change', text: short(r.oldV) + ' → ' + short(r.newV) }));
      b.addEventListener('click', () => {
        box.hidden = true;
        select(r.i, { focus: { actor: r.a, path: r.path } });
      });
      box.append(b);
    }
  }

  // ---------------------------------------------------------------- lasso
  function playLoop() {
    if (!LASSO || ui.playTimer) return;
    $('play-loop').disabled = true;
    $('stop-loop').disabled = false;
    if (ui.sel < LOOP) select(LOOP);
    ui.playTimer = setInterval(() => {
      select(ui.sel >= S || ui.sel < LOOP ? LOOP : ui.sel + 1);
    }, 650);
    document.body.classList.add('playing');
  }
  function stopLoop() {
    if (ui.playTimer) clearInterval(ui.playTimer);
    ui.playTimer = null;
    $('play-loop').disabled = false;
    $('stop-loop').disabled = true;
    document.body.classList.remove('playing');
  }

  // --------------------------------------------------------------- events
  function wire() {
    $('lanes-scroll').addEventListener('scroll', queueRender, { passive: true });
    let resizeT = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeT);
      resizeT = setTimeout(() => { layoutLanes(); renderLaneHead(); renderBody(); markSelection(); }, 60);
    });
    document.addEventListener('keydown', (e) => {
      const t = e.target;
      if (t && ((t.tagName === 'INPUT' && /^(text|search)$/.test(t.type)) || t.tagName === 'TEXTAREA' || t.isContentEditable)) {
        if (e.key === 'Escape' && t.id === 'search') { t.value = ''; renderSearch(); t.blur(); }
        if (e.key === 'Enter' && t.id === 'search') {
          const first = $('search-results').querySelector('.sr-item');
          if (first) first.click();
        }
        return;
      }
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      let to = null;
      switch (e.key) {
        case 'ArrowRight': case 'j': to = neighbour(ui.sel, 1); break;
        case 'ArrowLeft': case 'k': to = neighbour(ui.sel, -1); break;
        case 'Home': to = 0; break;
        case 'End': to = S; break;
        case '/': e.preventDefault(); $('search').focus(); return;
        default: return;
      }
      e.preventDefault();
      if (ui.playTimer) stopLoop();
      select(to);
    });
    let searchT = null;
    $('search').addEventListener('input', () => { clearTimeout(searchT); searchT = setTimeout(renderSearch, 120); });
    $('search').addEventListener('focus', () => { if ($('search').value.trim()) $('search-results').hidden = false; });
    document.addEventListener('click', (e) => {
      if (!e.target.closest('.search-wrap')) $('search-results').hidden = true;
    });
    $('play-loop').addEventListener('click', playLoop);
    $('stop-loop').addEventListener('click', stopLoop);
  }

  function initialSelection() {
    const m = /^#step=(\d+)$/.exec(location.hash);
    if (m) return Math.min(S, parseInt(m[1], 10));
    return S > 0 ? 1 : 0;
  }

  // ----------------------------------------------------------------- boot
  renderHeader();
  renderFilters();
  ui.sel = initialSelection();
  buildRows();
  layoutLanes();
  renderLaneHead();
  renderBody();
  scrollToStep(ui.sel);
  renderVisible();
  requestAnimationFrame(() => setTimeout(() => {
    window.__petrelRenderMs = performance.now() - T0;
    window.__petrelRenderFromNavigationMs = performance.now();
    document.documentElement.dataset.rendered = 'true';
  }, 0));
  renderInspector();
  renderLegend();
  wire();
  window.__petrel = { select, trace: TR, get selected() { return ui.sel; }, parts: { renderInspector, renderVisible, renderLaneHead } };
})();
