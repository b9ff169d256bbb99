// A run as a span tree beside a timeline, one row per span, with a panel for the selected span.
// Rows are virtualised: only those in view (plus a margin) exist in the DOM, so a run of
// 10,000 spans paints as fast as one of 50.
import { h, clear, formatDuration, formatMoney, formatCount, formatTimestamp, typeLabel } from './dom.js';
import { renderPanel } from './span-panel.js';

const ROW_H = 26;
const OVERSCAN = 10;
const INDENT = 14;

function buildModel(spans) {
  const n = spans.length;
  const index = new Map();
  for (let i = 0; i < n; i++) index.set(spans[i].id, i);
  const parent = new Int32Array(n).fill(-1);
  const children = new Array(n);
  const roots = [];
  for (let i = 0; i < n; i++) {
    const p = spans[i].parent_id == null ? undefined : index.get(spans[i].parent_id);
    if (p === undefined || p === i) roots.push(i);
    else {
      parent[i] = p;
      (children[p] || (children[p] = [])).push(i);
    }
  }
  // Depth by a walk from the roots; spans caught in a parent cycle become roots themselves.
  const depth = new Int32Array(n).fill(-1);
  const walk = (start) => {
    const stack = [start];
    depth[start] = 0;
    while (stack.length) {
      const i = stack.pop();
      const kids = children[i];
      if (!kids) continue;
      for (let k = kids.length - 1; k >= 0; k--) {
        const c = kids[k];
        if (depth[c] === -1) { depth[c] = depth[i] + 1; stack.push(c); }
      }
    }
  };
  for (const r of roots) walk(r);
  for (let i = 0; i < n; i++) if (depth[i] === -1) { parent[i] = -1; roots.push(i); walk(i); }

  const start = new Float64Array(n);
  const dur = new Float64Array(n);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const s = spans[i];
    const begin = Date.parse(s.started_at);
    const end = s.ended_at ? Date.parse(s.ended_at) : NaN;
    let d = typeof s.duration_ms === 'number' ? s.duration_ms : NaN;
    if (Number.isNaN(d) && !Number.isNaN(end) && !Number.isNaN(begin)) d = end - begin;
    start[i] = begin;
    dur[i] = Number.isNaN(d) ? 0 : Math.max(0, d);
    if (!Number.isNaN(begin)) {
      if (begin < t0) t0 = begin;
      if (begin + dur[i] > t1) t1 = begin + dur[i];
    }
  }
  if (!Number.isFinite(t0)) { t0 = 0; t1 = 1; }
  for (let i = 0; i < n; i++) if (Number.isNaN(start[i])) start[i] = t0;
  return { spans, n, index, parent, children, roots, depth, start, dur, t0, total: Math.max(1, t1 - t0) };
}

function isError(span) {
  return Boolean(span.error) || span.span_type === 'error';
}

export function mountTraceView(root, data, options = {}) {
  const model = buildModel(data.spans || []);
  const { spans, n, parent, children, roots, depth, start, dur, t0, total } = model;
  const collapsed = new Uint8Array(n);
  let visible = new Int32Array(0);
  let position = new Int32Array(n).fill(-1);
  let selected = -1;
  let filterText = '';
  let filterKeep = null;

  const scroller = root.querySelector('.tv-scroll');
  const spacer = root.querySelector('.tv-spacer');
  const axis = root.querySelector('.tv-axis');
  const panel = options.panel;
  const countLabel = root.querySelector('.tv-count');
  const pool = [];

  function rebuildVisible() {
    const out = new Int32Array(n);
    let count = 0;
    const stack = [];
    for (let r = roots.length - 1; r >= 0; r--) stack.push(roots[r]);
    while (stack.length) {
      const i = stack.pop();
      if (filterKeep && !filterKeep[i]) continue;
      out[count++] = i;
      const kids = children[i];
      if (kids && (!collapsed[i] || filterKeep)) for (let k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
    }
    visible = out.subarray(0, count);
    position.fill(-1);
    for (let k = 0; k < count; k++) position[visible[k]] = k;
    spacer.style.height = `${count * ROW_H}px`;
    if (countLabel) {
      countLabel.textContent = filterKeep
        ? `${formatCount(count)} of ${formatCount(n)} spans`
        : `${formatCount(n)} ${n === 1 ? 'span' : 'spans'}`;
    }
  }

  function makeRow() {
    const caret = h('span', { class: 'tv-caret', 'aria-hidden': 'true' });
    const type = h('span', { class: 'type' });
    const name = h('span', { class: 'tv-name' });
    const modelName = h('span', { class: 'tv-model' });
    const durLabel = h('span', { class: 'tv-dur' });
    const errorNote = h('span', { class: 'sr-only' });
    const tree = h('div', { class: 'tv-tree' }, caret, type, name, modelName, errorNote, durLabel);
    const bar = h('div', { class: 'tv-bar' });
    const lane = h('div', { class: 'tv-lane' }, bar);
    const row = h('div', { class: 'tv-row', role: 'treeitem' }, tree, lane);
    row._parts = { caret, type, name, modelName, durLabel, errorNote, tree, bar };
    row._node = -1;
    scroller.querySelector('.tv-spacer').appendChild(row);
    pool.push(row);
    return row;
  }

  function fillRow(row, i, k) {
    const p = row._parts;
    const span = spans[i];
    if (row._node !== i) {
      row._node = i;
      row.id = `tv-node-${i}`;
      row.dataset.index = String(i);
      p.tree.style.paddingLeft = `${6 + depth[i] * INDENT}px`;
      p.type.className = `type type-${span.span_type}`;
      p.type.textContent = typeLabel(span.span_type);
      p.name.textContent = span.name || '(unnamed span)';
      p.modelName.textContent = span.model || '';
      p.durLabel.textContent = formatDuration(dur[i]);
      const left = ((start[i] - t0) / total) * 100;
      const width = (dur[i] / total) * 100;
      p.bar.style.left = `${Math.min(left, 99.8)}%`;
      p.bar.style.width = `${Math.max(width, 0.15)}%`;
      p.bar.className = `tv-bar t-${span.span_type}${isError(span) ? ' err' : ''}`;
      row.classList.toggle('err', isError(span));
      row.setAttribute('aria-level', String(depth[i] + 1));
      p.errorNote.textContent = isError(span) ? ' (error) ' : '';
    }
    const hasKids = Boolean(children[i]);
    const open = hasKids && (!collapsed[i] || filterKeep);
    p.caret.className = hasKids ? 'tv-caret' : 'tv-caret leaf';
    p.caret.textContent = hasKids ? (open ? '▾' : '▸') : '';
    if (hasKids) row.setAttribute('aria-expanded', open ? 'true' : 'false');
    else row.removeAttribute('aria-expanded');
    row.setAttribute('aria-selected', i === selected ? 'true' : 'false');
    row.classList.toggle('sel', i === selected);
    row.style.transform = `translateY(${k * ROW_H}px)`;
    row.hidden = false;
  }

  let frame = 0;
  function render() {
    frame = 0;
    const height = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((scroller.scrollTop + height) / ROW_H) + OVERSCAN);
    const needed = last - first;
    while (pool.length < needed) makeRow();
    for (let r = 0; r < pool.length; r++) {
      const k = first + r;
      if (k < last) fillRow(pool[r], visible[k], k);
      else if (!pool[r].hidden) { pool[r].hidden = true; pool[r]._node = -1; pool[r].removeAttribute('id'); }
    }
    if (selected >= 0 && position[selected] >= 0) scroller.setAttribute('aria-activedescendant', `tv-node-${selected}`);
    else scroller.removeAttribute('aria-activedescendant');
  }
  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function drawAxis() {
    if (!axis) return;
    clear(axis);
    for (const f of [0, 0.25, 0.5, 0.75]) {
      const tick = h('span', { text: f === 0 ? '0' : formatDuration(total * f) });
      tick.style.left = `${f * 100}%`;
      axis.appendChild(tick);
    }
  }

  function scrollToRow(k) {
    const top = k * ROW_H;
    const height = scroller.clientHeight;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW_H > scroller.scrollTop + height) scroller.scrollTop = top + ROW_H - height;
  }

  function revealAncestors(i) {
    let changed = false;
    for (let p = parent[i]; p >= 0; p = parent[p]) if (collapsed[p]) { collapsed[p] = 0; changed = true; }
    return changed;
  }

  function select(i, { updateHash = true, center = false } = {}) {
    if (i < 0 || i >= n) return;
    if (filterKeep && !filterKeep[i]) setFilter('');
    if (revealAncestors(i)) rebuildVisible();
    selected = i;
    const k = position[i];
    if (k >= 0) {
      if (center) scroller.scrollTop = Math.max(0, k * ROW_H - scroller.clientHeight / 2);
      else scrollToRow(k);
    }
    render();
    if (panel) {
      clear(panel);
      panel.appendChild(renderPanel(spans[i], { readOnly: options.readOnly, onFork: options.onFork, t0, spans, parent, index: model.index }));
      panel.scrollTop = 0;
    }
    if (updateHash) history.replaceState(null, '', `#span-${encodeURIComponent(spans[i].id)}`);
  }

  function toggle(i, open) {
    if (!children[i]) return;
    collapsed[i] = open === undefined ? (collapsed[i] ? 0 : 1) : (open ? 0 : 1);
    rebuildVisible();
    render();
  }

  function setAll(open) {
    for (let i = 0; i < n; i++) if (children[i]) collapsed[i] = open ? 0 : 1;
    rebuildVisible();
    if (selected >= 0 && position[selected] < 0) {
      let top = selected;
      while (parent[top] >= 0 && position[top] < 0) top = parent[top];
      selected = top;
    }
    render();
  }

  function setFilter(text) {
    filterText = text.trim().toLowerCase();
    if (!filterText) filterKeep = null;
    else {
      filterKeep = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const s = spans[i];
        const hay = `${s.name || ''} ${s.model || ''} ${s.span_type || ''} ${s.error || ''}`.toLowerCase();
        if (hay.includes(filterText)) for (let p = i; p >= 0 && !filterKeep[p]; p = parent[p]) filterKeep[p] = 1;
      }
    }
    rebuildVisible();
    scroller.scrollTop = 0;
    render();
  }

  scroller.addEventListener('scroll', schedule, { passive: true });
  window.addEventListener('resize', schedule);
  scroller.addEventListener('click', (event) => {
    const row = event.target.closest('.tv-row');
    if (!row) return;
    const i = Number(row.dataset.index);
    if (event.target.closest('.tv-caret') && children[i]) toggle(i);
    else select(i);
    scroller.focus({ preventScroll: true });
  });
  scroller.addEventListener('dblclick', (event) => {
    const row = event.target.closest('.tv-row');
    if (row) toggle(Number(row.dataset.index));
  });
  scroller.addEventListener('keydown', (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const k = selected >= 0 ? position[selected] : -1;
    const page = Math.max(1, Math.floor(scroller.clientHeight / ROW_H) - 1);
    let target = null;
    switch (event.key) {
      case 'ArrowDown': case 'j': target = k < 0 ? 0 : Math.min(visible.length - 1, k + 1); break;
      case 'ArrowUp': case 'k': target = k < 0 ? 0 : Math.max(0, k - 1); break;
      case 'PageDown': target = Math.min(visible.length - 1, Math.max(k, 0) + page); break;
      case 'PageUp': target = Math.max(0, k - page); break;
      case 'Home': target = 0; break;
      case 'End': target = visible.length - 1; break;
      case 'ArrowRight': case 'l':
        if (selected >= 0 && children[selected]) {
          if (collapsed[selected] && !filterKeep) toggle(selected, true);
          else target = position[children[selected][0]];
        }
        break;
      case 'ArrowLeft': case 'h':
        if (selected >= 0) {
          if (children[selected] && !collapsed[selected] && !filterKeep) toggle(selected, false);
          else if (parent[selected] >= 0) target = position[parent[selected]];
        }
        break;
      case 'Enter': case ' ':
        if (selected >= 0) toggle(selected);
        break;
      default:
        return;
    }
    event.preventDefault();
    if (target !== null && target >= 0 && visible.length) select(visible[target]);
  });

  const filterInput = root.querySelector('.tv-filter');
  if (filterInput) {
    let timer = 0;
    filterInput.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => setFilter(filterInput.value), 120);
    });
    filterInput.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowDown' || event.key === 'Enter') {
        event.preventDefault();
        scroller.focus();
        if (visible.length) select(visible[0]);
      }
    });
  }
  root.querySelector('.tv-expand')?.addEventListener('click', () => setAll(true));
  root.querySelector('.tv-collapse')?.addEventListener('click', () => setAll(false));

  function selectFromHash() {
    const hash = decodeURIComponent(location.hash || '');
    if (!hash.startsWith('#span-')) return false;
    const i = model.index.get(hash.slice(6));
    if (i === undefined) return false;
    select(i, { updateHash: false, center: true });
    return true;
  }
  window.addEventListener('hashchange', selectFromHash);

  drawAxis();
  rebuildVisible();
  if (!n) {
    scroller.appendChild(h('div', { class: 'tv-empty', text: 'This run has no spans yet.' }));
    if (panel) { clear(panel); panel.appendChild(h('div', { class: 'panel-empty', text: 'No span to show.' })); }
  }
  render();
  if (n && !selectFromHash()) select(roots[0], { updateHash: false });
  return { select, toggle, setAll, setFilter, model };
}

export function renderRunHeader(container, trace) {
  clear(container);
  const status = trace.status || 'running';
  let duration = null;
  if (trace.started_at && trace.ended_at) duration = Date.parse(trace.ended_at) - Date.parse(trace.started_at);
  else if (typeof trace.total_duration_ms === 'number') duration = trace.total_duration_ms;
  const meta = h('div', { class: 'meta' },
    h('span', null, 'Started ', h('b', { text: formatTimestamp(trace.started_at) })),
    h('span', null, 'Duration ', h('b', { text: formatDuration(duration) })),
    h('span', null, 'Spans ', h('b', { text: formatCount(trace.span_count ?? (trace.spans || []).length) })),
    h('span', null, 'Tokens ', h('b', { text: formatCount(trace.total_tokens) })),
    h('span', null, 'Cost ', h('b', { text: formatMoney(trace.total_cost) })),
    trace.session_id ? h('span', null, 'Session ', h('b', { class: 'mono', text: trace.session_id })) : null,
  );
  container.append(
    h('h1', { text: trace.name || '(unnamed run)', title: trace.name || '' }),
    h('span', { class: `pill pill-${status}`, text: status.charAt(0).toUpperCase() + status.slice(1) }),
    meta,
  );
  if (trace.name) document.title = `${trace.name} · Retrace`;
}
