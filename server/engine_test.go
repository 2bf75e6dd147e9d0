package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/server"
	"github.com/rtemu-dev/rtemu/store"
)

// --engine kubernetes, until its engine is built in: start and doctor say
// so, and a failed start leaves nothing open (the store can be opened
// again, the API's address is free).
func TestEngineNotBuiltIn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := config.Config{Engine: "kubernetes", Addr: addr, SSHAddr: "127.0.0.1:0", DataDir: dir}
	srv, err := server.Start(context.Background(), cfg, "test", slog.New(slog.DiscardHandler))
	if !errors.Is(err, server.ErrEngineNotBuiltIn) || srv != nil {
		t.Fatalf("start with --engine kubernetes: %v, %v; want ErrEngineNotBuiltIn", srv, err)
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
	if server.Doctor(context.Background(), cfg, &out) || !strings.Contains(out.String(), "not built into this rtemu") {
		t.Fatalf("doctor with --engine kubernetes: %q; want a failure saying so", out.String())
	}
}
