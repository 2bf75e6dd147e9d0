// Talking to rtemu: the REST API with the key, the error envelope, and the
// key prompt that strict mode (--api-key) needs.

const KEY_STORE = 'rtemu.apiKey';
const KEY_PATTERN = /^rt_(live|test)_[A-Za-z0-9]{32}$/;

/** An answer that is not 2xx, decoded from the error envelope. */
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
  /** The endpoint exists upstream but not in this build of rtemu. */
  get notImplemented() { return this.status === 501; }
  /** A readable sentence, with the field details of a 400. */
  get readable() {
    const d = this.details.map((x) => (x.field ? `${x.field}: ${x.message}` : x.message));
    return d.length ? `${this.message}: ${d.join('; ')}` : this.message;
  }
}

function randomKey() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return 'rt_test_' + Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/**
 * The key the page sends. By default rtemu accepts any well-formed key, so
 * the page makes one up the first time and keeps it; strict mode refuses it
 * and the page asks (see onUnauthorized).
 */
export function currentKey() {
  let k = localStorage.getItem(KEY_STORE);
  if (!k || !KEY_PATTERN.test(k)) {
    k = randomKey();
    localStorage.setItem(KEY_STORE, k);
  }
  return k;
}

export function setKey(k) { localStorage.setItem(KEY_STORE, k.trim()); }
export function isWellFormedKey(k) { return KEY_PATTERN.test(k.trim()); }

// askForKey is installed by the page: it shows the key dialog and resolves
// when the user gave a key (rejects when they cancel).
let askForKey = null;
let pendingAsk = null;
export function onUnauthorized(fn) { askForKey = fn; }

/**
 * Asks for a key once, however many calls were refused at the same time,
 * and resolves when one was given.
 */
export function requestKey(err) {
  if (!pendingAsk) {
    pendingAsk = askForKey(err).finally(() => { pendingAsk = null; });
  }
  return pendingAsk;
}

async function decodeError(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: a proxy page, a crash */ }
  const e = body && body.error;
  if (e) return new ApiError(res.status, e.code, e.message, e.details || []);
  return new ApiError(res.status, 'http_' + res.status, `${res.status} ${res.statusText}`);
}

/**
 * Sends one API call with the key; resolves to the response (ok) or throws
 * an ApiError. A 401 asks for a key and tries again.
 */
export async function send(method, path, { body, accept, signal } = {}) {
  for (;;) {
    const headers = { 'X-API-Key': currentKey(), Accept: accept || 'application/json' };
    const init = { method, headers, signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.ok) return res;
    const err = await decodeError(res);
    if (res.status === 401 && askForKey) {
      await requestKey(err);
      continue;
    }
    throw err;
  }
}

/** An API call answering the envelope; resolves to the whole JSON body. */
export async function call(method, path, opts) {
  const res = await send(method, path, opts);
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, opts) => call('GET', path, opts);
export const post = (path, body, opts) => call('POST', path, { ...opts, body });
export const del = (path, opts) => call('DELETE', path, opts);

/** The URL of the change feed: EventSource cannot send headers. */
export function eventsURL() {
  return '/_emulator/events?key=' + encodeURIComponent(currentKey());
}

/** Parses a text/event-stream body, calling onEvent(type, data) per event. */
export async function readEventStream(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let type = 'message';
  let data = [];
  const line = (l) => {
    if (l === '') {
      if (data.length) onEvent(type, data.join('\n'));
      type = 'message';
      data = [];
    } else if (l.startsWith(':')) {
      // comment
    } else {
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      let value = i < 0 ? '' : l.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      line(buf.slice(0, nl));
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
    }
  }
  if (buf) line(buf);
  line('');
}
