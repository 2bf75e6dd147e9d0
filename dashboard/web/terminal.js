// A small terminal for the browser terminal sessions of rtemu
// (POST /v1/terminal/sandbox-sessions, then the WebSocket at wsPath):
// a screen of rows × columns that understands what a shell and its line
// editor write (printable text, CR/LF/BS/TAB, and the common ANSI escape
// sequences: cursor moves, erases, insert/delete characters and lines,
// cursor-position reports), and the keyboard turned into the bytes a
// terminal sends. Colours and other attributes are ignored. Written by
// hand: the dashboard loads nothing from outside rtemu.

import * as api from './api.js';
import { h, fill } from './dom.js';

const enc = encodeURIComponent;

/** The screen: a grid of characters and a cursor. */
export class Screen {
  constructor(cols, rows) {
    this.cols = cols;
    this.rows = rows;
    this.x = 0;
    this.y = 0;
    this.saved = [0, 0];
    this.lines = Array.from({ length: rows }, () => this.blank());
    this.pending = ''; // an escape sequence split between two writes
    this.reply = () => {}; // answers to the shell (cursor position reports)
  }

  blank() { return Array(this.cols).fill(' '); }

  resize(cols, rows) {
    const lines = this.lines.map((l) => (l.length >= cols ? l.slice(0, cols) : l.concat(Array(cols - l.length).fill(' '))));
    this.cols = cols;
    while (lines.length > rows) {
      // Keep the bottom (where the cursor usually is), as terminals do.
      if (this.y > 0) { lines.shift(); this.y--; } else lines.pop();
    }
    while (lines.length < rows) lines.push(Array(cols).fill(' '));
    this.rows = rows;
    this.lines = lines;
    this.x = Math.min(this.x, cols - 1);
    this.y = Math.min(this.y, rows - 1);
  }

  scrollUp() {
    this.lines.shift();
    this.lines.push(this.blank());
  }

  newline() {
    if (this.y === this.rows - 1) this.scrollUp();
    else this.y++;
  }

  put(ch) {
    if (this.x >= this.cols) { // deferred wrap, as a VT100 does
      this.x = 0;
      this.newline();
    }
    this.lines[this.y][this.x++] = ch;
  }

  /** Writes text the shell sent. */
  write(text) {
    const s = this.pending + text;
    this.pending = '';
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === '\x1b') {
        const used = this.escape(s, i);
        if (used < 0) { // incomplete: wait for the rest
          this.pending = s.slice(i);
          return;
        }
        i += used - 1;
        continue;
      }
      switch (c) {
        case '\r': this.x = 0; break;
        case '\n': case '\x0b': case '\x0c': this.newline(); break;
        case '\b': if (this.x > 0) this.x = Math.min(this.x, this.cols) - 1; break;
        case '\t': this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8); break;
        case '\x07': case '\x00': case '\x0e': case '\x0f': break;
        default:
          if (c >= ' ') this.put(c);
      }
    }
  }

  /** Handles the escape sequence at s[i]; returns its length, or -1 when it is not all there yet. */
  escape(s, i) {
    if (i + 1 >= s.length) return -1;
    const k = s[i + 1];
    if (k === '[') {
      let j = i + 2;
      while (j < s.length && !(s[j] >= '@' && s[j] <= '~')) j++;
      if (j >= s.length) return -1;
      this.csi(s.slice(i + 2, j), s[j]);
      return j - i + 1;
    }
    if (k === ']') { // OSC (a window title): up to BEL or ST
      for (let j = i + 2; j < s.length; j++) {
        if (s[j] === '\x07') return j - i + 1;
        if (s[j] === '\x1b' && s[j + 1] === '\\') return j - i + 2;
      }
      return -1;
    }
    if (k === '(' || k === ')' || k === '#') return i + 2 < s.length ? 3 : -1; // character sets
    switch (k) {
      case '7': this.saved = [this.x, this.y]; break;
      case '8': [this.x, this.y] = this.saved; break;
      case 'M': if (this.y > 0) this.y--; else { this.lines.pop(); this.lines.unshift(this.blank()); } break;
      case 'D': this.newline(); break;
      case 'E': this.x = 0; this.newline(); break;
      case 'c': this.lines = Array.from({ length: this.rows }, () => this.blank()); this.x = this.y = 0; break;
      default: break; // = > and the rest: nothing to show
    }
    return 2;
  }

  csi(params, final) {
    const priv = params.startsWith('?') || params.startsWith('>');
    const n = params.replace(/^[?>]/, '').split(';').map((p) => parseInt(p, 10));
    const a = (idx, def) => (Number.isFinite(n[idx]) && n[idx] > 0 ? n[idx] : def);
    const row = this.lines[this.y];
    const clamp = () => {
      this.x = Math.max(0, Math.min(this.cols - 1, this.x));
      this.y = Math.max(0, Math.min(this.rows - 1, this.y));
    };
    if (priv) return; // modes (cursor visibility, alternate screen, …)
    switch (final) {
      case 'A': this.y -= a(0, 1); break;
      case 'B': case 'e': this.y += a(0, 1); break;
      case 'C': case 'a': this.x += a(0, 1); break;
      case 'D': this.x = Math.min(this.x, this.cols) - a(0, 1); break;
      case 'E': this.y += a(0, 1); this.x = 0; break;
      case 'F': this.y -= a(0, 1); this.x = 0; break;
      case 'G': case '`': this.x = a(0, 1) - 1; break;
      case 'd': this.y = a(0, 1) - 1; break;
      case 'H': case 'f': this.y = a(0, 1) - 1; this.x = a(1, 1) - 1; break;
      case 'J': {
        const mode = n[0] || 0;
        if (mode === 0) {
          row.fill(' ', Math.min(this.x, this.cols));
          for (let y = this.y + 1; y < this.rows; y++) this.lines[y] = this.blank();
        } else if (mode === 1) {
          row.fill(' ', 0, Math.min(this.x + 1, this.cols));
          for (let y = 0; y < this.y; y++) this.lines[y] = this.blank();
        } else {
          this.lines = Array.from({ length: this.rows }, () => this.blank());
        }
        break;
      }
      case 'K': {
        const mode = n[0] || 0;
        if (mode === 0) row.fill(' ', Math.min(this.x, this.cols));
        else if (mode === 1) row.fill(' ', 0, Math.min(this.x + 1, this.cols));
        else row.fill(' ');
        break;
      }
      case 'P': row.splice(this.x, a(0, 1)); while (row.length < this.cols) row.push(' '); break;
      case '@': row.splice(this.x, 0, ...Array(a(0, 1)).fill(' ')); row.length = this.cols; break;
      case 'X': row.fill(' ', this.x, Math.min(this.cols, this.x + a(0, 1))); break;
      case 'L': for (let k = 0; k < a(0, 1); k++) { this.lines.splice(this.y, 0, this.blank()); this.lines.pop(); } break;
      case 'M': for (let k = 0; k < a(0, 1); k++) { this.lines.splice(this.y, 1); this.lines.push(this.blank()); } break;
      case 'S': for (let k = 0; k < a(0, 1); k++) this.scrollUp(); break;
      case 's': this.saved = [this.x, this.y]; break;
      case 'u': [this.x, this.y] = this.saved; break;
      case 'n': if (n[0] === 6) this.reply(`\x1b[${this.y + 1};${Math.min(this.x, this.cols - 1) + 1}R`); break;
      default: break; // m (colours), r (scroll region), h/l, …
    }
    clamp();
  }

  /** The screen's text, one line a row, trailing blanks dropped. */
  text() { return this.lines.map((l) => l.join('').replace(/ +$/, '')).join('\n'); }
}

/** The bytes a terminal sends for a key, or null for keys it leaves alone. */
export function keyBytes(e) {
  // Shift+Tab is left to the page, so the keyboard can leave the terminal.
  if (e.metaKey || (e.key === 'Tab' && e.shiftKey)) return null;
  const named = {
    Enter: '\r', Backspace: '\x7f', Tab: '\t', Escape: '\x1b', Delete: '\x1b[3~',
    ArrowUp: '\x1b[A', ArrowDown: '\x1b[B', ArrowRight: '\x1b[C', ArrowLeft: '\x1b[D',
    Home: '\x1b[H', End: '\x1b[F', PageUp: '\x1b[5~', PageDown: '\x1b[6~', Insert: '\x1b[2~',
  };
  if (named[e.key]) return named[e.key];
  if (e.key.length !== 1) return null;
  if (e.ctrlKey && !e.altKey) {
    const c = e.key.toUpperCase().charCodeAt(0);
    if (c >= 64 && c <= 95) return String.fromCharCode(c - 64); // ^@ … ^_
    if (e.key === ' ') return '\x00';
    return null;
  }
  return e.altKey ? '\x1b' + e.key : e.key;
}

/**
 * The Terminal panel of a sandbox: a button opens a session, the screen
 * takes the keyboard, and the window's size follows the element's.
 */
export function terminalPanel(sb, signal) {
  const screenEl = h('pre', { id: 'terminal-screen', class: 'terminal-screen mono', tabindex: '0', hidden: true,
    'aria-label': `Terminal of ${sb.name || sb.id}`, 'aria-live': 'off' });
  const status = h('p', { id: 'terminal-status', class: 'exec-status', 'aria-live': 'polite' });
  const open = h('button', { id: 'terminal-open', class: 'btn', type: 'button' }, 'Open terminal');
  const close = h('button', { id: 'terminal-close', class: 'btn btn-small', type: 'button', hidden: true }, 'Close terminal');
  let session = null;

  const end = () => {
    if (session) session.stop();
    session = null;
  };
  signal.addEventListener('abort', end, { once: true });
  close.addEventListener('click', end);
  open.addEventListener('click', async () => {
    open.disabled = true;
    fill(status, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Opening…');
    try {
      const body = await api.post('/v1/terminal/sandbox-sessions', { sandboxId: sb.id }, { signal });
      session = connect(body.data, screenEl, status, () => {
        open.disabled = false;
        open.hidden = false;
        close.hidden = true;
        session = null;
      });
      open.hidden = true;
      close.hidden = false;
    } catch (err) {
      open.disabled = false;
      if (err.name === 'AbortError') return;
      fill(status, h('span', { class: 'error-text' }, err.notImplemented ? 'Terminals: not available in this build of rtemu.' : (err.readable || err.message)));
    }
  });
  return [h('div', { class: 'inline-form' }, open, close), screenEl, status];
}

/** The size in characters that fits the element. */
function fit(el) {
  const probe = h('span', {}, 'MMMMMMMMMM');
  el.append(probe);
  const r = probe.getBoundingClientRect();
  probe.remove();
  const cs = getComputedStyle(el);
  const w = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const hgt = el.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
  const cw = r.width / 10 || 8;
  const lh = parseFloat(cs.lineHeight) || r.height || 16;
  return { cols: Math.max(10, Math.floor(w / cw)), rows: Math.max(3, Math.floor(hgt / lh)) };
}

function connect(ts, el, status, onEnd) {
  el.hidden = false;
  el.replaceChildren();
  let size = fit(el);
  const screen = new Screen(size.cols, size.rows);
  el.dataset.cols = String(size.cols);
  el.dataset.rows = String(size.rows);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${ts.wsPath}?cols=${enc(size.cols)}&rows=${enc(size.rows)}`);
  ws.binaryType = 'arraybuffer';
  const decoder = new TextDecoder('utf-8');
  const send = (text) => { if (ws.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(text)); };
  screen.reply = send;

  const render = () => {
    const lines = screen.text().split('\n');
    const cur = lines[screen.y] || '';
    const x = Math.min(screen.x, screen.cols - 1);
    const line = cur.padEnd(x + 1, ' ');
    const before = lines.slice(0, screen.y).concat(line.slice(0, x)).join('\n');
    const after = [line.slice(x + 1)].concat(lines.slice(screen.y + 1)).join('\n');
    el.replaceChildren(document.createTextNode(before), h('span', { class: 'terminal-cursor' }, line[x]), document.createTextNode(after));
  };
  render();

  const onKey = (e) => {
    const b = keyBytes(e);
    if (b === null) return;
    e.preventDefault();
    send(b);
  };
  const onPaste = (e) => {
    e.preventDefault();
    send(e.clipboardData.getData('text'));
  };
  el.addEventListener('keydown', onKey);
  el.addEventListener('paste', onPaste);
  const resized = new ResizeObserver(() => {
    const s = fit(el);
    if (s.cols === size.cols && s.rows === size.rows) return;
    size = s;
    screen.resize(s.cols, s.rows);
    el.dataset.cols = String(s.cols);
    el.dataset.rows = String(s.rows);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: s.cols, rows: s.rows }));
    render();
  });
  resized.observe(el);

  ws.onopen = () => {
    fill(status, 'Connected. Type in the terminal; Close terminal hangs up.');
    el.focus();
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
    screen.write(decoder.decode(new Uint8Array(e.data), { stream: true }));
    render();
  };
  ws.onclose = (e) => {
    resized.disconnect();
    el.removeEventListener('keydown', onKey);
    el.removeEventListener('paste', onPaste);
    el.dataset.closed = 'true';
    if (exitCode !== null) {
      fill(status, h('span', { class: `exit ${exitCode === 0 ? 'exit-ok' : 'exit-bad'}`, dataset: { exitCode: String(exitCode) } }, `exit ${exitCode}`), ' The shell ended.');
    } else if (e.code !== 1000) {
      fill(status, h('span', { class: 'error-text' }, `Terminal closed: ${e.reason || 'connection lost'} (${e.code})`));
    } else {
      fill(status, 'Terminal closed.');
    }
    onEnd();
  };
  return { stop: () => ws.close(1000, 'closed by the page'), screen };
}
