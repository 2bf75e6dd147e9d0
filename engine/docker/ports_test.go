package docker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

// startServers starts, in the container, web servers on 0.0.0.0, on
// 127.0.0.1 and (when the container has IPv6 loopback) on ::1, and an echo
// server; it returns the ports of the web servers by bind address.
func startServers(t *testing.T, d *docker.Driver, name string) map[string]int {
	t.Helper()
	ports := map[string]int{"0.0.0.0": 8080, "127.0.0.1": 8081}
	cmd := `mkdir -p /www && echo hello-from-sandbox > /www/index.html &&
httpd -p 0.0.0.0:8080 -h /www && httpd -p 127.0.0.1:8081 -h /www &&
nc -ll -p 8090 -e cat </dev/null >/dev/null 2>&1 &
if [ -e /proc/net/if_inet6 ] && grep -q ' lo$' /proc/net/if_inet6; then httpd -p '[::1]:8082' -h /www && echo v6; fi`
	out, errOut, code, err := run(t, d, context.Background(), name, cmd)
	if err != nil || code != 0 {
		t.Fatalf("servers: code %d err %v: %s %s", code, err, out, errOut)
	}
	if strings.Contains(out, "v6") {
		ports["::1"] = 8082
	}
	return ports
}

// get fetches / through DialPort, retrying while the server comes up.
func get(t *testing.T, d *docker.Driver, name string, port int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := d.DialPort(context.Background(), name, port)
		if err == nil {
			defer conn.Close()
			fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("port %d: %v", port, err)
			}
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			t.Fatalf("dial port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every route into a sandbox's ports is made from inside it: servers bound
// to loopback only are reached as one bound to every address is, and a port
// nobody listens on is refused, through the agent's relay and through the
// shell relay alike.
func TestDialPort(t *testing.T) {
	t.Parallel()
	forEachExecPath(t, func(t *testing.T, d *docker.Driver, name string) {
		for bind, port := range startServers(t, d, name) {
			if got := get(t, d, name, port); got != "hello-from-sandbox\n" {
				t.Errorf("server on %s:%d answered %q", bind, port, got)
			}
		}
		_, err := d.DialPort(context.Background(), name, 9)
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "nothing listens on port 9") {
			t.Errorf("dial of a closed port: %v, want ECONNREFUSED saying nothing listens", err)
		}
	})
}

// Bytes go through the agent's relay unchanged both ways at once, many
// connections share it, and a half close is passed on, so the echo server
// sees the end of its input and closes. A connection nobody reads holds up
// only itself (back-pressure): the others finish meanwhile, and then all it
// was sent arrives.
func TestDialPortStreams(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	startServers(t, d, name)
	get(t, d, name, 8080) // the servers are up
	out, errOut, code, err := run(t, d, context.Background(), name,
		`head -c 8388608 /dev/urandom >/tmp/blob && sha256sum /tmp/blob && (nc -ll -p 8091 -e cat /tmp/blob </dev/null >/dev/null 2>&1 &)`)
	if err != nil || code != 0 {
		t.Fatalf("blob server: code %d err %v: %s %s", code, err, out, errOut)
	}
	wantSum, _, _ := strings.Cut(out, " ")
	var slow net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for slow == nil {
		if slow, err = d.DialPort(context.Background(), name, 8091); err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
				t.Fatalf("dial the blob server: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer slow.Close()

	const conns, size = 16, 4 << 20
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := d.DialPort(context.Background(), name, 8090)
			if err != nil {
				t.Errorf("conn %d: %v", i, err)
				return
			}
			defer conn.Close()
			payload := make([]byte, size)
			_, _ = rand.Read(payload)
			go func() {
				_, _ = conn.Write(payload)
				_ = conn.(interface{ CloseWrite() error }).CloseWrite()
			}()
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			got, err := io.ReadAll(conn)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(payload) {
				t.Errorf("conn %d: %d of %d bytes back, equal %v, err %v", i, len(got), size, bytes.Equal(got, payload), err)
			}
		}()
	}
	wg.Wait()
	_ = slow.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(slow)
	if sum := fmt.Sprintf("%x", sha256.Sum256(got)); err != nil || sum != wantSum {
		t.Errorf("the connection read last: %d bytes, sha256 %s, want %s, err %v", len(got), sum, wantSum, err)
	}
}

// A dial to a paused container does not hang: it is refused as not
// running, and works again once the container is thawed.
func TestDialPortPaused(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	startServers(t, d, name)
	get(t, d, name, 8080)
	ctx := context.Background()
	if err := d.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DialPort(ctx, name, 8080); !errors.Is(err, docker.ErrNotRunning) {
		t.Errorf("dial while paused: %v, want ErrNotRunning", err)
	}
	if err := d.Unpause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got := get(t, d, name, 8080); got != "hello-from-sandbox\n" {
		t.Errorf("after unpause: %q", got)
	}
}

// A server that speaks first (VNC, SSH, SMTP) is heard at once, for every
// connection: nothing the sandbox sends waits for the client's next write.
func TestDialPortServerSpeaksFirst(t *testing.T) {
	t.Parallel()
	d, name := newContainer(t)
	if _, errOut, code, err := run(t, d, context.Background(), name, `nc -ll -p 9000 -e sh -c 'echo banner; cat' </dev/null >/dev/null 2>&1 &`); err != nil || code != 0 {
		t.Fatalf("server: %d %v %s", code, err, errOut)
	}
	for i := range 20 {
		var conn net.Conn
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for {
			if conn, err = d.DialPort(context.Background(), name, 9000); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || line != "banner\n" {
			t.Fatalf("connection %d: %q %v", i, line, err)
		}
	}
}
