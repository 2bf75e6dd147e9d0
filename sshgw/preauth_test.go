package sshgw_test

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/sshgw"
)

// banner reads what the gateway sends a new connection first: its SSH
// version line, or nothing when it closes the connection at once.
func banner(t *testing.T, addr string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	_ = c.SetReadDeadline(time.Time{})
	return line, c
}

// TestPreAuthConnectionsBounded: connections that never log in hold at
// most MaxPreAuth places, one past them is closed at once, and each is
// dropped after the login grace time, after which a real login works.
func TestPreAuthConnectionsBounded(t *testing.T) {
	t.Parallel()
	h := newFakeHarness(t)
	key := newKey(t, "ed25519")
	box := h.sandbox(map[string]any{"sshKeys": []string{key.authorized}})
	g, err := sshgw.New(sshgw.Config{Service: h.srv.Service(), HostKeyPath: filepath.Join(t.TempDir(), "key"),
		MaxPreAuth: 20, LoginGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() { g.Close() })
	addr := ln.Addr().String()

	var idle []net.Conn
	for range 20 {
		line, c := banner(t, addr)
		if !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("connection %d of 20 got %q", len(idle)+1, line)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	opened := time.Now()
	line, extra := banner(t, addr)
	extra.Close()
	if line != "" {
		t.Fatalf("a 21st connection not logged in was served: %q", line)
	}
	// The idle ones are dropped after the grace time.
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 4096)); err == nil {
			// the rest of the key exchange offer; the close comes next
			_, err = c.Read(make([]byte, 4096))
			if err == nil {
				t.Fatalf("idle connection %d still open", i)
			}
		}
	}
	if took := time.Since(opened); took < time.Second || took > 8*time.Second {
		t.Errorf("idle connections dropped after %v, want about the 2 s grace", took)
	}
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: box, Auth: []gossh.AuthMethod{gossh.PublicKeys(key.signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 20 * time.Second}) // a gateway the test just made
	if err != nil {
		t.Fatalf("login after the flood: %v", err)
	}
	c.Close()
}

// TestIdlePreAuthFloodDoesNotDelayLogin: 200 connections that never
// authenticate do not slow a real login on rtemu's gateway.
func TestIdlePreAuthFloodDoesNotDelayLogin(t *testing.T) {
	t.Parallel()
	h := newFakeHarness(t)
	key := newKey(t, "ed25519")
	box := h.sandbox(map[string]any{"sshKeys": []string{key.authorized}})
	login := func() time.Duration {
		start := time.Now()
		c := h.mustDial(box, gossh.PublicKeys(key.signer))
		if r := run(t, c, "echo in", nil); r.stdout != "in\n" {
			t.Fatalf("%+v", r)
		}
		c.Close()
		return time.Since(start)
	}
	before := login()
	for range 200 {
		c, err := net.DialTimeout("tcp", h.srv.SSHAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	during := login()
	t.Logf("login %v before, %v with 200 idle pre-auth connections", before, during)
	if during > 3*before+time.Second {
		t.Errorf("login took %v with 200 idle connections open, %v before", during, before)
	}
}
