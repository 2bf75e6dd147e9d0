// rtemu's dashboard: boots the page, follows rtemu's change feed
// (/_emulator/events) and re-reads what changed through the REST API.

import * as api from './api.js';
import { $, fill, toast } from './dom.js';
import * as list from './sandboxes.js';
import * as detail from './detail.js';
import * as panels from './panels.js';

// ---- The key --------------------------------------------------------------

const keyDialog = $('#key-dialog');
let userGaveKey = false;

/**
 * Shows the key dialog; resolves with the new key, rejects on Cancel.
 * err is the 401 that brought it up (null when opened by the user).
 */
function askForKey(err) {
  return new Promise((resolve, reject) => {
    const why = $('#key-why');
    const errBox = $('#key-error');
    const input = $('#key-input');
    if (err) {
      why.textContent = 'This rtemu accepts only the keys it was started with (--api-key). Enter one to use the dashboard.';
      errBox.hidden = !userGaveKey;
      errBox.textContent = userGaveKey ? `rtemu refused that key: ${err.message}` : '';
    } else {
      why.textContent = 'The key the dashboard sends with its API calls. By default rtemu accepts any well-formed key; with --api-key only the configured ones.';
      errBox.hidden = true;
    }
    input.value = err ? '' : api.currentKey();
    keyDialog.returnValue = '';
    keyDialog.addEventListener('close', () => {
      if (keyDialog.returnValue === 'ok' && api.isWellFormedKey(input.value)) {
        api.setKey(input.value);
        userGaveKey = true;
        $('#auth-banner').hidden = true;
        resolve(input.value);
      } else if (err) {
        $('#auth-banner').hidden = false;
        setConn('offline', 'Not connected');
        reject(err);
      } else resolve(null);
    }, { once: true });
    keyDialog.showModal();
    input.focus();
  });
}

api.onUnauthorized(askForKey);
// Cancel is a plain button: as a submit button before "Use this key" it would
// be the one Enter in the key field presses.
$('#key-cancel').addEventListener('click', () => keyDialog.close('cancel'));

$('#key-button').addEventListener('click', async () => {
  if (keyDialog.open) return;
  if (await askForKey(null)) reconnect();
});
$('#auth-banner-button').addEventListener('click', async () => {
  try {
    await api.requestKey({ message: 'the key was refused' });
    reconnect();
  } catch { /* cancelled again */ }
});

// ---- Selection ------------------------------------------------------------

function select(ref) {
  // The address can name a sandbox by id or by name (#build-runner).
  const sb = ref && (list.sandboxes.get(ref) || [...list.sandboxes.values()].find((x) => x.name === ref));
  const id = sb && sb.id;
  if (!sb || detail.shownId() === id) {
    if (!sb) closeDetail();
    return;
  }
  list.setSelected(id);
  detail.show(sb);
  history.replaceState(null, '', `#${id}`);
}

function closeDetail() {
  const was = detail.shownId();
  list.setSelected(null);
  detail.show(null);
  history.replaceState(null, '', location.pathname);
  // Back to where the keyboard was before the panel took it.
  const b = was && document.querySelector(`#sandbox-rows tr[data-id="${CSS.escape(was)}"] [data-action="select"]`);
  if (b) b.focus();
}

list.init({
  select,
  updated: (sb) => {
    if (sb.status === 'destroyed') {
      if (detail.shownId() === sb.id) closeDetail();
      return;
    }
    detail.update(sb);
  },
});
detail.init({ close: closeDetail });

document.addEventListener('keydown', (e) => {
  // Escape in the terminal is the shell's (vi's, less's), not the page's.
  if (e.key === 'Escape' && detail.shownId() && !document.querySelector('dialog[open]') &&
    !(e.target instanceof Element && e.target.closest('.terminal-screen'))) closeDetail();
});

// ---- The change feed --------------------------------------------------------

let source = null;
let retryTimer = null;
let logsFollowed = false; // rtemu's log is followed from the first open on

function setConn(state, text) {
  const el = $('#conn');
  el.dataset.state = state;
  fill($('#conn-text'), text);
}

async function refreshAll() {
  const info = await loadInfo();
  await list.loadAll();
  if (!detail.shownId() && location.hash.length > 1) select(decodeURIComponent(location.hash.slice(1)));
  panels.loadWorkspaces();
  panels.loadKeys();
  panels.loadSecrets();
  return info;
}

async function loadInfo() {
  const info = (await api.get('/_emulator/info')).data;
  panels.renderInfo(info);
  list.setTemplates(info.templates);
  detail.setInfo(info);
  return info;
}

const workspaceKind = /workspace|file/i;
const keyKind = /key/i;
const secretKind = /secret/i;

function onChange(ch) {
  if (ch.kind === 'sandbox') {
    list.refresh(ch.id);
    detail.changed(ch.id);
  } else if (workspaceKind.test(ch.kind)) panels.loadWorkspaces();
  else if (secretKind.test(ch.kind)) panels.loadSecrets();
  else if (keyKind.test(ch.kind)) panels.loadKeys();
  else if (ch.id) detail.changed(ch.id);
}

/**
 * Opens the feed. Every (re)open re-reads everything: changes made while the
 * feed was down are not replayed.
 */
function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  setConn('connecting', 'Connecting…');
  const es = new EventSource(api.eventsURL());
  source = es;
  // The feed is live once it is open; loading what it shows may fail (a slow
  // engine, a refused key) and is tried again without closing the feed.
  es.addEventListener('open', () => {
    setConn('live', 'Live');
    refreshUntilLoaded(es);
    if (!logsFollowed) {
      logsFollowed = true;
      panels.followLogs();
    }
  });
  es.addEventListener('change', (e) => {
    try { onChange(JSON.parse(e.data)); } catch (err) { console.warn('change', err); }
  });
  es.addEventListener('error', () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CONNECTING) {
      setConn('connecting', 'Reconnecting…');
      return;
    }
    // Closed for good: rtemu is gone, or it refused the key. Asking for
    // anything (info) brings up the key dialog in the second case.
    setConn('offline', 'Offline, retrying…');
    retryTimer = setTimeout(async () => {
      try {
        await loadInfo();
      } catch (err) {
        if (err.status === 401) return; // the user cancelled the key prompt
      }
      connect();
    }, 2000);
  });
}

async function refreshUntilLoaded(es) {
  for (let wait = 1000; es === source; wait = Math.min(wait * 2, 10000)) {
    try {
      await refreshAll();
      return;
    } catch (err) {
      if (err.status === 401) {
        setConn('offline', 'Not connected');
        return;
      }
      toast(`Loading: ${err.readable || err.message}`, 'error');
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

function reconnect() { connect(); }

panels.initReset(() => refreshAll().catch((err) => toast(`Loading: ${err.readable || err.message}`, 'error')));
panels.initState(() => refreshAll().catch((err) => toast(`Loading: ${err.readable || err.message}`, 'error')));

// Check the key before opening the feed, so that strict mode asks at once.
(async () => {
  try {
    await loadInfo();
  } catch (err) {
    if (err.status === 401) return;
  }
  connect();
})();
