package emulator_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// TestVNCEndpoint: /vnc and the desktop fields, on a desktop-ubuntu
// sandbox whose image is the small test image: vncUrl is there at once,
// vncReady turns true when something answers on 6901 (busybox httpd here
// stands in for noVNC), the URL reaches that port through rtemu, and a
// paused desktop is not ready. Other templates have no desktop: 409.
func TestVNCEndpoint(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	desk := c.create(map[string]any{"template": "desktop-ubuntu"})
	id := desk["id"].(string)
	if desk["vncReady"] != false || desk["vncUrl"] == nil {
		t.Fatalf("desktop sandbox before 6901 answers: vncReady %v, vncUrl %v", desk["vncReady"], desk["vncUrl"])
	}
	vnc := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/vnc", nil).Data()
	u, err := url.Parse(vnc["url"].(string))
	if err != nil || vnc["url"] != desk["vncUrl"] {
		t.Fatalf("vnc %v; sandbox vncUrl %v", vnc, desk["vncUrl"])
	}
	port, _ := strconv.Atoi(u.Port())
	if vnc["host"] != u.Hostname() || vnc["port"] != float64(port) {
		t.Errorf("vnc %v does not match its url", vnc)
	}
	if exp, err := time.Parse(time.RFC3339, vnc["expiresAt"].(string)); err != nil || !exp.After(time.Now()) {
		t.Errorf("vnc expiresAt %v: want a time to come", vnc["expiresAt"])
	}
	// By name too, like every sandbox path.
	named := c.create(map[string]any{"template": "desktop-ubuntu", "name": "my-desktop"})
	if got := c.must(http.StatusOK, "GET", "/v1/sandboxes/my-desktop/vnc", nil).Data()["url"]; got != named["vncUrl"] || got == desk["vncUrl"] {
		t.Errorf("vnc by name: %v; its sandbox's vncUrl %v, the other desktop's %v", got, named["vncUrl"], desk["vncUrl"])
	}

	c.sh(id, "mkdir -p /www && echo desktop-here > /www/index.html && httpd -p 6901 -h /www")
	waitField(t, c, id, "vncReady", true)

	// The URL opens what listens on 6901, through rtemu's proxy.
	page := getVia(t, u)
	if !strings.Contains(page, "desktop-here") {
		t.Errorf("vnc url served %q", page)
	}

	c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
	paused := c.waitStatus(id, "paused")
	if paused["vncReady"] != false || paused["vncUrl"] != desk["vncUrl"] {
		t.Errorf("paused desktop: vncReady %v, vncUrl %v", paused["vncReady"], paused["vncUrl"])
	}
	// Looking at it does not wake it.
	if again := c.waitStatus(id, "paused"); again["status"] != "paused" {
		t.Errorf("GET resumed the sandbox")
	}

	base := c.create(nil)
	tests := []struct {
		name, path string
		status     int
		code       string
	}{
		{"not a desktop", "/v1/sandboxes/" + base["id"].(string) + "/vnc", http.StatusConflict, "conflict"},
		{"unknown sandbox", "/v1/sandboxes/sandbox-000000000000/vnc", http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		r := c.do("GET", tt.path, nil)
		if r.Status != tt.status || r.ErrCode() != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.Status, r.Body, tt.status, tt.code)
		}
	}
	if base["vncReady"] != false || base["vncUrl"] != nil {
		t.Errorf("base-ubuntu sandbox: vncReady %v, vncUrl %v", base["vncReady"], base["vncUrl"])
	}
}

// waitField polls a sandbox until a field has a value.
func waitField(t *testing.T, c *client, id, field string, want any) map[string]any {
	t.Helper()
	var last map[string]any
	testwait.Check(t, 30*time.Second, func() error {
		if last = c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data(); last[field] == want {
			return nil
		}
		return fmt.Errorf("sandbox %s: %s never became %v; last %v", id, field, want, last)
	})
	return last
}

// getVia fetches u as a browser would: a *.localhost host is loopback
// (browsers resolve it so; Go's resolver does not).
func getVia(t *testing.T, u *url.URL) string {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
