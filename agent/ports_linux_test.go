package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// ServePorts reaches servers bound to loopback addresses and refuses a
// port nobody listens on, saying so.
func TestServePorts(t *testing.T) {
	t.Parallel()
	h2aR, h2aW := io.Pipe()
	a2hR, a2hW := io.Pipe()
	go func() { ServePorts(h2aR, a2hW); a2hW.Close() }()
	t.Cleanup(func() { h2aW.Close() })
	br := bufio.NewReader(a2hR)
	if typ, p, err := ReadFrame(br); err != nil || typ != FrameReady || string(p) != Version {
		t.Fatalf("first frame %q %q %v", typ, p, err)
	}
	host := NewMux(br, h2aW, nil)
	open := func(port int) (*Stream, error) {
		req, _ := json.Marshal(PortRequest{Port: port})
		return host.Open(context.Background(), req)
	}
	for _, bind := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			t.Logf("%s: %v (skipped)", bind, err)
			continue
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, _ = io.WriteString(c, "hello from "+bind+"\n")
				c.Close()
			}
		}()
		s, err := open(ln.Addr().(*net.TCPAddr).Port)
		if err != nil {
			t.Fatalf("%s: %v", bind, err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "hello from "+bind+"\n" {
			t.Errorf("%s: %q %v", bind, got, err)
		}
		s.Close()
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err := open(port)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Msg, "nothing listens on port") {
		t.Fatalf("closed port: %v", err)
	}
}
