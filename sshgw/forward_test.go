package sshgw_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// TestLocalForward: ssh -L reaches servers listening inside the sandbox
// (busybox httpd and nc), with OpenSSH and x/crypto; destinations outside
// the sandbox are refused; a paused sandbox is resumed by a forward.
// Issue 3 point 8.
func TestLocalForward(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(map[string]any{"name": "web"})
	h.sh(id, "mkdir -p /www && echo hello-from-sandbox > /www/index.html && httpd -p 8080 -h /www && httpd -p 127.0.0.1:8081 -h /www")
	h.sh(id, "nc -ll -p 7777 -e cat </dev/null >/dev/null 2>&1 &")

	c := h.mustDial(id, gossh.PublicKeys(key.signer))
	echo := func(t *testing.T, addr string) {
		t.Helper()
		var conn net.Conn
		var err error
		eventually(t, 10*time.Second, "the echo server", func() bool {
			conn, err = c.Dial("tcp", addr)
			return err == nil
		})
		defer conn.Close()
		if _, err := io.WriteString(conn, "ping through the tunnel\n"); err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "ping through the tunnel\n" {
			t.Fatalf("echo via %s: %q, %v", addr, line, err)
		}
	}
	t.Run("x/crypto to nc", func(t *testing.T) { echo(t, "localhost:7777") })

	// 8081 listens on 127.0.0.1 only, as dev servers do by default.
	for _, port := range []string{"8080", "8081"} {
		t.Run("x/crypto to httpd on "+port, func(t *testing.T) {
			hc := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
				return c.Dial("tcp", "127.0.0.1:"+port)
			}}}
			resp, err := hc.Get("http://sandbox/index.html")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello-from-sandbox\n" {
				t.Fatalf("body %q", body)
			}
		})
	}

	t.Run("OpenSSH -L to httpd", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		cmd := h.ssh("ssh", append(withKey(key), "-N", "-o", "ExitOnForwardFailure=yes",
			"-L", "127.0.0.1:"+port+":localhost:8080", target("web", h))...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		var body string
		eventually(t, 20*time.Second, "the page through ssh -L", func() bool {
			resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == 200
		})
		if body != "hello-from-sandbox\n" {
			t.Fatalf("body %q", body)
		}
	})

	t.Run("refused destinations", func(t *testing.T) {
		for _, addr := range []string{"example.com:80", "172.17.0.1:2375", "10.0.0.1:22"} {
			if conn, err := c.Dial("tcp", addr); err == nil {
				conn.Close()
				t.Errorf("forward to %s allowed", addr)
			} else if !strings.Contains(err.Error(), "administratively prohibited") {
				t.Errorf("forward to %s: %v", addr, err)
			}
		}
		if conn, err := c.Dial("tcp", "localhost:9"); err == nil {
			conn.Close()
			t.Error("forward to a closed port succeeded")
		}
	})

	t.Run("paused sandbox resumed by a forward", func(t *testing.T) {
		h.mustAPI(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/pause", nil)
		h.waitStatus(id, "paused")
		echo(t, "localhost:7777")
		h.waitStatus(id, "running")
	})
}
