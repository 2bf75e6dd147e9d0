package emulator_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testtool"
)

var loopbackURL = regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+$`)

const hello = "hello from the sandbox\n"

// TestDevURL reaches servers inside a sandbox through the URL the API
// returns, with every kind of client, and through Host routing.
func TestDevURL(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	id := c.create(nil)["id"].(string)
	start := time.Now()
	c.startServers(id, 2)
	// The daemon outlived the exec that started it, which returned at once.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("starting the servers took %v", took)
	}
	if ps := c.sh(id, "ps"); !strings.Contains(ps, "httpd -p 3000") {
		t.Fatalf("httpd is not running after its exec returned:\n%s", ps)
	}

	u := c.devURL(id, 3000)
	base, _ := u["url"].(string)
	if !loopbackURL.MatchString(base) || u["port"] != float64(3000) {
		t.Fatalf("url answer %v", u)
	}
	apiPort := c.srv.URL[strings.LastIndex(c.srv.URL, ":")+1:]
	wantLocal := fmt.Sprintf("http://3000-%s.localhost:%s", id, apiPort)
	if u["localhostUrl"] != wantLocal {
		t.Errorf("localhostUrl %v, want %s", u["localhostUrl"], wantLocal)
	}
	if again := c.devURL(id, 3000)["url"]; again != base {
		t.Errorf("second ask gave %v, first %v", again, base)
	}
	if other := c.devURL(id, 4000)["url"]; other == base {
		t.Errorf("ports 3000 and 4000 share %s", base)
	}

	t.Run("server on 127.0.0.1 only", func(t *testing.T) {
		u := c.devURL(id, 3001)
		if code, _, body := get(t, u["url"].(string)+"/", ""); code != 200 || body != hello {
			t.Errorf("url: %d %q", code, body)
		}
		if code, _, body := get(t, c.srv.URL+"/", "3001-"+id+".localhost"); code != 200 || body != hello {
			t.Errorf("Host routing: %d %q", code, body)
		}
	})

	t.Run("clients", func(t *testing.T) {
		if code, _, body := get(t, base+"/", ""); code != 200 || body != hello {
			t.Errorf("net/http: %d %q", code, body)
		}
		t.Run("curl", func(t *testing.T) {
			testtool.Need(t, "curl", "curl")
			out, err := exec.Command("curl", "-sS", "--fail", base+"/").CombinedOutput()
			if err != nil || string(out) != hello {
				t.Errorf("curl: %v %q", err, out)
			}
			// curl resolves *.localhost itself, as browsers do.
			out, err = exec.Command("curl", "-sS", "--fail", wantLocal+"/").CombinedOutput()
			if err != nil || string(out) != hello {
				t.Errorf("curl %s: %v %q", wantLocal, err, out)
			}
		})
		t.Run("python", func(t *testing.T) {
			testtool.Need(t, "python3", "python3")
			out, err := exec.Command("python3", "-c",
				"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())", base+"/").CombinedOutput()
			if err != nil || string(out) != hello {
				t.Errorf("python urllib: %v %q", err, out)
			}
		})
		// The browser form: Host routing on the API listener, no API key.
		if code, _, body := get(t, c.srv.URL+"/", fmt.Sprintf("3000-%s.localhost:%s", id, apiPort)); code != 200 || body != hello {
			t.Errorf("Host routing: %d %q", code, body)
		}
		// Other hosts still reach the API.
		if r := c.do("GET", "/v1/sandboxes/"+id, nil); r.Status != 200 {
			t.Errorf("API: %d", r.Status)
		}
	})

	t.Run("host rewritten to localhost", func(t *testing.T) {
		u := c.devURL(id, 4000)["url"].(string)
		code, _, head := get(t, u+"/some/path?q=1", "")
		if code != 200 || !strings.HasPrefix(head, "GET /some/path?q=1 HTTP/1.1\n") {
			t.Fatalf("%d %q", code, head)
		}
		if !strings.Contains(head, "\nHost: localhost\n") {
			t.Errorf("the server saw no Host: localhost:\n%s", head)
		}
		if !strings.Contains(head, "\nX-Forwarded-Host: "+strings.TrimPrefix(u, "http://")+"\n") {
			t.Errorf("no X-Forwarded-Host:\n%s", head)
		}
	})

	t.Run("connections to the server are kept", func(t *testing.T) {
		// As a browser's would be: a request after another reuses the
		// connection the proxy has to the sandbox's server, and a pause
		// between them does not strand the next one.
		u := c.devURL(id, 4003)["url"].(string) + "/"
		var conns []string
		for i := range 3 {
			if i == 2 {
				c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
				c.waitStatus(id, "paused")
			}
			code, _, body := get(t, u, "")
			if code != 200 || !strings.HasPrefix(body, "connection ") {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
			conns = append(conns, body)
		}
		if conns[0] != conns[1] || conns[1] != conns[2] {
			t.Errorf("requests in turn reached the server on %q; want one connection", conns)
		}
		if st := c.status(id); st != "running" {
			t.Errorf("status %s after a request to a paused sandbox", st)
		}
	})

	t.Run("server-sent events unbuffered", func(t *testing.T) {
		u := c.devURL(id, 4001)["url"].(string)
		start := time.Now()
		resp, err := http.Get(u + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := make(chan sseEvent, 4)
		go readEvents(resp.Body, start, events)
		one := next(t, events, 10*time.Second)
		two := next(t, events, 10*time.Second)
		if one.Data != "one" || two.Data != "two" {
			t.Fatalf("events %+v %+v", one, two)
		}
		// The server sleeps 2 s between them: the first must not wait for
		// the second.
		if gap := two.At - one.At; gap < 1500*time.Millisecond {
			t.Errorf("first event at %v, second at %v: the first was held back", one.At, two.At)
		}
	})

	t.Run("websocket upgrade", func(t *testing.T) {
		u := c.devURL(id, 4002)["url"].(string)
		conn, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", strings.TrimPrefix(u, "http://"))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
			t.Fatalf("upgrade answer %d %v", resp.StatusCode, resp.Header)
		}
		for _, msg := range []string{"ping\n", "second message\n"} {
			if _, err := conn.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			line, err := br.ReadString('\n')
			if err != nil || line != msg {
				t.Fatalf("echo %q, %v; want %q", line, err, msg)
			}
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		u := c.devURL(id, 3999)["url"].(string)
		code, h, body := get(t, u+"/", "")
		if code != http.StatusBadGateway || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, "Nothing is listening on port 3999 in sandbox "+id) {
			t.Errorf("%d %s %q", code, h.Get("Content-Type"), body)
		}
		code, _, body = get(t, c.srv.URL+"/", "3999-"+id+".localhost")
		if code != http.StatusBadGateway || !strings.Contains(body, "Nothing is listening") {
			t.Errorf("Host routing: %d %q", code, body)
		}
		code, _, body = get(t, c.srv.URL+"/", "3000-sandbox-000000000000.localhost")
		if code != http.StatusNotFound || !strings.Contains(body, "There is no sandbox") {
			t.Errorf("unknown sandbox: %d %q", code, body)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want int
		}{
			{"/v1/sandboxes/" + id + "/url", 400},
			{"/v1/sandboxes/" + id + "/url?port=abc", 400},
			{"/v1/sandboxes/" + id + "/url?port=0", 400},
			{"/v1/sandboxes/" + id + "/url?port=65536", 400},
			{"/v1/sandboxes/sandbox-000000000000/url?port=80", 404},
		} {
			if r := c.do("GET", tc.path, nil); r.Status != tc.want || (tc.want == 400 && r.ErrCode() != "bad_request") {
				t.Errorf("%s: %d %s", tc.path, r.Status, r.Body)
			}
		}
	})

	t.Run("a request resumes a paused sandbox", func(t *testing.T) {
		c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
		c.waitStatus(id, "paused")
		if code, _, body := get(t, base+"/", ""); code != 200 || body != hello {
			t.Fatalf("%d %q", code, body)
		}
		if st := c.status(id); st != "running" {
			t.Errorf("status %s after a request", st)
		}
	})

	t.Run("traffic in the activity feed, throttled", func(t *testing.T) {
		n := 0
		for _, e := range c.activity(id) {
			if e["eventType"] == "url-traffic" && e["attributes"].(map[string]any)["port"] == float64(3000) {
				n++
			}
		}
		// Six requests to port 3000 so far, within a minute.
		if n != 1 {
			t.Errorf("%d url-traffic events for port 3000, want 1", n)
		}
	})

	t.Run("destroyed", func(t *testing.T) {
		c.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
		if code, _, body := get(t, base+"/", ""); code != http.StatusConflict || !strings.Contains(body, "destroyed") {
			t.Errorf("%d %q", code, body)
		}
		if r := c.do("GET", "/v1/sandboxes/"+id+"/url?port=3000", nil); r.Status != http.StatusConflict {
			t.Errorf("url of a destroyed sandbox: %d %s", r.Status, r.Body)
		}
	})
}

// startRestartable starts an rtemu on dir that leaves its containers
// running when closed, and one sandbox in it; the sandbox's container is
// removed when the test ends, whatever happens.
func startRestartable(t *testing.T, dir string) (*emulatortest.Server, *client, string) {
	t.Helper()
	srv, err := emulatortest.Start(context.Background(), emulatortest.WithDataDir(dir),
		emulatortest.WithLog(t.Output()), emulatortest.WithContainersKept())
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, srv: srv, key: srv.APIKey}
	id := c.create(nil)["id"].(string)
	t.Cleanup(func() {
		_ = emulatortest.Docker(t).Remove(context.Background(), "rtemu-"+id)
	})
	return srv, c, id
}

// TestDevURLSurvivesRestart stops rtemu and starts it again on the same
// state: the URL given before works at once, and is given again.
func TestDevURLSurvivesRestart(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	dir := t.TempDir()
	first, c, id := startRestartable(t, dir)
	c.startServers(id, 1)
	before := c.devURL(id, 3000)["url"].(string)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(before); err == nil {
		t.Fatal("the URL still answers with rtemu stopped")
	}

	c = &client{t: t, srv: emulatortest.New(t, emulatortest.WithDataDir(dir)), key: emulatortest.APIKey}
	if code, _, body := get(t, before+"/", ""); code != 200 || body != hello {
		t.Fatalf("old URL after restart: %d %q", code, body)
	}
	if after := c.devURL(id, 3000)["url"]; after != before {
		t.Errorf("URL after restart %v, before %v", after, before)
	}
}

// TestDevURLPortTaken: when the old port is taken, the URL moves.
func TestDevURLPortTaken(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	dir := t.TempDir()
	first, c, id := startRestartable(t, dir)
	c.sh(id, `mkdir -p /www && echo 'hello from the sandbox' > /www/index.html && httpd -p 3000 -h /www`)
	before := c.devURL(id, 3000)["url"].(string)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(before)
	squatter, err := net.Listen("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()

	c = &client{t: t, srv: emulatortest.New(t, emulatortest.WithDataDir(dir)), key: emulatortest.APIKey}
	after := c.devURL(id, 3000)["url"].(string)
	if after == before || !loopbackURL.MatchString(after) {
		t.Fatalf("URL after restart %v, before %v (taken)", after, before)
	}
	if code, _, body := get(t, after+"/", ""); code != 200 || body != hello {
		t.Fatalf("new URL: %d %q", code, body)
	}
}
