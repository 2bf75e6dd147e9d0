package sshgw_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testtool"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// TestHostKeyKeptAcrossRestart: the host key is made once and kept in the
// data dir; after a restart on the same address, OpenSSH with
// StrictHostKeyChecking=yes and the known_hosts it wrote the first time
// connects without a warning. Issue 3 point 10.
func TestHostKeyKeptAcrossRestart(t *testing.T) {
	t.Parallel()
	emulatortest.SkipIfNoDocker(t)
	testtool.Need(t, "openssh-client", "ssh")
	ctx := context.Background()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dataDir, home := t.TempDir(), t.TempDir()
	cfg := config.Config{Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: dataDir,
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}}}
	start := func() *server.Server {
		t.Helper()
		srv, err := server.Start(ctx, cfg, "test", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		srv.RemoveContainersOnClose()
		return srv
	}
	stop := func(srv *server.Server) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	key := newKey(t, "ed25519")
	knownHosts := filepath.Join(home, "known_hosts")

	// connect logs in to a new sandbox on srv with OpenSSH, with the given
	// host key checking, and returns ssh's stderr.
	connect := func(srv *server.Server, checking string) string {
		t.Helper()
		h := &harness{t: t, srv: &emulatortest.Server{Server: srv, APIKey: emulatortest.APIKey}, dir: home, knownHosts: knownHosts}
		h.host, h.port, _ = net.SplitHostPort(srv.SSHAddr)
		id := h.sandbox(map[string]any{"sshKeys": []string{key.authorized}})
		cmd := h.ssh("ssh", append(withKey(key), target(id, h), "echo in")...)
		// ssh takes the first value given for an option: these override
		// the harness's StrictHostKeyChecking=yes and LogLevel=ERROR, so
		// every host key message shows.
		cmd.Args = append(cmd.Args[:1], append([]string{"-o", "StrictHostKeyChecking=" + checking, "-o", "LogLevel=INFO"}, cmd.Args[1:]...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || out.String() != "in\n" {
			t.Fatalf("ssh (StrictHostKeyChecking=%s): %v, stdout %q, stderr %q", checking, err, out.String(), errb.String())
		}
		h.mustAPI(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
		return errb.String()
	}

	first := start()
	addr := first.SSHAddr
	if stderr := connect(first, "accept-new"); !strings.Contains(stderr, "Permanently added") {
		t.Errorf("first connection: stderr %q", stderr)
	}
	keyBefore, err := os.ReadFile(filepath.Join(dataDir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	stop(first)

	cfg.SSHAddr = addr // the same address, so known_hosts names it
	second := start()
	defer stop(second)
	if stderr := connect(second, "yes"); stderr != "" {
		t.Errorf("after the restart ssh said %q", stderr)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dataDir, "ssh_host_ed25519_key"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Error("the host key file changed across the restart")
	}
	kh, _ := os.ReadFile(knownHosts)
	if n := strings.Count(string(kh), "\n"); n != 1 {
		t.Errorf("known_hosts has %d lines: %q", n, kh)
	}
}
