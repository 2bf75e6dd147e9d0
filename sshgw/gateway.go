// Package sshgw is rtemu's SSH front door: `ssh <sandbox id or name>@host`
// opens a shell or runs a command in that sandbox's container, serves SFTP
// (so sftp and scp work with images that have no sftp-server) and forwards
// ports (ssh -L). The images need no sshd: every process is started through
// the lifecycle service, which runs it with the engine's exec.
//
// gliderlabs/ssh provides the server, the connection handling and the
// authentication callbacks; the session channel is handled here on
// golang.org/x/crypto/ssh directly, because gliderlabs' session rewrites
// "\n" to "\r\n" on PTY output (which breaks full-screen programs whose
// terminal already has a real PTY behind it) and cannot send every exit
// path's status the way this gateway needs.
package sshgw

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/netguard"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// Defaults of Config's limits on connections that have not logged in.
const (
	// defaultLoginGrace is how long a connection may take to authenticate
	// (OpenSSH's LoginGraceTime is 120 s); a client that never does is
	// dropped.
	defaultLoginGrace = time.Minute
	// defaultMaxPreAuth bounds the connections still authenticating
	// (OpenSSH's MaxStartups): past it a new one is closed at once, so a
	// flood of idle connections holds at most this many, for at most the
	// grace time, and the rest of the budget stays for logged-in users.
	defaultMaxPreAuth = 512
)

// Config configures a Gateway.
type Config struct {
	Service *sandbox.Service
	// HostKeyPath is where the ed25519 host key is kept; it is made on
	// first use, so known_hosts entries stay valid across restarts.
	HostKeyPath string
	Logger      *slog.Logger
	// Conns, if set, counts the gateway's connections against the budget
	// shared with the API.
	Conns *netguard.Budget
	// LoginGrace and MaxPreAuth bound the connections not yet logged in
	// (0: the defaults, a minute and 512).
	LoginGrace time.Duration
	MaxPreAuth int
	// Throttle slows and then refuses password guessing (zero fields: the
	// defaults; see throttle.go).
	Throttle ThrottlePolicy
}

// Gateway is the SSH server.
type Gateway struct {
	svc *sandbox.Service
	log *slog.Logger
	srv *ssh.Server

	conns      *netguard.Budget
	loginGrace time.Duration
	maxPreAuth int64
	preAuth    atomic.Int64 // connections accepted and not yet logged in
	throttle   *throttle

	mu       sync.Mutex
	addr     string // "" while not serving
	closed   bool
	handlers sync.WaitGroup // channel handlers still running
}

// New makes a Gateway, loading (or making) its host key.
func New(cfg Config) (*Gateway, error) {
	signer, err := loadOrCreateHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, err
	}
	g := &Gateway{svc: cfg.Service, log: cfg.Logger, conns: cfg.Conns, loginGrace: cfg.LoginGrace,
		maxPreAuth: int64(cfg.MaxPreAuth), throttle: newThrottle(cfg.Throttle)}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.loginGrace <= 0 {
		g.loginGrace = defaultLoginGrace
	}
	if g.maxPreAuth <= 0 {
		g.maxPreAuth = defaultMaxPreAuth
	}
	g.srv = &ssh.Server{
		Version:          "rtemu",
		HostSigners:      []ssh.Signer{signer},
		PublicKeyHandler: g.authorizeKey,
		PasswordHandler:  g.authorizePassword,
		ConnCallback:     g.startLoginTimer,
		// Only what this file lists: no reverse forwarding (-R), no agent,
		// no X11. Unknown channel types are refused by gliderlabs.
		ChannelHandlers: map[string]ssh.ChannelHandler{
			"session":      g.track(g.handleSession),
			"direct-tcpip": g.track(g.handleDirectTCPIP),
		},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		ServerConfigCallback: func(ssh.Context) *gossh.ServerConfig {
			return &gossh.ServerConfig{Config: gossh.Config{Ciphers: serverCiphers}}
		},
	}
	return g, nil
}

// Serve accepts connections on ln until Close, after which it returns nil.
func (g *Gateway) Serve(ln net.Listener) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return nil
	}
	g.addr = ln.Addr().String()
	g.mu.Unlock()
	var served net.Listener = quickAckListener{ln}
	if g.conns != nil {
		served = g.conns.Listener(served) // outside quickAck, which wants the *net.TCPConn
	}
	err := g.srv.Serve(served)
	g.mu.Lock()
	g.addr = ""
	g.mu.Unlock()
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Addr is the address the gateway serves on, "" while it does not.
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addr
}

// Close stops accepting, drops every connection (their commands are ended
// as on a hang-up) and waits for the handlers, so none of them uses the
// service after Close returns.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	g.addr = ""
	g.mu.Unlock()
	err := g.srv.Close()
	g.handlers.Wait()
	if errors.Is(err, ssh.ErrServerClosed) {
		err = nil
	}
	return err
}

// track counts a channel handler in g.handlers, refusing new channels once
// Close has begun (a WaitGroup must not grow while it is waited on).
func (g *Gateway) track(h ssh.ChannelHandler) ssh.ChannelHandler {
	return func(srv *ssh.Server, conn *gossh.ServerConn, ch gossh.NewChannel, ctx ssh.Context) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			_ = ch.Reject(gossh.ResourceShortage, "rtemu is shutting down")
			return
		}
		g.handlers.Add(1)
		g.mu.Unlock()
		defer g.handlers.Done()
		h(srv, conn, ch, ctx)
	}
}

// connState is what one connection's authentication found.
type connState struct {
	mu sync.Mutex
	// sandboxes maps each username that passed an auth check to the
	// sandbox id it named; channels look up conn.User(), the username the
	// connection ended up authenticated as. gliderlabs' ctx.User() keeps
	// the username of the first attempt even if a client changes it
	// between attempts, so a check that passed for another username than
	// the final one grants nothing. A sandbox renamed after login still
	// means the one it meant at login.
	sandboxes map[string]string
	preAuth   *preAuthConn
}

// preAuthConn holds one of the gateway's pre-auth places until the
// connection logs in or closes.
type preAuthConn struct {
	net.Conn
	g    *Gateway
	once sync.Once
}

func (c *preAuthConn) release() { c.once.Do(func() { c.g.preAuth.Add(-1) }) }

// loggedIn gives the place back; from now on the connection is in use, and
// the connection budget never closes it for room (the hold ends with the
// connection).
func (c *preAuthConn) loggedIn() {
	c.release()
	netguard.Hold(c.Conn)
}

func (c *preAuthConn) Close() error {
	c.release()
	return c.Conn.Close()
}

type connStateKey struct{}

func (g *Gateway) startLoginTimer(ctx ssh.Context, conn net.Conn) net.Conn {
	if g.preAuth.Add(1) > g.maxPreAuth {
		g.preAuth.Add(-1)
		return nil // gliderlabs closes it
	}
	pa := &preAuthConn{Conn: conn, g: g}
	ctx.SetValue(connStateKey{}, &connState{sandboxes: map[string]string{}, preAuth: pa})
	time.AfterFunc(g.loginGrace, func() {
		// gliderlabs sets ContextKeyConn once the handshake, authentication
		// included, has succeeded.
		if ctx.Value(ssh.ContextKeyConn) == nil {
			conn.Close()
		}
	})
	return pa
}

func stateOf(ctx ssh.Context) *connState {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	return st
}

func (g *Gateway) authorized(ctx ssh.Context, sb *sandbox.Sandbox, err error, method string) bool {
	if err != nil {
		if !errors.Is(err, sandbox.ErrSSHDenied) {
			g.log.Warn("ssh auth check failed", "user", ctx.User(), "method", method, "err", err)
		}
		// The client sees the same refusal whatever the reason.
		return false
	}
	if st := stateOf(ctx); st != nil {
		st.mu.Lock()
		st.sandboxes[ctx.User()] = sb.ID
		st.mu.Unlock()
		st.preAuth.loggedIn()
	}
	return true
}

func (g *Gateway) authorizeKey(ctx ssh.Context, key ssh.PublicKey) bool {
	sb, err := g.svc.AuthorizeSSHKey(ctx, ctx.User(), key)
	return g.authorized(ctx, sb, err, "publickey")
}

// authorizePassword checks a password unless guessing has locked the
// sandbox or the source out (throttle.go); every refusal, locked or wrong,
// is the same to the client.
func (g *Gateway) authorizePassword(ctx ssh.Context, password string) bool {
	user, src := ctx.User(), ctx.RemoteAddr()
	if locked, wait := g.throttle.locked(user, src); locked {
		g.log.Debug("ssh password refused: too many failures", "user", user, "source", sourceOf(src))
		g.throttle.p.Sleep(ctx, wait)
		return false
	}
	sb, err := g.svc.AuthorizeSSHPassword(ctx, user, password)
	if !g.authorized(ctx, sb, err, "password") {
		g.throttle.p.Sleep(ctx, g.throttle.failed(user, src))
		return false
	}
	g.throttle.succeeded(user, src)
	return true
}

// sandboxOf is the sandbox id the connection logged in to.
func sandboxOf(ctx ssh.Context, conn *gossh.ServerConn) (string, bool) {
	st := stateOf(ctx)
	if st == nil {
		return "", false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	id, ok := st.sandboxes[conn.User()]
	return id, ok
}

// detach gives work that must outlive a closed connection (recording how a
// session ended) a context that keeps the connection's values.
func detach(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// serverCiphers are the ciphers the gateway offers: x/crypto's, without
// chacha20-poly1305. A client takes the first of its own list that the
// server offers, and OpenSSH lists chacha20-poly1305 first, which x/crypto
// computes in plain Go (no assembly on amd64): through `ssh -L` the
// gateway moved 0.63-0.84 of OpenSSH sshd's rate with it (chacha20 was a
// quarter of the gateway's CPU), and 0.78-1.09 without it (OpenSSH then
// takes aes128-ctr with hmac-sha2-256-etm, both in assembly; see
// BENCHMARKS.md, download_ssh_forward_vs_sshd). Every SSH client in use
// has AES-CTR; GCM comes first for clients that prefer it.
//
// The MACs are x/crypto's defaults. OpenSSH's client takes the first of
// its own list the server has: umac-64-etm, which x/crypto lacks, then
// hmac-sha2-256-etm. Offering hmac-sha2-512-etm alone would not be
// cheaper where the CPU has SHA instructions (Go's SHA-256 uses them, its
// SHA-512 cannot: HMAC-SHA-512 ran at 0.4x of HMAC-SHA-256 on the bench's
// machine); the MAC is a fifth to a quarter of the gateway's CPU time in a
// download through ssh -L.
var serverCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM, gossh.CipherAES128CTR, gossh.CipherAES192CTR, gossh.CipherAES256CTR}
