// Small DOM and formatting helpers. Everything from rtemu (names, tags, file
// names, command output) goes in as text, never as HTML.

/**
 * h('button', {class: 'btn', onclick: fn}, 'Text', child…) makes an element.
 * Attributes set to false, null or undefined are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** "just now", "42s", "5m", "3h", "2d" since an RFC 3339 time. */
export function age(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** "just now" or "5m ago". */
export function ago(iso, now = Date.now()) {
  const a = age(iso, now);
  return a === 'just now' || a === '—' ? a : `${a} ago`;
}

/** A local date and time for a title or a detail row. */
export function when(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '—' : new Date(t).toLocaleString();
}

export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function duration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const parts = s < 3600 ? [[Math.floor(s / 60), 'm'], [s % 60, 's']]
    : s < 86400 ? [[Math.floor(s / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm']]
      : [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h']];
  return parts.filter(([n], i) => i === 0 || n > 0).map(([n, u]) => `${n}${u}`).join(' ');
}

const TRANSITIONAL = new Set(['creating', 'pausing', 'resuming', 'destroying']);
const BAD = new Set(['failed', 'error']);

/** The status word with a colour that only repeats what the word says. */
export function statusBadge(status) {
  const tone = status === 'running' ? 'ok'
    : status === 'paused' ? 'paused'
      : TRANSITIONAL.has(status) ? 'busy'
        : BAD.has(status) ? 'bad' : 'gone';
  return h('span', { class: `status status-${tone}`, dataset: { status } },
    h('span', { class: 'status-dot', 'aria-hidden': 'true' }), status);
}

let toastSeq = 0;
/** A short message in the corner; errors stay longer and are announced. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null, id: `toast-${++toastSeq}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 3500);
}

/** Copies text; falls back to a hidden textarea where the clipboard API is refused. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch { /* not a secure context, or no permission */ }
  const ta = h('textarea', { class: 'visually-hidden', readonly: true });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  const ok = document.execCommand('copy');
  ta.remove();
  if (!ok) throw new Error('the browser refused to copy');
}

/**
 * Asks before something that cannot be undone, in the page's confirmation
 * dialog (it opens on Cancel, so Enter does no harm). Resolves true on OK.
 */
export function confirmAction({ title, text, ok }) {
  const dialog = document.getElementById('confirm-dialog');
  fill(document.getElementById('confirm-title'), title);
  fill(document.getElementById('confirm-text'), text);
  fill(document.getElementById('confirm-ok'), ok);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    // The close event comes in a task of its own: one of an earlier
    // showing (closed by Escape, then opened again at once) can arrive
    // while this one is open, and must not answer it.
    const closed = () => {
      if (dialog.open) return;
      dialog.removeEventListener('close', closed);
      resolve(dialog.returnValue === 'ok');
    };
    dialog.addEventListener('close', closed);
    dialog.showModal();
  });
}
