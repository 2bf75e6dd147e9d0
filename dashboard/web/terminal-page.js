// The terminal on a page of its own (terminal.html#SANDBOX): the whole
// window for one sandbox's shell. The key is the dashboard's (same origin,
// same local storage).

import * as api from './api.js';
import { $, fill, h } from './dom.js';
import { openTerminal, copySelection, pasteInto } from './terminal.js';

const id = decodeURIComponent(location.hash.slice(1));
const screen = $('#terminal-screen');
const status = $('#terminal-status');
let session = null;

async function start() {
  $('#terminal-again').hidden = true;
  if (session) session.dispose();
  session = null;
  if (!id) {
    fill(status, h('span', { class: 'error-text' }, 'No sandbox: open this page from the dashboard.'));
    return;
  }
  try {
    const sb = (await api.get(`/v1/sandboxes/${encodeURIComponent(id)}`)).data;
    const name = sb.name || sb.id;
    $('#terminal-title').textContent = name;
    document.title = `${name} · Terminal · rtemu`;
    session = await openTerminal(sb.id, screen, status, { onEnd: () => { $('#terminal-again').hidden = false; } });
  } catch (err) {
    const why = err.status === 401 ? 'rtemu refused the API key: enter one in the dashboard first.' : (err.readable || err.message);
    fill(status, h('span', { class: 'error-text' }, why));
  }
}

$('#terminal-copy').addEventListener('click', () => session && copySelection(session.term));
$('#terminal-paste').addEventListener('click', () => session && pasteInto(session.send));
$('#terminal-again').addEventListener('click', start);
start();
