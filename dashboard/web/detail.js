// The selected sandbox: its facts, the lifecycle actions, a command runner
// (streamed when rtemu streams exec), connection helpers (ssh command, dev
// URLs, desktop), a terminal (terminal.js), live stats and the activity feed. Features this build of
// rtemu does not serve yet (501) say so in place instead of failing.

import * as api from './api.js';
import { h, fill, $, age, ago, when, bytes, duration, statusBadge, toast, copyText } from './dom.js';
import { actionButtons, displayName } from './sandboxes.js';
import { terminalPanel } from './terminal.js';

let info = null;
let current = null; // { sb, abort: AbortController, timers: [] }
let onClose = () => {};

export function init({ close }) { onClose = close; }
export function setInfo(i) { info = i; }

const enc = encodeURIComponent;

function notInBuild(what) {
  return h('p', { class: 'unavailable', dataset: { unavailable: what } }, `${what}: not available in this build of rtemu.`);
}

function failure(err) {
  return h('p', { class: 'form-error' }, err.readable || err.message);
}

/** Shows a sandbox, or the placeholder when sb is null. */
export function show(sb) {
  if (current) {
    current.abort.abort();
    current.timers.forEach(clearInterval);
  }
  current = null;
  $('#detail-placeholder').hidden = !!sb;
  $('#detail-body').hidden = !sb;
  if (!sb) {
    $('#detail-body').replaceChildren();
    return;
  }
  current = { sb, abort: new AbortController(), timers: [], statsOff: false };
  const body = $('#detail-body');
  fill(body,
    h('div', { id: 'detail-head', class: 'detail-head' }),
    h('div', { id: 'detail-error', hidden: true }),
    h('dl', { id: 'detail-facts', class: 'facts' }),
    section('run', 'Run a command', execPanel(sb)),
    section('connect', 'Connect', connectPanel(sb)),
    section('terminal', 'Terminal', terminalPanel(sb, current.abort.signal)),
    section('stats', 'Usage', h('div', { id: 'stats-body', class: 'stats' })),
    section('activity', 'Activity', h('div', { id: 'activity-body' })));
  update(sb);
  if (!BROKEN.has(sb.status)) loadSSH(sb);
  loadStats();
  loadActivity();
  current.timers.push(setInterval(loadStats, 5000));
}

/** Statuses a sandbox does not leave: only Destroy (and the error's fix) can work. */
const BROKEN = new Set(['failed', 'error']);

/**
 * The fix of a broken sandbox's error, when one is known: a command the
 * error names (`rtemu …`, `docker …`), or else what makes its template's
 * missing image.
 */
export function fixFor(sb, templates = (info && info.templates) || []) {
  const named = /`((?:rtemu|docker) [^`]+)`/.exec(sb.error || '');
  if (named) return named[1];
  const t = templates.find((x) => x.name === sb.template);
  if (t && !t.imagePresent) return t.recipe ? `rtemu templates build ${t.recipe}` : `docker pull ${t.image}`;
  return null;
}

function errorBox(sb) {
  const fix = fixFor(sb);
  const copy = async (e) => {
    const b = e.currentTarget;
    try {
      await copyText(fix);
      b.textContent = 'Copied';
    } catch (err) {
      toast(`Copy: ${err.message}`, 'error');
    }
  };
  return h('div', { class: 'error-box', role: 'alert' },
    h('p', { class: 'error-title' }, sb.status === 'failed' ? 'This sandbox failed to start.' : 'This sandbox is in error.'),
    h('p', { id: 'detail-error-text', class: 'error-message' }, sb.error || 'rtemu recorded no reason.'),
    fix
      ? h('div', { class: 'error-fix' },
        h('span', { class: 'connect-label' }, 'Fix'),
        h('div', { class: 'copy-field' }, h('code', { id: 'detail-fix', class: 'mono' }, fix),
          h('button', { id: 'detail-fix-copy', class: 'btn btn-small', type: 'button', onclick: copy }, 'Copy')),
        h('p', { class: 'note' }, 'Then destroy this sandbox and create it again.'))
      : h('p', { class: 'note' }, 'Destroy it and create it again.'));
}

function section(id, title, ...content) {
  return h('section', { class: 'detail-section', 'aria-labelledby': `detail-${id}-title`, id: `detail-${id}` },
    h('h3', { id: `detail-${id}-title` }, title), content);
}

/** Takes a new record of the shown sandbox (from the change feed). */
export function update(sb) {
  if (!current || current.sb.id !== sb.id) return;
  if (sb.status === 'destroyed') {
    toast(`${displayName(current.sb)} was destroyed`);
    onClose();
    return;
  }
  const wasStatus = current.sb.status;
  current.sb = sb;
  fill($('#detail-head'),
    h('div', { class: 'detail-title' },
      h('h2', { id: 'detail-name' }, displayName(sb)),
      sb.name ? h('div', { class: 'sub mono' }, sb.id) : null),
    statusBadge(sb.status),
    h('div', { class: 'detail-actions' }, actionButtons(sb, 'detail'),
      h('button', { class: 'btn btn-small btn-ghost', type: 'button', 'aria-label': 'Close details', title: 'Close (Esc)', onclick: () => onClose() }, '✕')));
  const r = sb.resources || {};
  const facts = [
    ['Template', h('span', { class: 'mono' }, sb.template)],
    ['Created', h('span', { title: when(sb.createdAt) }, ago(sb.createdAt))],
    ['Resources', `${r.vcpus ?? '—'} vCPU · ${r.memory ?? '—'} memory · ${r.disk ?? '—'} disk`],
    ['Idle timeout', sb.idleTimeout ? duration(sb.idleTimeout) : 'never'],
    ['SSH auth', sb.sshAuthMethod || 'none'],
  ];
  if (sb.status === 'creating' && sb.progress) facts.unshift(['Progress', h('span', { id: 'detail-progress' }, sb.progress)]);
  if (sb.tags && sb.tags.length) facts.push(['Tags', h('span', { class: 'tags' }, sb.tags.map((t) => h('span', { class: 'tag' }, t)))]);
  if (sb.mounts && sb.mounts.length) {
    facts.push(['Mounts', sb.mounts.map((m) => h('div', { class: 'mono' }, `${m.path} ← ${m.workspaceId}${m.readOnly ? ' (read-only)' : ''}`))]);
  }
  fill($('#detail-facts'), facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  // A broken sandbox: its error once, and nothing offered that cannot work.
  const broken = BROKEN.has(sb.status);
  const errBox = $('#detail-error');
  errBox.hidden = !broken;
  if (broken) fill(errBox, errorBox(sb));
  else errBox.replaceChildren();
  for (const id of ['run', 'connect', 'terminal', 'stats']) $(`#detail-${id}`).hidden = broken;
  const desktop = $('#desktop-row');
  if (desktop) desktop.hidden = !isDesktop(sb);
  if (wasStatus !== sb.status) {
    loadActivity();
    loadStats();
  }
}

/** Reads the activity again soon (several changes often come together). */
export function changed(id) {
  if (!current || current.sb.id !== id) return;
  clearTimeout(current.activityTimer);
  current.activityTimer = setTimeout(loadActivity, 250);
}

// ---- Run a command --------------------------------------------------------

function execPanel(sb) {
  const output = h('pre', { id: 'exec-output', class: 'output', tabindex: '0', 'aria-label': 'Command output', hidden: true });
  const status = h('p', { id: 'exec-status', class: 'exec-status', 'aria-live': 'polite' });
  const input = h('input', { id: 'exec-command', name: 'command', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'uname -a', required: true });
  const run = h('button', { id: 'exec-run', class: 'btn btn-primary', type: 'submit' }, 'Run');
  const form = h('form', { id: 'exec-form', class: 'exec-form', 'aria-label': `Run a command in ${displayName(sb)}` },
    h('label', { class: 'visually-hidden', for: 'exec-command' }, 'Command'),
    h('span', { class: 'prompt mono', 'aria-hidden': 'true' }, '$'), input, run);
  let running = null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (running) { // the button says Stop while a command runs
      running.abort();
      return;
    }
    running = new AbortController();
    current.abort.signal.addEventListener('abort', () => running && running.abort(), { once: true });
    run.textContent = 'Stop';
    output.hidden = false;
    output.replaceChildren();
    fill(status, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Running…');
    try {
      await execute(current.sb, input.value, output, status, running.signal);
    } catch (err) {
      if (err.name === 'AbortError') fill(status, 'Stopped.');
      else fill(status, h('span', { class: 'error-text' }, err.readable || err.message));
    } finally {
      running = null;
      run.textContent = 'Run';
    }
  });
  return [form, output, status];
}

function appendOutput(output, text, stream) {
  if (!text) return;
  const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
  output.append(stream === 'stderr' ? h('span', { class: 'stderr' }, text) : document.createTextNode(text));
  if (stick) output.scrollTop = output.scrollHeight;
}

function exitLine(status, code, ms, timedOut) {
  const ok = code === 0;
  fill(status,
    h('span', { class: `exit ${ok ? 'exit-ok' : 'exit-bad'}`, dataset: { exitCode: String(code) } }, `exit ${code}`),
    timedOut ? h('span', { class: 'exit exit-bad' }, 'timed out') : null,
    typeof ms === 'number' ? h('span', { class: 'muted' }, ` ${ms} ms`) : null);
}

/**
 * A streamed event's text. The contract names the events but not their
 * data, so this takes a JSON string, a JSON object's text field under any
 * of the usual names, or else the raw data.
 */
function chunkText(data) {
  try {
    const v = JSON.parse(data);
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object') {
      for (const k of ['data', 'text', 'chunk', 'output', 'stdout', 'stderr', 'line', 'message']) {
        if (typeof v[k] === 'string') return v[k];
      }
      return '';
    }
  } catch { /* plain text */ }
  return data;
}

/**
 * Runs a command. It asks for a stream (Accept: text/event-stream, events
 * stdout, stderr, exit); an rtemu that does not stream answers the plain JSON
 * result, which is shown at once.
 */
async function execute(sb, command, output, status, signal) {
  const started = performance.now();
  const res = await api.send('POST', `/v1/sandboxes/${enc(sb.id)}/exec`,
    { body: { command }, accept: 'text/event-stream', signal });
  if ((res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
    output.dataset.mode = 'stream';
    let exited = false;
    await api.readEventStream(res, (type, data) => {
      if (type === 'stdout' || type === 'stderr') appendOutput(output, chunkText(data), type);
      else if (type === 'exit') {
        let v = {};
        try { v = JSON.parse(data); } catch { v = { exitCode: Number(data) }; }
        if (typeof v === 'number') v = { exitCode: v };
        exited = true;
        exitLine(status, v.exitCode ?? v.exit_code ?? v.code, v.durationMs ?? Math.round(performance.now() - started), v.timedOut);
      } else if (type === 'error') {
        fill(status, h('span', { class: 'error-text' }, chunkText(data)));
        exited = true;
      }
    });
    if (!exited) fill(status, h('span', { class: 'error-text' }, 'The stream ended without an exit status.'));
    return;
  }
  output.dataset.mode = 'buffered';
  const r = (await res.json()).data;
  appendOutput(output, r.stdout, 'stdout');
  appendOutput(output, r.stderr, 'stderr');
  if (!r.stdout && !r.stderr) output.append(h('span', { class: 'muted' }, '(no output)'));
  exitLine(status, r.exitCode, r.durationMs ?? r.executionTime, r.timedOut);
}

// ---- Connect --------------------------------------------------------------

function isDesktop(sb) { return sb.template.startsWith('desktop') || !!sb.vncUrl; }

function connectPanel(sb) {
  const port = h('input', { id: 'url-port', type: 'number', min: '1', max: '65535', inputmode: 'numeric', placeholder: '3000', required: true, class: 'port' });
  const urlForm = h('form', { id: 'url-form', class: 'inline-form', 'aria-label': 'Open a dev URL' },
    h('label', { for: 'url-port', class: 'visually-hidden' }, 'Port inside the sandbox'), port,
    h('button', { class: 'btn', type: 'submit' }, 'Open'));
  const urlResult = h('div', { id: 'url-result', class: 'connect-result' });
  urlForm.addEventListener('submit', (e) => { e.preventDefault(); openURL(port.value, urlResult); });
  const desktopResult = h('div', { id: 'desktop-result', class: 'connect-result' });
  return h('div', { class: 'connect' },
    h('div', { class: 'connect-row', id: 'ssh-row' },
      h('span', { class: 'connect-label' }, 'SSH'),
      h('div', { class: 'connect-main' },
        h('div', { class: 'copy-field' },
          h('code', { id: 'ssh-command', class: 'mono' }, '…'),
          h('button', { id: 'ssh-copy', class: 'btn btn-small', type: 'button', disabled: true, onclick: copySSH }, 'Copy')),
        h('div', { id: 'ssh-note', class: 'note' }))),
    h('div', { class: 'connect-row' },
      h('span', { class: 'connect-label' }, 'Dev URL'),
      h('div', { class: 'connect-main' }, urlForm, urlResult)),
    h('div', { class: 'connect-row', id: 'desktop-row', hidden: !isDesktop(sb) },
      h('span', { class: 'connect-label' }, 'Desktop'),
      h('div', { class: 'connect-main' },
        h('button', { id: 'desktop-open', class: 'btn', type: 'button', onclick: () => openDesktop(desktopResult) }, 'Open desktop'),
        desktopResult)));
}

/** The ssh command as the contract spells it, from --ssh-addr. */
function sshFromConfig(id) {
  const addr = (info && info.sshAddr) || '127.0.0.1:2222';
  const i = addr.lastIndexOf(':');
  let host = addr.slice(0, i);
  if (host === '' || host === '0.0.0.0' || host === '[::]') host = '127.0.0.1';
  return `ssh -p ${addr.slice(i + 1)} ${id}@${host}`;
}

async function loadSSH(sb) {
  const me = current;
  const cmd = $('#ssh-command');
  const note = $('#ssh-note');
  let text;
  try {
    const body = await api.get(`/v1/sandboxes/${enc(sb.id)}/ssh`, { signal: me.abort.signal });
    text = body.data.command;
    note.replaceChildren();
  } catch (err) {
    if (err.name === 'AbortError') return;
    if (!err.notImplemented) {
      fill(note, failure(err));
      return;
    }
    // This build has no SSH info endpoint: the command still follows the
    // contract's shape, from the configured gateway address.
    text = sshFromConfig(sb.id);
    fill(note, 'This build of rtemu has no SSH info endpoint yet; the command is built from ', h('code', { class: 'nowrap' }, '--ssh-addr'), '.');
  }
  if (current !== me) return;
  cmd.textContent = text;
  $('#ssh-copy').disabled = false;
}

async function copySSH(e) {
  const button = e.currentTarget;
  const text = $('#ssh-command').textContent;
  try {
    await copyText(text);
    button.textContent = 'Copied';
    button.classList.add('btn-done');
    toast('SSH command copied');
    setTimeout(() => { button.textContent = 'Copy'; button.classList.remove('btn-done'); }, 2000);
  } catch (err) {
    toast(`Copy: ${err.message}`, 'error');
  }
}

async function openURL(port, result) {
  const id = current.sb.id;
  try {
    const body = await api.get(`/v1/sandboxes/${enc(id)}/url?port=${enc(port)}`);
    const url = body.data.url;
    fill(result, h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'mono' }, url));
    window.open(url, '_blank', 'noopener');
  } catch (err) {
    fill(result, err.notImplemented ? notInBuild('Dev URLs') : failure(err));
  }
}

async function openDesktop(result) {
  const id = current.sb.id;
  try {
    const body = await api.get(`/v1/sandboxes/${enc(id)}/vnc`);
    const url = body.data.url;
    fill(result, h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'mono' }, url));
    window.open(url, '_blank', 'noopener');
  } catch (err) {
    fill(result, err.notImplemented ? notInBuild('The desktop') : failure(err));
  }
}

// ---- Stats and activity ---------------------------------------------------

function meter(label, value, fraction) {
  const pct = Math.max(0, Math.min(1, fraction || 0));
  return h('div', { class: 'meter' },
    h('div', { class: 'meter-top' }, h('span', { class: 'meter-label' }, label), h('span', { class: 'meter-value' }, value)),
    fraction === null ? null : h('div', { class: 'meter-bar', role: 'img', 'aria-label': `${label} ${Math.round(pct * 100)}%` },
      h('span', { style: null, dataset: { pct: String(Math.round(pct * 100)) } })));
}

async function loadStats() {
  const me = current;
  if (!me || me.statsOff) return;
  const box = $('#stats-body');
  if (me.sb.status !== 'running') {
    fill(box, h('p', { class: 'muted' }, `Live usage is shown while the sandbox is running (it is ${me.sb.status}).`));
    return;
  }
  try {
    const body = await api.get(`/v1/sandboxes/${enc(me.sb.id)}/stats`, { signal: me.abort.signal });
    if (current !== me) return;
    const s = (body.data && body.data.stats) || {};
    fill(box,
      meter('CPU', `${(s.cpuPercent ?? 0).toFixed(1)}%`, (s.cpuPercent ?? 0) / 100),
      meter('Memory', `${bytes(s.memoryUsedBytes)} of ${bytes(s.memoryTotalBytes)}`, s.memoryTotalBytes ? s.memoryUsedBytes / s.memoryTotalBytes : 0),
      meter(body.data.diskLimitEnforced === false ? 'Disk (not enforced)' : 'Disk', `${bytes(s.diskUsedBytes)} of ${bytes(s.diskTotalBytes)}`,
        s.diskTotalBytes ? s.diskUsedBytes / s.diskTotalBytes : 0),
      body.data.diskOverLimit ? h('p', { id: 'disk-over', class: 'error-text', role: 'status' },
        'The files are past this sandbox\'s disk. This Docker engine cannot enforce it (see rtemu doctor): writes still succeed here, ' +
        'and would fail on the hosted service.') : null,
      meter('Uptime', duration(s.uptime), null));
    // Widths go in through CSSOM: the page's CSP allows no inline styles.
    for (const bar of box.querySelectorAll('.meter-bar span')) bar.style.width = `${bar.dataset.pct}%`;
  } catch (err) {
    if (err.name === 'AbortError' || current !== me) return;
    if (err.notImplemented) {
      me.statsOff = true; // no point asking every five seconds
      fill(box, notInBuild('Live stats'));
    } else fill(box, failure(err));
  }
}

const SEVERITY = { info: 'ok', warning: 'paused', error: 'bad' };

async function loadActivity() {
  const me = current;
  if (!me) return;
  const box = $('#activity-body');
  try {
    const body = await api.get(`/v1/sandboxes/${enc(me.sb.id)}/activity?limit=50`, { signal: me.abort.signal });
    if (current !== me) return;
    const events = (body.data && body.data.events) || [];
    if (!events.length) {
      fill(box, h('p', { class: 'muted' }, 'Nothing yet.'));
      return;
    }
    fill(box, h('ol', { class: 'feed' }, events.map((ev) =>
      h('li', { class: 'feed-item', dataset: { type: ev.eventType } },
        h('span', { class: `feed-dot tone-${SEVERITY[ev.severity] || 'gone'}`, 'aria-hidden': 'true' }),
        h('div', { class: 'feed-main' },
          h('span', { class: 'feed-title' }, ev.title || ev.eventType),
          h('span', { class: 'feed-type mono' }, ev.eventType),
          ev.severity && ev.severity !== 'info' ? h('span', { class: 'visually-hidden' }, ` (${ev.severity})`) : null),
        h('time', { class: 'feed-time', datetime: ev.createdAt, title: when(ev.createdAt) }, age(ev.createdAt))))));
  } catch (err) {
    if (err.name === 'AbortError' || current !== me) return;
    fill(box, err.notImplemented ? notInBuild('The activity feed') : failure(err));
  }
}

export function shownId() { return current ? current.sb.id : null; }
