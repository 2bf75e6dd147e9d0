package sshgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// directTCPIPMsg is the payload of a "direct-tcpip" channel (RFC 4254 §7.2).
type directTCPIPMsg struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// forwardTarget says whether a forward's destination host means the
// sandbox itself: its loopback as seen from inside (ssh -L 8080:localhost:80)
// or its own names. Anything else is refused, so the gateway is never a
// proxy into the host's network or to other containers.
func forwardTarget(host string, sb *sandbox.Sandbox) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || ip.IsUnspecified()
	}
	switch strings.ToLower(host) {
	case "", "localhost", "localhost.localdomain", "ip6-localhost":
		return true
	}
	return host == sb.ID || host == strings.TrimPrefix(sb.ID, "sandbox-") || (sb.Name != "" && host == sb.Name)
}

// handleDirectTCPIP serves ssh -L: each forwarded connection reaches a port
// inside the sandbox through the service (which resumes a paused sandbox).
func (g *Gateway) handleDirectTCPIP(_ *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	id, ok := sandboxOf(ctx, conn)
	if !ok {
		_ = newChan.Reject(gossh.Prohibited, "not logged in to a sandbox")
		return
	}
	var m directTCPIPMsg
	if err := gossh.Unmarshal(newChan.ExtraData(), &m); err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	sb, err := g.svc.Get(ctx, id)
	if err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, "sandbox not available")
		return
	}
	if !forwardTarget(m.DestAddr, sb) {
		_ = newChan.Reject(gossh.Prohibited, fmt.Sprintf(
			"rtemu forwards only to ports of the sandbox itself (localhost:PORT), not to %s", m.DestAddr))
		return
	}
	if m.DestPort < 1 || m.DestPort > 65535 {
		_ = newChan.Reject(gossh.ConnectionFailed, "port out of range")
		return
	}
	target, _, err := g.svc.DialPort(ctx, id, int(m.DestPort))
	if err != nil {
		msg := fmt.Sprintf("nothing answers on port %d in the sandbox", m.DestPort)
		var se *sandbox.Error
		if errors.As(err, &se) {
			msg = se.Message
		}
		_ = newChan.Reject(gossh.ConnectionFailed, msg)
		return
	}
	defer target.Close()
	ch, reqs, err := newChan.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	defer g.svc.BeginActivity(ctx, id)()
	pipe(ctx, ch, target)
}

// pipe copies both ways until both directions are done. An EOF one way is
// passed on as a half-close, so request/response protocols finish; the
// connection ending stops both.
//
// Through `ssh -L` nearly all of a download's CPU time here is x/crypto's
// channel Write (the MAC, the cipher and a write(2) per piece of a
// packet), not the copy: io.Copy's 32 KiB buffer against one of 256 KiB,
// and the writes to the client queued to go out several at once, were
// measured and gained nothing (BENCHMARKS.md, round six).
func pipe(ctx context.Context, ch gossh.Channel, target net.Conn) {
	stop := context.AfterFunc(ctx, func() { target.Close(); ch.Close() })
	defer stop()
	back := make(chan struct{})
	go func() {
		defer close(back)
		_, _ = io.Copy(ch, target)
		_ = ch.CloseWrite()
	}()
	_, _ = io.Copy(target, ch)
	if tc, ok := target.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	} else {
		_ = target.Close()
	}
	<-back
}
