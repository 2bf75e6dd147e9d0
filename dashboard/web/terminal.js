// The browser terminal of rtemu's terminal sessions (POST
// /v1/terminal/sandbox-sessions, then the WebSocket at wsPath): xterm.js,
// vendored into the binary (vendor/, see dashboard/vendor/README.md), with
// its DOM renderer. Used by the details panel and by the terminal's own page
// (terminal.html).

import * as api from './api.js';
import { h, fill, toast, copyText } from './dom.js';
import { Terminal } from './vendor/xterm.js';

const enc = encodeURIComponent;

/** Lines kept above the screen. */
export const SCROLLBACK = 10000;

const THEME = { background: '#10131a', foreground: '#e4e7ec', cursor: '#e4e7ec', cursorAccent: '#10131a', selection: 'rgba(124, 131, 255, 0.35)' };

/**
 * The page's CSP allows no inline styles, and xterm's DOM renderer writes its
 * theme and cell size into two <style> elements it makes. While a terminal
 * opens (synchronously: nothing else runs meanwhile), those elements are made
 * inert and their text goes into constructed style sheets, which the CSP
 * allows. Returns the sheets, to drop when the terminal goes.
 */
function openWithSheets(term, el) {
  const realCreate = document.createElement;
  const sheets = [];
  document.createElement = function createElement(tag, opts) {
    if (String(tag).toLowerCase() !== 'style') return realCreate.call(document, tag, opts);
    const sheet = new CSSStyleSheet();
    sheets.push(sheet);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    const inert = realCreate.call(document, 'template');
    Object.defineProperty(inert, 'innerHTML', { set(css) { sheet.replaceSync(css); }, get() { return ''; } });
    return inert;
  };
  try {
    term.open(el);
  } finally {
    document.createElement = realCreate;
  }
  return sheets;
}

/**
 * Opens a terminal session of a sandbox in el (which sets the size). status
 * gets one-line news (connected, exit status, errors); onEnd runs once the
 * connection is closed. Returns { stop, term }.
 */
export async function openTerminal(sandboxId, el, status, { signal, onEnd = () => {} } = {}) {
  fill(status, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Opening…');
  const body = await api.post('/v1/terminal/sandbox-sessions', { sandboxId }, { signal });
  const ts = body.data;
  el.replaceChildren();
  delete el.dataset.closed;
  const term = new Terminal({
    rendererType: 'dom', // rows are elements: tests (and screen readers) read them
    scrollback: SCROLLBACK,
    cursorBlink: true,
    fontFamily: 'ui-monospace, "SF Mono", SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace',
    fontSize: 13,
    theme: THEME,
  });
  const sheets = openWithSheets(term, el);
  term.fit();
  const shown = () => {
    el.dataset.cols = String(term.cols);
    el.dataset.rows = String(term.rows);
  };
  shown();

  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${ts.wsPath}?cols=${enc(term.cols)}&rows=${enc(term.rows)}`);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8');
  const send = (text) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text)); };

  term.on('data', send);
  // xterm's size follows the element's; the sandbox's TTY follows xterm's.
  term.on('resize', ({ cols, rows }) => {
    shown();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  const resized = new ResizeObserver(() => {
    if (el.clientWidth > 0 && el.clientHeight > 0) term.fit();
  });
  resized.observe(el);

  // Copy and paste: the browser's own (select, then the context menu, or
  // Ctrl+Insert / Shift+Insert), and Ctrl+Shift+C / Ctrl+Shift+V as in
  // desktop terminals (Ctrl+C stays the shell's interrupt).
  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
    if (e.code === 'KeyC') {
      copySelection(term);
      return false;
    }
    if (e.code === 'KeyV') {
      pasteInto(send);
      return false;
    }
    return true;
  });

  ws.onopen = () => {
    fill(status, 'Connected. Type in the terminal; Close terminal hangs up.');
    term.focus();
  };
  let exitCode = null;
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') {
      let m = {};
      try { m = JSON.parse(e.data); } catch { return; }
      if (m.type === 'exit') exitCode = m.exitCode;
      if (m.type === 'error') fill(status, h('span', { class: 'error-text' }, m.message));
      return;
    }
    term.write(decoder.decode(new Uint8Array(e.data), { stream: true }));
  };
  ws.onclose = (e) => {
    resized.disconnect();
    el.dataset.closed = 'true';
    term.setOption('disableStdin', true);
    term.setOption('cursorBlink', false);
    if (exitCode !== null) {
      fill(status, h('span', { class: `exit ${exitCode === 0 ? 'exit-ok' : 'exit-bad'}`, dataset: { exitCode: String(exitCode) } }, `exit ${exitCode}`), ' The shell ended.');
    } else if (e.code !== 1000) {
      fill(status, h('span', { class: 'error-text' }, `Terminal closed: ${e.reason || 'connection lost'} (${e.code})`));
    } else {
      fill(status, 'Terminal closed.');
    }
    onEnd();
  };
  let disposed = false;
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    resized.disconnect();
    term.dispose();
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !sheets.includes(s));
  };
  if (signal) signal.addEventListener('abort', () => { ws.close(1000, 'closed by the page'); dispose(); }, { once: true });
  return {
    term,
    send,
    stop: () => ws.close(1000, 'closed by the page'),
    dispose,
  };
}

export async function copySelection(term) {
  const text = term.getSelection();
  if (!text) {
    toast('Select text in the terminal first');
    return;
  }
  try {
    await copyText(text);
    toast('Copied');
  } catch (err) {
    toast(`Copy: ${err.message}`, 'error');
  }
}

export async function pasteInto(send) {
  try {
    // As xterm does with a pasted text: line ends are Enter (CR).
    send((await navigator.clipboard.readText()).replace(/\r?\n/g, '\r'));
  } catch (err) {
    toast(`Paste: ${err.message} (Shift+Insert pastes too)`, 'error');
  }
}

/**
 * The Terminal section of a sandbox's details: Open, and once open Copy,
 * Paste, Wide (the panel takes the page) and a link to the terminal's own
 * page; Close hangs up.
 */
export function terminalPanel(sb, signal) {
  const screen = h('div', { id: 'terminal-screen', class: 'terminal-screen', hidden: true, 'aria-label': `Terminal of ${sb.name || sb.id}` });
  const status = h('p', { id: 'terminal-status', class: 'exec-status', 'aria-live': 'polite' });
  const open = h('button', { id: 'terminal-open', class: 'btn', type: 'button' }, 'Open terminal');
  const close = h('button', { id: 'terminal-close', class: 'btn btn-small', type: 'button', hidden: true }, 'Close terminal');
  const copy = h('button', { id: 'terminal-copy', class: 'btn btn-small', type: 'button', hidden: true, title: 'Copy the selection (Ctrl+Shift+C)' }, 'Copy');
  const paste = h('button', { id: 'terminal-paste', class: 'btn btn-small', type: 'button', hidden: true, title: 'Paste (Ctrl+Shift+V)' }, 'Paste');
  const wide = h('button', { id: 'terminal-wide', class: 'btn btn-small', type: 'button', 'aria-pressed': 'false', title: 'The details take the whole page' }, 'Wide');
  const page = h('a', { id: 'terminal-page', class: 'btn btn-small', href: `/_emulator/dashboard/terminal.html#${enc(sb.id)}`, target: '_blank', rel: 'noopener' }, 'Own page ↗');
  let session = null;
  let last = null; // the newest terminal, kept on screen after it ends

  const running = (on) => {
    open.hidden = on;
    open.disabled = false;
    for (const b of [close, copy, paste]) b.hidden = !on;
  };
  const end = () => {
    if (session) session.stop();
  };
  signal.addEventListener('abort', () => {
    end();
    setWide(false);
  }, { once: true });
  close.addEventListener('click', end);
  copy.addEventListener('click', () => session && copySelection(session.term));
  paste.addEventListener('click', () => session && pasteInto(session.send));
  wide.addEventListener('click', () => setWide(wide.getAttribute('aria-pressed') !== 'true', wide));
  open.addEventListener('click', async () => {
    open.disabled = true;
    screen.hidden = false;
    if (last) last.dispose();
    last = null;
    try {
      session = last = await openTerminal(sb.id, screen, status, { signal, onEnd: () => { running(false); session = null; } });
      running(true);
    } catch (err) {
      open.disabled = false;
      if (err.name === 'AbortError') return;
      screen.hidden = true;
      fill(status, h('span', { class: 'error-text' }, err.notImplemented ? 'Terminals: not available in this build of rtemu.' : (err.readable || err.message)));
    }
  });
  return [h('div', { class: 'inline-form terminal-bar' }, open, close, copy, paste, h('span', { class: 'spacer' }), wide, page), screen, status];
}

/** Widens the details panel to the page (or back). */
function setWide(on, button) {
  const layout = document.querySelector('.layout');
  if (layout) layout.classList.toggle('detail-wide', on);
  const b = button || document.querySelector('#terminal-wide');
  if (b) {
    b.setAttribute('aria-pressed', String(on));
    b.textContent = on ? 'Narrow' : 'Wide';
  }
}
