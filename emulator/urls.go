package emulator

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/netguard"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// DevURLs serves the ports of sandboxes over HTTP, two ways:
//
//   - a loopback listener per sandbox port (http://127.0.0.1:PORT), the
//     URL the API returns: it works with every client and resolver;
//   - Host routing on the API listener: a request with Host
//     N-<id>.localhost[:port] goes to port N of the sandbox. Browsers and
//     curl resolve *.localhost to loopback; glibc's and Go's resolvers do
//     not, which is why it is not the URL returned.
//
// Both proxy through Service.DialPort, the one path into a sandbox's ports
// (it resumes a paused sandbox first). Traffic is passed through
// unbuffered: responses are flushed as they come (server-sent events) and
// upgrades (WebSocket) are spliced both ways.
type DevURLs struct {
	svc   *sandbox.Service
	log   *slog.Logger
	opts  DevURLOptions
	proxy *httputil.ReverseProxy

	// bindIP is where the loopback listeners listen (the API listener's
	// IP); urlHost is the host written in their URLs; apiPort is the API
	// listener's port, for the N-<id>.localhost form.
	bindIP, urlHost, apiPort string
	conns                    *netguard.Budget // nil: unbounded

	ctx    context.Context // cancelled by Close: ends every proxied request
	cancel context.CancelFunc
	wg     sync.WaitGroup // listeners, proxied requests and the reaper

	mu      sync.Mutex
	served  map[devTarget]*loopback
	reaping map[string]bool // destroyed sandboxes whose listeners close soon
	closed  bool
}

type devTarget struct {
	sandboxID string
	port      int
}

type loopback struct {
	hostPort int
	srv      *http.Server
}

type devTargetKey struct{}

// DevURLOptions say how dev URLs are written.
type DevURLOptions struct {
	// PublicAddr is the API's address as clients reach it (HOST:PORT);
	// "" is the listener's own.
	PublicAddr string
	// NoListeners makes url the Host-routed form on the API's address,
	// with no listener per sandbox port.
	NoListeners bool
}

// NewDevURLs makes the dev-URL proxy. Start begins serving.
func NewDevURLs(svc *sandbox.Service, log *slog.Logger, opts DevURLOptions) *DevURLs {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &DevURLs{svc: svc, log: log, opts: opts, ctx: ctx, cancel: cancel, served: map[devTarget]*loopback{}}
	d.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(devTargetKey{}).(devTarget)
			pr.Out.URL.Scheme = "http"
			// The transport keeps idle connections by URL host: one pool
			// per sandbox port (dial ignores the address).
			pr.Out.URL.Host = net.JoinHostPort(t.sandboxID, strconv.Itoa(t.port))
			// Dev servers (Vite, Next.js) refuse Hosts they do not know;
			// localhost they always accept.
			pr.Out.Host = "localhost"
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext: d.dial,
			// A connection to a sandbox's server is kept for its next
			// request, as a browser keeps one: each new one is a round
			// trip through the engine to the relay in the sandbox. serve
			// wakes a paused sandbox before a kept connection is used.
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     30 * time.Second,
			// Pass the client's Accept-Encoding as is; the transport's own
			// gzip would be decoded here, in chunks it chooses.
			DisableCompression: true,
		},
		// Flush every write at once: server-sent events and long polls
		// must not wait in a buffer.
		FlushInterval: -1,
		ErrorHandler:  d.proxyError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return d
}

// LimitConnections counts the dev-URL listeners' connections against b
// (shared with the API and the SSH gateway). Call it before Start.
func (d *DevURLs) LimitConnections(b *netguard.Budget) { d.conns = b }

// Start serves again the dev URLs given out before, each on its old port
// when that port is still free. apiAddr is the API listener's address.
func (d *DevURLs) Start(ctx context.Context, apiAddr net.Addr) error {
	host, port, err := net.SplitHostPort(apiAddr.String())
	if err != nil {
		return err
	}
	d.bindIP, d.urlHost, d.apiPort = host, host, port
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Listening everywhere; a URL needs one address.
		d.urlHost = "127.0.0.1"
	}
	if d.opts.PublicAddr != "" {
		if d.urlHost, d.apiPort, err = net.SplitHostPort(d.opts.PublicAddr); err != nil {
			return fmt.Errorf("public address: %w", err)
		}
	}
	urls, err := d.svc.DevURLs(ctx)
	if err != nil {
		return fmt.Errorf("dev URLs: %w", err)
	}
	for _, u := range urls {
		if _, err := d.open(ctx, devTarget{u.SandboxID, u.Port}, u.HostPort); err != nil {
			d.log.Warn("cannot serve a dev URL again", "sandbox", u.SandboxID, "port", u.Port, "err", err)
		}
	}
	changes := d.svc.Subscribe(d.ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		// Those served again may belong to sandboxes destroyed while rtemu
		// was stopping: look at every one once, then follow the changes.
		d.reapIf(func(string) bool { return true })
		d.reap(changes)
	}()
	return nil
}

// Close stops every loopback listener and ends every proxied request,
// WebSocket and event stream included, and waits for them.
func (d *DevURLs) Close() {
	d.mu.Lock()
	d.closed = true
	served := d.served
	d.served = map[devTarget]*loopback{}
	d.mu.Unlock()
	d.cancel()
	for _, lb := range served {
		_ = lb.srv.Close()
	}
	d.wg.Wait()
}

// devURL is the wire form of GET /v1/sandboxes/{id}/url.
type devURL struct {
	URL  string `json:"url"`
	Port int    `json:"port"`
	// LocalhostURL is the Host-routed form on the API listener, for
	// browsers and curl (an rtemu addition).
	LocalhostURL string `json:"localhostUrl"`
}

// URL returns the dev URL of a sandbox port, opening its listener if it
// has none yet.
func (d *DevURLs) URL(ctx context.Context, ref string, port int) (devURL, error) {
	sb, known, err := d.svc.DevURL(ctx, ref, port)
	if err != nil {
		return devURL{}, err
	}
	u := devURL{Port: port, LocalhostURL: fmt.Sprintf("http://%d-%s.localhost:%s", port, sb.ID, d.apiPort)}
	if d.opts.NoListeners {
		u.URL = u.LocalhostURL
		return u, nil
	}
	hp, err := d.open(ctx, devTarget{sb.ID, port}, known)
	if err != nil {
		return devURL{}, err
	}
	u.URL = "http://" + net.JoinHostPort(d.urlHost, strconv.Itoa(hp))
	return u, nil
}

// open makes sure a target has a loopback listener and returns its port:
// the known one when it is free, else a new one, which is recorded.
// KnownPortURL is the URL of a sandbox's port when it is served already
// (or needs no listener): what showing a sandbox may say without opening
// anything.
func (d *DevURLs) KnownPortURL(sandboxID string, port int) (string, bool) {
	if d.opts.NoListeners {
		return fmt.Sprintf("http://%d-%s.localhost:%s", port, sandboxID, d.apiPort), true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	lb, ok := d.served[devTarget{sandboxID, port}]
	if !ok {
		return "", false
	}
	return "http://" + net.JoinHostPort(d.urlHost, strconv.Itoa(lb.hostPort)), true
}

// PortURL is the URL of a sandbox's port, as GET /url gives it (the desktop's
// vncUrl is one).
func (d *DevURLs) PortURL(ctx context.Context, ref string, port int) (string, error) {
	u, err := d.URL(ctx, ref, port)
	return u.URL, err
}

func (d *DevURLs) open(ctx context.Context, t devTarget, known int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, &apiError{status: http.StatusServiceUnavailable, code: "internal_error", message: "rtemu is shutting down"}
	}
	if lb, ok := d.served[t]; ok {
		return lb.hostPort, nil
	}
	var ln net.Listener
	if known != 0 {
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(d.bindIP, strconv.Itoa(known))); err != nil {
			d.log.Warn("the dev URL's port is taken; it gets a new one", "sandbox", t.sandboxID, "port", t.port, "was", known, "err", err)
		}
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(d.bindIP, "0")); err != nil {
			return 0, fmt.Errorf("dev URL listener: %w", err)
		}
	}
	hp := ln.Addr().(*net.TCPAddr).Port
	if hp != known {
		if err := d.svc.SaveDevURL(ctx, sandbox.DevURL{SandboxID: t.sandboxID, Port: t.port, HostPort: hp}); err != nil {
			ln.Close()
			return 0, err
		}
	}
	if d.conns != nil {
		ln = d.conns.Listener(ln)
	}
	srv := &http.Server{
		// Slow clients are cut as on the API (netguard).
		Handler: netguard.Bodies(netguard.DefaultBodyRule, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.serve(w, r, t.sandboxID, t.port)
		})),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       netguard.IdleTimeout,
		ConnContext:       netguard.ConnContext,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	d.served[t] = &loopback{hostPort: hp, srv: srv}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = srv.Serve(ln)
	}()
	return hp, nil
}

// reap closes the listeners of sandboxes destroyed since they were opened,
// following the service's changes. A change can be lost to a full buffer
// (Subscribe), so every change of a served sandbox is checked against its
// record, not only the destroyed ones, and a reset checks them all.
func (d *DevURLs) reap(changes <-chan sandbox.Change) {
	for c := range changes {
		d.reapIf(func(id string) bool { return c.Kind == "reset" || c.Kind == "sandbox" && id == c.ID })
	}
}

// reapIf closes the listeners of the served sandboxes picked that are
// destroyed (or gone).
func (d *DevURLs) reapIf(pick func(sandboxID string) bool) {
	ids := map[string]bool{}
	d.mu.Lock()
	for k := range d.served {
		if pick(k.sandboxID) {
			ids[k.sandboxID] = true
		}
	}
	d.mu.Unlock()
	for id := range ids {
		sb, err := d.svc.Get(d.ctx, id)
		switch {
		case errors.Is(err, sandbox.ErrNotFound):
			d.forget(id)
		case err == nil && sb.Status == sandbox.StatusDestroyed:
			d.forgetLater(id)
		}
	}
}

// devURLGrace is how long a destroyed sandbox's dev URLs keep answering
// (409, the sandbox is destroyed) before their listeners close: a client
// is told why rather than refused.
const devURLGrace = 10 * time.Second

// forgetLater closes a destroyed sandbox's listeners after the grace.
func (d *DevURLs) forgetLater(sandboxID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.reaping[sandboxID] {
		return
	}
	if d.reaping == nil {
		d.reaping = map[string]bool{}
	}
	d.reaping[sandboxID] = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(devURLGrace):
		}
		d.forget(sandboxID)
		d.mu.Lock()
		delete(d.reaping, sandboxID)
		d.mu.Unlock()
	}()
}

func (d *DevURLs) forget(sandboxID string) {
	d.mu.Lock()
	var closing []*http.Server
	for k, lb := range d.served {
		if k.sandboxID == sandboxID {
			closing = append(closing, lb.srv)
			delete(d.served, k)
		}
	}
	d.mu.Unlock()
	for _, srv := range closing {
		_ = srv.Close()
	}
	if err := d.svc.ForgetDevURLs(d.ctx, sandboxID); err != nil && d.ctx.Err() == nil {
		d.log.Warn("cannot forget dev URLs", "sandbox", sandboxID, "err", err)
	}
}

// hostRoute matches N-<sandbox id or name>.localhost.
var hostRoute = regexp.MustCompile(`(?i)^([0-9]{1,5})-([A-Za-z0-9][A-Za-z0-9._-]*)\.localhost\.?$`)

// Front routes requests for N-<id>.localhost to the sandbox before the API
// (and its authentication) sees them; every other request goes to api.
func (d *DevURLs) Front(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		m := hostRoute.FindStringSubmatch(host)
		if m == nil {
			api.ServeHTTP(w, r)
			return
		}
		port, _ := strconv.Atoi(m[1])
		d.serve(w, r, m[2], port)
	})
}

// serve proxies one request to a sandbox port. The request counts as
// activity for as long as it is open, WebSockets and event streams
// included.
func (d *DevURLs) serve(w http.ResponseWriter, r *http.Request, ref string, port int) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		writePage(w, http.StatusServiceUnavailable, "rtemu is shutting down", "Try again once rtemu is back.")
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(d.ctx, cancel)()

	if port < 1 || port > 65535 {
		writePage(w, http.StatusBadRequest, "No such port", fmt.Sprintf("Port %d is not a TCP port (1 to 65535).", port))
		return
	}
	// Running before the proxy picks a connection: a kept one reaches a
	// paused sandbox without DialPort's wake-up.
	sb, err := d.svc.ReadyForPorts(ctx, ref)
	if err != nil {
		d.sandboxError(w, err, ref, port)
		return
	}
	defer d.svc.BeginActivity(ctx, sb.ID)()
	upgrade := r.Header.Get("Upgrade")
	attrs := map[string]any{"method": r.Method, "path": truncatePath(r.URL.Path)}
	if upgrade != "" {
		attrs["upgrade"] = upgrade
	}
	d.svc.NoteURLRequest(ctx, sb.ID, port, attrs)
	ctx = context.WithValue(ctx, devTargetKey{}, devTarget{sb.ID, port})
	d.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func truncatePath(p string) string {
	if len(p) > 200 {
		return p[:200] + "…"
	}
	return p
}

func (d *DevURLs) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	t, ok := ctx.Value(devTargetKey{}).(devTarget)
	if !ok {
		return nil, errors.New("dev URL: request without a target")
	}
	conn, _, err := d.svc.DialPort(ctx, t.sandboxID, t.port)
	return conn, err
}

func (d *DevURLs) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(devTargetKey{}).(devTarget)
	if r.Context().Err() != nil {
		// The client went away or rtemu is stopping: nobody reads a page.
		return
	}
	var se *sandbox.Error
	switch {
	case errors.As(err, &se):
		d.sandboxError(w, err, t.sandboxID, t.port)
	case errors.Is(err, syscall.ECONNREFUSED):
		writePage(w, http.StatusBadGateway, "Nothing is listening on this port",
			fmt.Sprintf("Nothing is listening on port %d in sandbox %s. Start your server there: listening on "+
				"127.0.0.1, ::1 or 0.0.0.0 inside the sandbox all work.", t.port, t.sandboxID))
	default:
		d.log.Debug("dev URL proxy error", "sandbox", t.sandboxID, "port", t.port, "err", err)
		writePage(w, http.StatusBadGateway, "The sandbox's server did not answer",
			fmt.Sprintf("The server on port %d in sandbox %s did not answer properly: %v", t.port, t.sandboxID, err))
	}
}

// sandboxError answers a request whose sandbox cannot serve.
func (d *DevURLs) sandboxError(w http.ResponseWriter, err error, ref string, port int) {
	var se *sandbox.Error
	if !errors.As(err, &se) {
		d.log.Error("dev URL", "sandbox", ref, "port", port, "err", err)
		writePage(w, http.StatusInternalServerError, "Internal error", "rtemu's log has the cause.")
		return
	}
	status := kindStatus[se.Kind].status
	title := map[int]string{
		http.StatusNotFound:           "No such sandbox",
		http.StatusConflict:           "The sandbox cannot serve",
		http.StatusServiceUnavailable: "The engine does not answer",
	}[status]
	if title == "" {
		title = http.StatusText(status)
	}
	msg := se.Message
	if status == http.StatusNotFound {
		msg = fmt.Sprintf("There is no sandbox %q.", ref)
	}
	writePage(w, status, title, msg)
}

// writePage answers a browser with a short HTML page.
func writePage(w http.ResponseWriter, status int, title, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Rtemu-Error", strconv.Itoa(status))
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>%[1]d %[2]s · rtemu</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}small{color:#777}</style>
</head><body><h1>%[1]d · %[2]s</h1><p>%[3]s</p><p><small>rtemu dev URL proxy</small></p></body></html>
`, status, html.EscapeString(title), html.EscapeString(msg))
}

// devURL answers GET /v1/sandboxes/{id}/url?port=N.
func (a *api) devURL(c echo.Context) error {
	raw := c.QueryParam("port")
	if raw == "" {
		return badRequest("port", "required: the port inside the sandbox, 1 to 65535")
	}
	port, err := strconv.Atoi(raw)
	if err != nil {
		return badRequest("port", "must be a whole number from 1 to 65535")
	}
	if a.devURLs == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", message: "dev URLs are not served by this rtemu"}
	}
	u, err := a.devURLs.URL(c.Request().Context(), c.Param("id"), port)
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, u)
}
