package sshgw

import (
	"net"
	"syscall"
	"testing"
)

// TestQuickAckAfterRead: every read of a gateway connection leaves quick
// ACKs on, so a client's Nagle-held handshake piece is not kept waiting
// 40 ms for the server's delayed ACK.
func TestQuickAckAfterRead(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ql := quickAckListener{ln}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ql.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	qc, ok := server.(*quickAckConn)
	if !ok {
		t.Fatalf("accepted %T", server)
	}
	quickAck := func() int {
		var v int
		var gerr error
		if err := qc.raw.Control(func(fd uintptr) {
			v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
		}); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	buf := make([]byte, 16)
	for i := 0; i < 3; i++ {
		// Off before the read (as the kernel leaves it once data flows in
		// both directions), on after it.
		_ = qc.raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
		})
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Read(buf); err != nil {
			t.Fatal(err)
		}
		if quickAck() != 1 {
			t.Fatalf("read %d: quick ACK off", i)
		}
	}
}
