// The cards under the sandboxes: workspaces and their files, SSH keys,
// secrets, rtemu itself (version, data dir, engine, templates, reset) and
// its log.

import * as api from './api.js';
import { h, fill, $, ago, bytes, toast, confirmAction, when } from './dom.js';

const enc = encodeURIComponent;

function notInBuild(what) {
  return h('p', { class: 'unavailable', dataset: { unavailable: what } }, `${what}: not available in this build of rtemu.`);
}

function failed(box, err) {
  fill(box, h('p', { class: 'form-error' }, err.readable || err.message));
}

// ---- Workspaces -----------------------------------------------------------

let openWorkspace = null; // { id, path }

/** Lists may come bare or wrapped, as the hosted API does both. */
function listOf(body, key) {
  const d = body && body.data !== undefined ? body.data : body;
  if (Array.isArray(d)) return d;
  if (d && Array.isArray(d[key])) return d[key];
  return [];
}

export async function loadWorkspaces() {
  const box = $('#workspaces-body');
  let list;
  try {
    list = listOf(await api.get('/v1/workspaces'), 'workspaces');
  } catch (err) {
    $('#workspace-count').textContent = '';
    if (err.notImplemented) fill(box, notInBuild('Workspaces'));
    else failed(box, err);
    return;
  }
  $('#workspace-count').textContent = list.length ? String(list.length) : '';
  if (!list.length) {
    fill(box, h('p', { class: 'muted' }, 'No workspaces. ', h('code', {}, 'POST /v1/workspaces'), ' makes one; mount it into sandboxes to keep files.'));
    return;
  }
  if (openWorkspace && !list.some((w) => w.id === openWorkspace.id)) openWorkspace = null;
  fill(box,
    h('ul', { class: 'item-list' }, list.map((w) => {
      const isOpen = openWorkspace && openWorkspace.id === w.id;
      return h('li', { class: `item${isOpen ? ' item-open' : ''}`, dataset: { id: w.id } },
        h('button', { class: 'item-button', type: 'button', 'aria-expanded': String(!!isOpen),
          onclick: () => { openWorkspace = isOpen ? null : { id: w.id, path: '' }; loadWorkspaces(); } },
        h('span', { class: 'item-title' }, w.name || w.slug || w.id),
        h('span', { class: 'item-meta' }, [typeof w.sizeBytes === 'number' ? bytes(w.sizeBytes) : null,
          w.updatedAt || w.createdAt ? `updated ${ago(w.updatedAt || w.createdAt)}` : null].filter(Boolean).join(' · '))),
        isOpen ? h('div', { class: 'files', id: 'workspace-files' }) : null);
    })));
  if (openWorkspace) loadFiles();
}

async function loadFiles() {
  const box = $('#workspace-files');
  if (!box || !openWorkspace) return;
  const { id, path } = openWorkspace;
  const url = `/v1/workspaces/${enc(id)}/files${path ? '/' + path.split('/').map(enc).join('/') : ''}`;
  let entries;
  try {
    entries = listOf(await api.get(url), 'files');
  } catch (err) {
    if (err.notImplemented) fill(box, notInBuild('Workspace files'));
    else failed(box, err);
    return;
  }
  const crumbs = [h('button', { class: 'crumb', type: 'button', onclick: () => cd('') }, '/')];
  const parts = path ? path.split('/') : [];
  parts.forEach((p, i) => crumbs.push(
    h('button', { class: 'crumb', type: 'button', onclick: () => cd(parts.slice(0, i + 1).join('/')) }, p), h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/')));
  const sorted = [...entries].sort((a, b) => ((a.type === 'file') - (b.type === 'file')) || String(a.value).localeCompare(String(b.value)));
  fill(box,
    h('nav', { class: 'crumbs', 'aria-label': 'Folder' }, crumbs),
    sorted.length ? h('ul', { class: 'file-list' }, sorted.map((f) => {
      const name = f.value || f.name || String(f.id).split('/').pop();
      const folder = f.type !== 'file';
      return h('li', { class: 'file' },
        folder
          ? h('button', { class: 'file-name link-button', type: 'button', onclick: () => cd(String(f.id || name).replace(/^\/+/, '')) }, h('span', { 'aria-hidden': 'true' }, '▸ '), `${name}/`)
          : h('a', { class: 'file-name', href: `/v1/workspaces/${enc(id)}/direct?path=${enc(f.id || name)}`, 'data-download': true,
            onclick: (e) => { e.preventDefault(); download(id, f.id || name, name); } }, name),
        h('span', { class: 'file-meta' }, folder ? (f.count !== undefined ? `${f.count} items` : '') : bytes(f.size)));
    })) : h('p', { class: 'muted' }, 'Empty folder.'));
}

function cd(path) {
  openWorkspace.path = path;
  loadFiles();
}

/** Downloads through fetch, as a link cannot carry the key header. */
async function download(id, path, name) {
  try {
    const res = await api.send('GET', `/v1/workspaces/${enc(id)}/direct?path=${enc(path)}`, { accept: '*/*' });
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    failed($('#workspace-files'), err);
  }
}

// ---- SSH keys -------------------------------------------------------------

export async function loadKeys() {
  const box = $('#keys-body');
  let list;
  try {
    list = listOf(await api.get('/v1/ssh-keys'), 'keys');
  } catch (err) {
    $('#key-count').textContent = '';
    if (err.notImplemented) fill(box, notInBuild('SSH keys'));
    else failed(box, err);
    return;
  }
  $('#key-count').textContent = list.length ? String(list.length) : '';
  if (!list.length) {
    fill(box, h('p', { class: 'muted' }, 'No keys registered. ', h('code', {}, 'POST /v1/ssh-keys'), ' adds one for SSH into sandboxes.'));
    return;
  }
  fill(box, h('ul', { class: 'item-list' }, list.map((k) => h('li', { class: 'item', dataset: { id: k.id } },
    h('div', { class: 'item-row' },
      h('span', { class: 'item-title' }, k.name),
      h('span', { class: 'pill mono' }, k.keyType || k.key_type || '')),
    h('div', { class: 'mono small fingerprint' }, k.fingerprint),
    h('div', { class: 'item-meta' }, `added ${ago(k.createdAt || k.created_at)}`)))));
}

// ---- Secrets --------------------------------------------------------------

// revealed holds the values shown, by name, until hidden or the secret
// changes; a value is fetched only when its Reveal is clicked (and the
// reveal is recorded in the activity feed, as every reveal is).
const revealed = new Map();

export async function loadSecrets() {
  const box = $('#secrets-body');
  let list;
  try {
    list = listOf(await api.get('/v1/secrets'), 'secrets');
  } catch (err) {
    $('#secret-count').textContent = '';
    if (err.notImplemented) fill(box, notInBuild('Secrets'));
    else failed(box, err);
    return;
  }
  $('#secret-count').textContent = list.length ? String(list.length) : '';
  for (const name of revealed.keys()) {
    const s = list.find((x) => x.name === name);
    if (!s || s.updatedAt !== revealed.get(name).updatedAt) revealed.delete(name);
  }
  if (!list.length) {
    fill(box, h('p', { class: 'muted' }, 'No secrets. ', h('code', {}, 'POST /v1/secrets'), ' keeps one, encrypted; exec gets it with ', h('code', {}, 'secrets: ["NAME"]'), '.'));
    return;
  }
  fill(box, h('ul', { class: 'item-list' }, list.map((s) => {
    const shown = revealed.get(s.name);
    return h('li', { class: 'item', dataset: { name: s.name } },
      h('div', { class: 'item-row' },
        h('span', { class: 'item-title mono' }, s.name),
        h('span', { class: 'pill' }, s.scope),
        h('span', { class: 'pill' }, s.category),
        s.orgWide ? h('span', { class: 'pill' }, 'org-wide') : null,
        h('button', { class: 'link-button secret-reveal', type: 'button', 'aria-expanded': String(!!shown),
          onclick: () => reveal(s) }, shown ? 'Hide' : 'Reveal')),
      s.description ? h('div', { class: 'item-meta' }, s.description) : null,
      shown ? h('div', { class: 'mono small break secret-value' }, shown.value) : null,
      h('div', { class: 'item-meta' }, `updated ${ago(s.updatedAt || s.createdAt)}`));
  })));
}

async function reveal(s) {
  if (revealed.has(s.name)) {
    revealed.delete(s.name);
    loadSecrets();
    return;
  }
  try {
    const body = await api.post(`/v1/secrets/${enc(s.name)}/reveal`);
    revealed.set(s.name, { value: body.data.value, updatedAt: s.updatedAt });
    loadSecrets();
  } catch (err) {
    failed($('#secrets-body'), err);
  }
}

// ---- This rtemu -----------------------------------------------------------

const AUTH = {
  default: 'any well-formed key (rt_test_… / rt_live_…)',
  strict: 'strict: only the keys given with --api-key',
  off: 'off: no key needed (--auth off)',
};

/** How an engine's kind is written: Docker, Kubernetes, or the kind itself. */
function engineName(kind) {
  return { '': 'Docker', docker: 'Docker', kubernetes: 'Kubernetes' }[kind || ''] || kind;
}

/** The engine in the header: its kind and version (and cluster, for an engine that has one). */
function renderEngine(info) {
  const pill = $('#engine');
  const e = info.engine;
  pill.hidden = false;
  if (!e) {
    pill.className = 'pill pill-bad';
    fill(pill, 'engine down');
    pill.title = info.engineError || 'the engine does not answer';
    return;
  }
  const kind = engineName(e.kind);
  pill.className = 'pill';
  fill(pill, h('span', { class: 'engine-kind' }, kind), ` ${e.version}`, e.cluster ? h('span', { class: 'engine-cluster' }, ` · ${e.cluster}`) : null);
  pill.title = `${kind} engine ${e.version} (API ${e.apiVersion}) at ${e.host}`;
}

/** A template's image: present, not built (a recipe's: how to build it), or not pulled. */
function templateState(t) {
  if (t.imagePresent) return h('span', { class: 'badge badge-ok' }, 'image present');
  if (t.recipe) {
    return h('span', { class: 'template-missing' },
      h('span', { class: 'badge badge-warn' }, 'not built'), ' ',
      h('code', { class: 'small' }, `rtemu templates build ${t.recipe}`),
      t.fallback ? h('span', { class: 'muted small' }, ` (until then: ${t.fallback})`) : null);
  }
  return h('span', { class: 'template-missing' }, h('span', { class: 'badge badge-warn' }, 'image not pulled'), ' ',
    h('code', { class: 'small' }, `docker pull ${t.image}`));
}

export function renderInfo(info) {
  $('#version').textContent = `v${info.version}`;
  renderEngine(info);
  const e = info.engine;
  const rows = [
    ['Version', h('span', { class: 'mono' }, info.version)],
    ['Data dir', h('span', { class: 'mono break', id: 'info-datadir' }, info.dataDir || '(none)')],
    ['Engine', e
      ? h('span', { id: 'info-engine' }, `${engineName(e.kind)} ${e.version} · API ${e.apiVersion} · ${e.os} · ${e.cpus} CPUs`,
        e.cluster ? h('div', { class: 'small' }, `cluster ${e.cluster}`) : null,
        h('div', { class: 'mono small muted break' }, e.host))
      : h('span', { class: 'error-text', id: 'info-engine' }, info.engineError || 'unavailable')],
    ['SSH gateway', h('span', { class: 'mono' }, info.sshAddr || '—')],
    ['Auth', AUTH[info.auth] || info.auth],
    ['Seed', info.seed
      ? h('span', { id: 'info-seed' }, `${info.seed.sandboxes} sandbox${info.seed.sandboxes === 1 ? '' : 'es'}, saved ${when(info.seed.createdAt)}`,
        h('span', { class: 'mono small muted' }, ` (${info.seed.id})`))
      : h('span', { class: 'muted', id: 'info-seed' }, 'none (rtemu --seed FILE)')],
  ];
  $('#reset-seed-button').hidden = !info.seed;
  fill($('#emulator-body'),
    h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', { class: 'mini-title' }, 'Templates'),
    h('ul', { class: 'item-list templates', id: 'info-templates' }, info.templates.map((t) => h('li', { class: 'item item-row', dataset: { template: t.name } },
      h('span', { class: 'item-title mono' }, t.name),
      h('span', { class: 'template-image mono small', title: t.image }, t.image),
      templateState(t)))));
}

// ---- Reset ----------------------------------------------------------------

/** Wires the Reset button: asks, then POST /_emulator/reset; done() reloads the page's data. */
export function initReset(done) {
  $('#reset-button').addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Reset rtemu?',
      text: 'Every sandbox is destroyed and every workspace, file, SSH key and project deleted; armed faults are cleared. ' +
        'Requests in flight are ended. This cannot be undone.',
      ok: 'Reset everything',
    });
    if (!ok) return;
    try {
      const body = await api.post('/_emulator/reset');
      const n = body.data ? body.data.sandboxesRemoved : 0;
      toast(`rtemu was reset: ${n} sandbox${n === 1 ? '' : 'es'} removed`);
      done();
    } catch (err) {
      toast(`Reset: ${err.readable || err.message}`, 'error');
    }
  });
}

// ---- State: save, reset to the seed ---------------------------------------

/** Wires Save state (GET /_emulator/state, downloaded as a file) and Reset to seed (asks first). */
export function initState(done) {
  const save = $('#save-state-button');
  save.addEventListener('click', async () => {
    save.disabled = true;
    const old = save.textContent;
    save.textContent = 'Saving…';
    try {
      const res = await api.send('GET', '/_emulator/state', { accept: 'application/x-tar' });
      const name = (/filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '') || [])[1] || 'rtemu-state.tar';
      const blob = await res.blob();
      const a = h('a', { href: URL.createObjectURL(blob), download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      toast(`State saved: ${name} (${Math.max(1, Math.round(blob.size / 1048576))} MB)`);
    } catch (err) {
      toast(`Save state: ${err.readable || err.message}`, 'error');
    } finally {
      save.disabled = false;
      save.textContent = old;
    }
  });
  $('#reset-seed-button').addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Reset to the seed?',
      text: 'Every sandbox and record goes, and the loaded seed comes back: its sandboxes, workspaces, keys and records, ' +
        'as they were saved. Requests in flight are ended.',
      ok: 'Reset to the seed',
    });
    if (!ok) return;
    try {
      const body = await api.post('/_emulator/reset', { to: 'seed' });
      const n = body.data ? body.data.sandboxesRestored : 0;
      toast(`Back to the seed: ${n} sandbox${n === 1 ? '' : 'es'}`);
      done();
    } catch (err) {
      toast(`Reset to seed: ${err.readable || err.message}`, 'error');
    }
  });
}

// ---- rtemu's log ----------------------------------------------------------

const MAX_LOG_LINES = 500;

function logLine(e) {
  const level = String(e.level || 'INFO').toUpperCase();
  const tone = level.startsWith('ERROR') ? 'bad' : level.startsWith('WARN') ? 'paused' : level.startsWith('DEBUG') ? 'gone' : 'ok';
  const t = new Date(e.time);
  return h('li', { class: `log-line log-${tone}`, dataset: { seq: String(e.seq), msg: e.msg, level } },
    h('time', { datetime: e.time, title: when(e.time) }, Number.isNaN(t.getTime()) ? '' : t.toLocaleTimeString()),
    h('span', { class: 'log-level' }, level),
    h('span', { class: 'log-text' }, h('span', { class: 'log-msg' }, e.msg), e.attrs ? h('span', { class: 'log-attrs' }, e.attrs) : null));
}

function showRequests() {
  $('#log-lines').classList.toggle('log-hide-requests', !$('#log-requests').checked);
}

/**
 * Follows rtemu's log (GET /_emulator/logs?follow=1, server-sent events read
 * with fetch so that the key goes in a header), for as long as the page is
 * open, reconnecting when the stream ends. Request lines are hidden unless
 * asked for.
 */
export async function followLogs() {
  const list = $('#log-lines');
  const state = $('#log-state');
  $('#log-requests').addEventListener('change', showRequests);
  showRequests();
  let last = 0;
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
    try {
      const res = await api.send('GET', `/_emulator/logs?follow=1&limit=${MAX_LOG_LINES}`, { accept: 'text/event-stream' });
      state.textContent = 'live';
      wait = 1000;
      await api.readEventStream(res, (type, data) => {
        if (type !== 'log') return;
        let e;
        try { e = JSON.parse(data); } catch { return; }
        if (e.seq <= last) return; // seen before a reconnect
        const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
        if (last && e.seq > last + 1) list.append(h('li', { class: 'log-line log-gap' }, `… ${e.seq - last - 1} lines not shown (the page was behind)`));
        last = e.seq;
        list.append(logLine(e));
        while (list.children.length > MAX_LOG_LINES) list.firstElementChild.remove();
        if (stick) list.scrollTop = list.scrollHeight;
      });
    } catch (err) {
      if (err.notImplemented) {
        fill($('#logs-body'), notInBuild("rtemu's log"));
        state.textContent = '';
        return;
      }
      if (err.status === 401) {
        // The key prompt is the change feed's; try again once a key is given.
        wait = 2000;
      }
    }
    state.textContent = 'reconnecting';
    await new Promise((r) => setTimeout(r, wait));
  }
}
