package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/server"
	"github.com/rtemu-dev/rtemu/store"
)

// --engine kubernetes with no cluster to be found: start and doctor say
// where rtemu looked, and a failed start leaves nothing open (the store can
// be opened again, the API's address is free).
func TestEngineThatCannotBeMade(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := config.Config{Engine: "kubernetes", Addr: addr, SSHAddr: "127.0.0.1:0", DataDir: dir,
		Kube: config.Kube{Kubeconfig: filepath.Join(dir, "no-such-kubeconfig"), Namespace: "default", PullPolicy: "IfNotPresent"}}
	srv, err := server.Start(context.Background(), cfg, "test", slog.New(slog.DiscardHandler))
	if err == nil || srv != nil || !strings.Contains(err.Error(), "no-such-kubeconfig") {
		t.Fatalf("start with a kubeconfig that is not there: %v, %v; want an error naming it", srv, err)
	}
	st, err := store.Open(context.Background(), dir+"/rtemu.db")
	if err != nil {
		t.Fatalf("the store after a failed start: %v", err)
	}
	st.Close()
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("the API's address after a failed start: %v", err)
	} else {
		ln.Close()
	}
	var out bytes.Buffer
	if server.Doctor(context.Background(), cfg, &out) || !strings.Contains(out.String(), "FAIL kubernetes:") ||
		!strings.Contains(out.String(), "as kubectl does") {
		t.Fatalf("doctor with no cluster: %q; want a failure saying where rtemu looks", out.String())
	}
}
