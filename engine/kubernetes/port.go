package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/rtemu-dev/rtemu/agent"
)

// listening exits 0 when a TCP server listens on the port ($1, in the
// kernel's hexadecimal) in the pod's network namespace.
const listening = `grep -qs ":$1 [0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6`

// DialPort connects to a port inside the sandbox's pod, from inside its
// network namespace, so a server bound to 127.0.0.1 there is reached: as a
// stream of the pod's port relay (the exec agent in its ports mode, on one
// exec stream that carries every connection), or, where the agent cannot
// run, through the API server's pods/portforward subresource. When nothing
// listens on the port the error wraps syscall.ECONNREFUSED (a port-forward
// stream opens whatever listens, so the engine looks first); a paused or
// stopped sandbox gives ErrNotRunning.
func (e *Engine) DialPort(ctx context.Context, name string, port int) (net.Conn, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("dial %s: port %d out of range", name, port)
	}
	p, err := e.running(ctx, name)
	if err != nil {
		return nil, err
	}
	if c, err, ok := e.dialByRelay(ctx, name, port); ok {
		return c, err
	}
	return e.dialByForward(ctx, name, p.Name, port)
}

// dialByRelay opens a stream of the sandbox's port relay to the port; ok
// is false when the relay cannot (no agent for the pod, or it cannot
// start): the port-forward's turn.
func (e *Engine) dialByRelay(ctx context.Context, name string, port int) (c net.Conn, err error, ok bool) {
	if e.agents == nil {
		return nil, nil, false
	}
	req, _ := json.Marshal(agent.PortRequest{Port: port})
	for range 3 {
		m, err := e.agents.relays.Get(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err(), true
			}
			e.log.Debug("no port relay: port-forward", "sandbox", name, "err", err)
			return nil, nil, false
		}
		s, err := m.Open(ctx, req)
		var refused *agent.RefusedError
		switch {
		case err == nil:
			return s, nil, true
		case errors.As(err, &refused):
			return nil, fmt.Errorf("dial %s port %d: %s: %w", name, port, refused.Msg, syscall.ECONNREFUSED), true
		case ctx.Err() != nil:
			return nil, ctx.Err(), true
		case errors.Is(err, agent.ErrRelayClosed):
			// The relay ended (its pod restarted, or it was idle and
			// closed): start another.
			e.agents.relays.Drop(name, m)
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// dialByForward connects to the port through a port-forward of the pod.
func (e *Engine) dialByForward(ctx context.Context, name, pod string, port int) (net.Conn, error) {
	if _, err := e.run(ctx, pod, listening, fmt.Sprintf("%04X", port)); err != nil {
		if strings.Contains(err.Error(), "exit code") {
			return nil, fmt.Errorf("dial %s port %d: nothing listens there: %w", name, port, syscall.ECONNREFUSED)
		}
		return nil, fmt.Errorf("dial %s port %d: %w", name, port, err)
	}
	sc, err := e.portForward(pod)
	if err != nil {
		return nil, fmt.Errorf("dial %s port %d: %w", name, port, err)
	}
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := sc.CreateStream(h)
	if err != nil {
		sc.Close()
		return nil, wrap(err, fmt.Sprintf("dial %s port %d", name, port))
	}
	errStream.Close() // nothing to write on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := sc.CreateStream(h)
	if err != nil {
		sc.Close()
		return nil, wrap(err, fmt.Sprintf("dial %s port %d", name, port))
	}
	mine, theirs := net.Pipe()
	pc := &forwarded{Conn: mine, sc: sc}
	go pc.relay(theirs, data, errStream, e, name, port)
	return pc, nil
}

// portForward opens a port-forward connection to the pod: over WebSocket
// where the API server offers it, else SPDY, as kubectl does.
func (e *Engine) portForward(pod string) (httpstream.Connection, error) {
	u := e.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.ns).Name(pod).SubResource("portforward").URL()
	tr, up, err := spdy.RoundTripperFor(e.cfg)
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", (*url.URL)(u))
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, e.cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	sc, proto, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, wrap(err, "port-forward")
	}
	if proto != portforward.PortForwardProtocolV1Name {
		sc.Close()
		return nil, fmt.Errorf("port-forward: the API server speaks %q", proto)
	}
	return sc, nil
}

// forwarded is one port-forward stream as a net.Conn (a pipe, so that
// deadlines work); closing it closes the port-forward connection.
type forwarded struct {
	net.Conn
	sc   httpstream.Connection
	once sync.Once
}

func (f *forwarded) Close() error {
	err := f.Conn.Close()
	f.once.Do(func() { f.sc.Close() })
	return err
}

// relay copies between the pipe's far end and the data stream until either
// ends; what the error stream says then is logged.
func (f *forwarded) relay(pipe net.Conn, data, errStream httpstream.Stream, e *Engine, name string, port int) {
	defer f.once.Do(func() { f.sc.Close() })
	defer pipe.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(pipe, data)
		close(done)
	}()
	go func() {
		_, _ = io.Copy(data, pipe)
		_ = data.Close() // the far end reads EOF
	}()
	<-done
	if msg, _ := io.ReadAll(io.LimitReader(errStream, 4096)); len(msg) > 0 {
		e.log.Debug("port-forward ended", "sandbox", name, "port", port, "err", strings.TrimSpace(string(msg)))
	}
}
