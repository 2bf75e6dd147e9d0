package emulator

// STAND-IN, to be deleted when the dev-URL proxy (emulator/urls.go, branch
// live) is merged: its DevURLs serves the same routes and gets a PortURL
// method. Until then this serves just enough of it for the desktop: Host
// N-<id>.localhost[:port] on the API listener is proxied to port N of the
// sandbox, WebSockets included.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// HostRoutes is the stand-in dev-URL proxy.
type HostRoutes struct {
	svc     *sandbox.Service
	apiPort string
	proxy   *httputil.ReverseProxy
}

type hostRouteTarget struct {
	id   string
	port int
}

type hostRouteKey struct{}

var standinHostRoute = regexp.MustCompile(`^([0-9]{1,5})-([A-Za-z0-9][A-Za-z0-9._-]*)\.localhost\.?$`)

// NewHostRoutes makes the stand-in proxy for the API listening on apiAddr.
func NewHostRoutes(svc *sandbox.Service, apiAddr net.Addr) *HostRoutes {
	h := &HostRoutes{svc: svc}
	_, h.apiPort = hostPort(apiAddr)
	h.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(hostRouteKey{}).(hostRouteTarget)
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", net.JoinHostPort("localhost", strconv.Itoa(t.port)), "localhost"
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				t := ctx.Value(hostRouteKey{}).(hostRouteTarget)
				conn, _, err := svc.DialPort(ctx, t.id, t.port)
				return conn, err
			},
			DisableKeepAlives: true,
		},
		FlushInterval: -1,
	}
	return h
}

// PortURL is the URL of a sandbox port.
func (h *HostRoutes) PortURL(ctx context.Context, ref string, port int) (string, error) {
	sb, err := h.svc.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("http://%d-%s.localhost:%s/", port, sb.ID, h.apiPort), nil
}

// Front routes N-<id>.localhost requests to sandboxes and the rest to api.
func (h *HostRoutes) Front(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		m := standinHostRoute.FindStringSubmatch(host)
		if m == nil {
			api.ServeHTTP(w, r)
			return
		}
		port, _ := strconv.Atoi(m[1])
		sb, err := h.svc.Get(r.Context(), m[2])
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, sandbox.ErrNotFound) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		// Open for as long as the request is: a VNC WebSocket keeps the
		// sandbox awake.
		defer h.svc.BeginActivity(r.Context(), sb.ID)()
		ctx := context.WithValue(r.Context(), hostRouteKey{}, hostRouteTarget{sb.ID, port})
		h.proxy.ServeHTTP(w, r.WithContext(ctx))
	})
}
