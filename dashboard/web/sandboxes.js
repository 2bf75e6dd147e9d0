// The sandbox list: rows kept in step with rtemu's change feed, the create
// form, and the lifecycle actions (pause, resume, destroy).

import * as api from './api.js';
import { h, fill, $, age, statusBadge, toast, confirmAction } from './dom.js';

/** Every sandbox the page knows, by id. */
export const sandboxes = new Map();

// rank orders the rows newest first. createdAt has whole seconds only, so
// the order is the API's (newest first), and a sandbox first seen through
// the change feed is newer than all of them.
const rank = new Map();
let newest = 0;

let selectedId = null;
let knownTemplates = [];
let onSelect = () => {};
let onUpdate = () => {};

/**
 * init wires the list. select(id) is called when a sandbox is chosen;
 * updated(sb) whenever a sandbox's record changes (sb null: it is gone).
 */
export function init({ select, updated }) {
  onSelect = select;
  onUpdate = updated;
  $('#create-form').addEventListener('submit', createSandbox);
  for (const id of ['#filter-text', '#filter-status', '#filter-template', '#filter-tag']) {
    $(id).addEventListener('input', render);
  }
  $('#filter-clear').addEventListener('click', () => {
    for (const id of ['#filter-text', '#filter-status', '#filter-template', '#filter-tag']) $(id).value = '';
    render();
    $('#filter-text').focus();
  });
  $('#empty-origin').textContent = location.origin;
  // Ages move on without any change from rtemu.
  setInterval(() => {
    for (const cell of document.querySelectorAll('#sandbox-rows .age')) {
      cell.textContent = age(cell.dataset.since);
    }
  }, 5000);
}

export function setSelected(id) {
  selectedId = id;
  for (const tr of document.querySelectorAll('#sandbox-rows tr')) {
    const on = tr.dataset.id === id;
    tr.classList.toggle('selected', on);
    const b = tr.querySelector('[data-action="select"]');
    if (b) b.setAttribute('aria-pressed', String(on));
  }
}

/** Replaces the whole list (after a (re)connect). */
export function replaceAll(list) {
  const seen = new Set();
  rank.clear();
  newest = 0;
  list.forEach((sb, i) => {
    seen.add(sb.id);
    sandboxes.set(sb.id, sb);
    rank.set(sb.id, i);
  });
  for (const id of [...sandboxes.keys()]) {
    if (!seen.has(id)) sandboxes.delete(id);
  }
  render();
  for (const sb of list) onUpdate(sb);
  if (selectedId && !sandboxes.has(selectedId)) onUpdate({ id: selectedId, status: 'destroyed' });
}

/** Takes one sandbox's new record; a destroyed one leaves the list. */
export function upsert(sb) {
  if (sb.status === 'destroyed') sandboxes.delete(sb.id);
  else sandboxes.set(sb.id, sb);
  if (!rank.has(sb.id)) rank.set(sb.id, --newest);
  render();
  onUpdate(sb);
}

export function remove(id) {
  sandboxes.delete(id);
  render();
  onUpdate({ id, status: 'destroyed' });
}

// refreshing holds the ids being read again; true means "read it once more
// when this read ends", so a burst of changes costs at most two reads.
const refreshing = new Map();

/**
 * Reads one sandbox again after a change. A sandbox first seen here takes
 * its place at the top now, in the feed's order: the reads may finish in
 * any order.
 */
export function refresh(id) {
  if (!rank.has(id)) rank.set(id, --newest);
  if (refreshing.has(id)) {
    refreshing.set(id, true);
    return;
  }
  refreshing.set(id, false);
  (async () => {
    do {
      refreshing.set(id, false);
      try {
        const body = await api.get(`/v1/sandboxes/${encodeURIComponent(id)}`);
        upsert(body.data);
      } catch (err) {
        if (err.status === 404) remove(id);
        else console.warn('refresh', id, err);
      }
    } while (refreshing.get(id));
    refreshing.delete(id);
  })();
}

export async function loadAll() {
  const body = await api.get('/v1/sandboxes?limit=500');
  replaceAll(body.data || []);
}

function ordered() {
  return [...sandboxes.values()].sort((a, b) => rank.get(a.id) - rank.get(b.id));
}

const SVG = 'http://www.w3.org/2000/svg';

function trashIcon() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', 'M2.5 4h11M6 4V2.5h4V4M4 4l.7 9.5h6.6L12 4M6.7 6.5v4.5M9.3 6.5v4.5');
  svg.append(path);
  return svg;
}

export function displayName(sb) { return sb.name || sb.id; }

function resources(sb) {
  const r = sb.resources || {};
  const parts = [];
  if (r.vcpus) parts.push(`${r.vcpus} vCPU`);
  if (r.memory) parts.push(r.memory);
  return parts.join(' · ') || '—';
}

function accessFlag(label, ready) {
  return h('span', { class: `flag ${ready ? 'flag-on' : 'flag-off'}`, title: `${label} ${ready ? 'ready' : 'not ready'}` },
    h('span', { 'aria-hidden': 'true' }, ready ? '●' : '○'), ` ${label}`,
    h('span', { class: 'visually-hidden' }, ready ? ' ready' : ' not ready'));
}

/** The actions a sandbox in this status allows, as buttons. */
export function actionButtons(sb, where) {
  const out = [];
  const label = displayName(sb);
  if (sb.status === 'running') {
    out.push(h('button', { class: 'btn btn-small', type: 'button', dataset: { action: 'pause' }, 'aria-label': `Pause ${label}`,
      onclick: (e) => lifecycle(e.currentTarget, sb, 'pause') }, 'Pause'));
  } else if (sb.status === 'paused') {
    out.push(h('button', { class: 'btn btn-small', type: 'button', dataset: { action: 'resume' }, 'aria-label': `Resume ${label}`,
      onclick: (e) => lifecycle(e.currentTarget, sb, 'resume') }, 'Resume'));
  }
  if (sb.status !== 'destroying' && sb.status !== 'destroyed') {
    // In the table the destroy button is an icon (with a label for screen
    // readers and a tooltip), so that a row fits beside the details panel.
    const compact = where === 'row';
    out.push(h('button', { class: `btn btn-small btn-danger-quiet${compact ? ' btn-icon' : ''}`, type: 'button',
      dataset: { action: 'destroy' }, 'aria-label': `Destroy ${label}`, title: compact ? `Destroy ${label}` : null,
      onclick: () => destroy(sb) }, compact ? trashIcon() : 'Destroy'));
  }
  return out;
}

function row(sb) {
  const label = displayName(sb);
  return h('tr', { dataset: { id: sb.id, status: sb.status }, class: sb.id === selectedId ? 'selected' : null,
    onclick: (e) => { if (!e.target.closest('button, a, input')) onSelect(sb.id); } },
  h('td', { class: 'cell-name' },
    h('button', { class: 'link-button', type: 'button', dataset: { action: 'select' }, 'aria-pressed': String(sb.id === selectedId),
      onclick: () => onSelect(sb.id) }, label),
    sb.name ? h('div', { class: 'sub mono' }, sb.id) : null),
  h('td', {}, statusBadge(sb.status),
    // How far the image's pull or build is, while creating (rtemu's).
    sb.status === 'creating' && sb.progress ? h('div', { class: 'sub progress-text', dataset: { role: 'progress' } }, sb.progress) : null),
  h('td', { class: 'mono' }, sb.template),
  h('td', { class: 'age', dataset: { since: sb.createdAt }, title: sb.createdAt }, age(sb.createdAt)),
  h('td', { class: 'nowrap' }, resources(sb)),
  h('td', {}, sb.tags && sb.tags.length ? h('span', { class: 'tags' }, sb.tags.map((t) => h('span', { class: 'tag' }, t))) : h('span', { class: 'muted' }, '—')),
  h('td', { class: 'nowrap' }, accessFlag('SSH', sb.sshReady), ' ', accessFlag('VNC', sb.vncReady)),
  h('td', { class: 'cell-actions' }, h('div', { class: 'row-actions', 'aria-label': `Actions for ${label}`, role: 'group' }, actionButtons(sb, 'row'))));
}

// ---- Search and filters ---------------------------------------------------

/** The filter as set in the bar above the table. */
function currentFilter() {
  return {
    text: $('#filter-text').value.trim().toLowerCase(),
    status: $('#filter-status').value,
    template: $('#filter-template').value,
    tag: $('#filter-tag').value,
  };
}

function filtering(f) { return !!(f.text || f.status || f.template || f.tag); }

/** Whether a sandbox passes the filter: the text is looked for in its name, id, template and tags. */
export function matches(sb, f) {
  if (f.status && sb.status !== f.status) return false;
  if (f.template && sb.template !== f.template) return false;
  const tags = sb.tags || [];
  if (f.tag && !tags.includes(f.tag)) return false;
  if (!f.text) return true;
  return [sb.name || '', sb.id, sb.template, ...tags].some((x) => x.toLowerCase().includes(f.text));
}

/** Sets a filter's choices, keeping the one chosen (even if no sandbox has it now). */
function setChoices(sel, all, values) {
  const el = $(sel);
  const was = el.value;
  const want = [...new Set([...values, ...(was ? [was] : [])])].sort();
  const have = [...el.options].slice(1).map((o) => o.value);
  if (want.join('\n') === have.join('\n')) return;
  fill(el, h('option', { value: '' }, all), want.map((v) => h('option', { value: v }, v)));
  el.value = was;
}

/** Brings the table in line with `sandboxes`, touching only changed rows. */
function render() {
  const body = $('#sandbox-rows');
  const existing = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
  const list = ordered();
  const f = currentFilter();
  let shown = 0;
  list.forEach((sb, i) => {
    const sig = JSON.stringify(sb) + (sb.id === selectedId);
    let tr = existing.get(sb.id);
    existing.delete(sb.id);
    if (!tr || tr._sig !== sig) {
      // Keep the keyboard where it was when a row is redrawn under it.
      const focused = tr && tr.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      const fresh = row(sb);
      fresh._sig = sig;
      if (tr) tr.replaceWith(fresh);
      tr = fresh;
      if (focused) {
        const again = tr.querySelector(`[data-action="${focused}"]`) || tr.querySelector('[data-action="select"]');
        again.focus();
      }
    }
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    tr.hidden = !matches(sb, f);
    if (!tr.hidden) shown++;
  });
  for (const tr of existing.values()) tr.remove();
  $('#sandbox-count').textContent = !list.length ? '' : filtering(f) ? `${shown} of ${list.length}` : String(list.length);
  $('#sandbox-empty').hidden = list.length > 0;
  $('#sandbox-filters').hidden = list.length === 0;
  $('#sandbox-nomatch').hidden = !(list.length > 0 && shown === 0);
  document.querySelector('.table-wrap').hidden = shown === 0;
  setChoices('#filter-status', 'Any status', list.map((sb) => sb.status));
  setChoices('#filter-template', 'Any template', [...knownTemplates, ...list.map((sb) => sb.template)]);
  setChoices('#filter-tag', 'Any tag', list.flatMap((sb) => sb.tags || []));
}

async function lifecycle(button, sb, op) {
  button.disabled = true;
  try {
    const body = await api.post(`/v1/sandboxes/${encodeURIComponent(sb.id)}/${op}`);
    // The answer's status ("pausing") is older than the feed's news when the
    // feed got here first ("paused"): show it only while the row still has
    // the record the button was drawn from, then read the sandbox again.
    const cur = sandboxes.get(sb.id);
    if (cur && cur.status === sb.status && body.data && body.data.status) upsert({ ...cur, status: body.data.status });
    refresh(sb.id);
  } catch (err) {
    toast(`${op === 'pause' ? 'Pause' : 'Resume'} ${displayName(sb)}: ${err.readable || err.message}`, 'error');
    button.disabled = false;
  }
}

/** Asks, then destroys. */
export async function destroy(sb) {
  const ok = await confirmAction({
    title: ['Destroy ', h('span', { class: 'mono' }, displayName(sb)), '?'],
    text: 'Its container and every file outside mounted workspaces are removed. This cannot be undone.',
    ok: 'Destroy sandbox',
  });
  if (!ok) return;
  try {
    const body = await api.del(`/v1/sandboxes/${encodeURIComponent(sb.id)}?async=true`);
    const cur = sandboxes.get(sb.id);
    if (cur && body.data) upsert({ ...cur, status: body.data.deleted ? 'destroyed' : (body.data.status || 'destroying') });
    if (!body.data || !body.data.deleted) refresh(sb.id);
    toast(`Destroying ${displayName(sb)}`);
  } catch (err) {
    toast(`Destroy ${displayName(sb)}: ${err.readable || err.message}`, 'error');
  }
}

async function createSandbox(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const errBox = $('#create-error');
  const button = $('#create-button');
  const req = { template: form.template.value };
  const name = form.name.value.trim();
  if (name) req.name = name;
  button.disabled = true;
  errBox.hidden = true;
  try {
    const body = await api.post('/v1/sandboxes', req);
    form.name.value = '';
    upsert(body.data);
    toast(`Creating ${displayName(body.data)}`);
  } catch (err) {
    errBox.textContent = err.readable || err.message;
    errBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

/** Fills the template picker (keeps the choice across refreshes). */
export function setTemplates(templates) {
  knownTemplates = templates.map((t) => t.name);
  const sel = $('#create-template');
  const was = sel.value;
  fill(sel, templates.map((t) => h('option', { value: t.name }, t.name)));
  if (templates.some((t) => t.name === was)) sel.value = was;
  render();
}
