package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	gossh "golang.org/x/crypto/ssh"
)

// The route into a sandbox's ports (dev URLs, ssh -L) goes through the
// exec agent inside the sandbox, never to the container's address. These
// rows set it against a direct connection to that address (which this
// Linux host can route to; Docker Desktop's cannot).

// portServers: busybox httpd on 8080 with a small page and a large file,
// and a WebSocket-style echo (101, then cat) on 8090.
const portServers = `mkdir -p /www /srv && echo hi > /www/index.html && head -c %d /dev/zero > /www/big &&
cat > /srv/ws.sh <<'EOF'
#!/bin/sh
while IFS= read -r line; do [ "$(printf '%%s' "$line" | tr -d '\r')" = "" ] && break; done
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
exec cat
EOF
chmod +x /srv/ws.sh && httpd -p 8080 -h /www && (nc -ll -p 8090 -e /srv/ws.sh </dev/null >/dev/null 2>&1 &)`

func (b *bench) ports(ctx context.Context) ([]result, error) {
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	var created struct{ ID string }
	if _, err := a.call(ctx, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "rootPassword": "bench-pw"}, &created); err != nil {
		return nil, err
	}
	id := created.ID
	if err := a.waitStatus(ctx, id, "running"); err != nil {
		return nil, err
	}
	size := 256 << 20
	if b.s.short {
		size = 16 << 20
	}
	if err := a.exec(ctx, id, fmt.Sprintf(portServers, size)); err != nil {
		return nil, err
	}
	ins, err := b.raw.cli.ContainerInspect(ctx, "rtemu-"+id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	var ip string
	for _, n := range ins.Container.NetworkSettings.Networks {
		if n.IPAddress.IsValid() {
			ip = n.IPAddress.String()
		}
	}
	var u struct{ URL string }
	if _, err := a.call(ctx, "GET", "/v1/sandboxes/"+id+"/url?port=8080", nil, &u); err != nil {
		return nil, err
	}
	var wsURL struct{ URL string }
	if _, err := a.call(ctx, "GET", "/v1/sandboxes/"+id+"/url?port=8090", nil, &wsURL); err != nil {
		return nil, err
	}
	direct := "http://" + net.JoinHostPort(ip, "8080")
	// A connection a request, on both sides: the proxy opens one to the
	// sandbox for each request, and busybox httpd closes after each.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

	// devurl_request: a small GET through the dev URL against one to the
	// container's address.
	var rt, base []time.Duration
	n := 10 * b.s.iters
	for i := 0; i <= n && ctx.Err() == nil; i++ {
		d1, err := fetch(ctx, hc, u.URL+"/index.html")
		if err != nil {
			return nil, fmt.Errorf("dev URL: %w", err)
		}
		d2, err := fetch(ctx, hc, direct+"/index.html")
		if err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
		if i > 0 {
			rt, base = append(rt, d1), append(base, d2)
		}
	}
	req := compare("devurl_request", rt, base, "GET to the container's address", math.Inf(1))
	req.Met = req.RtemuP50 <= 1.5**req.BaselineP50+1
	req.Target = "≤ 1.5× direct + 1 ms"

	// Throughput of a large download, through the dev URL, through ssh -L
	// (x/crypto, a direct-tcpip channel), and direct.
	mb := float64(size) / (1 << 20)
	throughput := func(get func() (time.Duration, error)) (float64, error) {
		best := time.Duration(math.MaxInt64)
		for range 2 {
			d, err := get()
			if err != nil {
				return 0, err
			}
			best = min(best, d)
		}
		return math.Round(mb/best.Seconds()*10) / 10, nil
	}
	directMBs, err := throughput(func() (time.Duration, error) { return fetch(ctx, hc, direct+"/big") })
	if err != nil {
		return nil, err
	}
	devMBs, err := throughput(func() (time.Duration, error) { return fetch(ctx, hc, u.URL+"/big") })
	if err != nil {
		return nil, err
	}
	sshc, err := gossh.Dial("tcp", srv.SSHAddr, &gossh.ClientConfig{User: id, Auth: []gossh.AuthMethod{gossh.Password("bench-pw")},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	defer sshc.Close()
	viaSSH := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) { return sshc.Dial("tcp", "localhost:8080") }}}
	sshMBs, err := throughput(func() (time.Duration, error) { return fetch(ctx, viaSSH, "http://sandbox/big") })
	if err != nil {
		return nil, err
	}
	// ssh -L itself: OpenSSH's client, as a user runs it, in a process of
	// its own (password by sshpass).
	// Beside it, the same client through OpenSSH's own sshd to the
	// container's address: the transfers take turns, the best of three
	// each.
	var openSSHMBs, sshdMBs float64
	var openSSHNote, sshdNote, cpuNote string
	if fwd, err := openSSHForward(ctx, srv.SSHAddr, id, "bench-pw", 8080); err != nil {
		openSSHNote = "not measured: " + err.Error()
	} else {
		defer fwd.stop()
		var viaSSHD func() (time.Duration, error)
		var sfwd *forward
		if sfwd, err = sshdForward(ctx, net.JoinHostPort(ip, "8080")); err != nil {
			sshdNote = "sshd not measured: " + err.Error()
		} else {
			defer sfwd.stop()
			viaSSHD = func() (time.Duration, error) { return fetch(ctx, hc, "http://"+sfwd.addr+"/big") }
		}
		// The CPU time of each transfer, every process it goes through:
		// see cpu.go.
		box := ins.Container.State.Pid
		rtMeter := cpuMeter{client: fwd.client, container: box}
		var sshdMeter cpuMeter
		if sfwd != nil {
			sshdMeter = cpuMeter{client: sfwd.client, server: sfwd.server, container: box}
		}
		var rtCPU, sshdCPU cpuSample
		best, bestSSHD := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
		const turns = 3
		for range turns {
			before := rtMeter.read()
			d, err := fetch(ctx, hc, "http://"+fwd.addr+"/big")
			if err != nil {
				return nil, err
			}
			rtCPU = rtCPU.add(rtMeter.read().sub(before))
			best = min(best, d)
			if viaSSHD != nil {
				before := sshdMeter.read()
				if d, err = viaSSHD(); err != nil {
					return nil, fmt.Errorf("through sshd: %w", err)
				}
				sshdCPU = sshdCPU.add(sshdMeter.read().sub(before))
				bestSSHD = min(bestSSHD, d)
			}
		}
		openSSHMBs = math.Round(mb/best.Seconds()*10) / 10
		if viaSSHD != nil {
			sshdMBs = math.Round(mb/bestSSHD.Seconds()*10) / 10
			// The bench's own HTTP client reads both downloads in this
			// process: sshd's side's "self" is that client alone, so
			// rtemu's gateway is rtemu's "self" less it.
			per := func(d time.Duration) float64 { return math.Round(perGiB(d, turns, mb)) }
			cpuNote = fmt.Sprintf("CPU ms a GiB: through rtemu %.0f (this process %.0f, ssh %.0f, container %.0f), "+
				"through sshd %.0f (this process %.0f, ssh %.0f, sshd %.0f, container %.0f); servers alone: rtemu's gateway and agent %.0f, sshd %.0f",
				per(rtCPU.total()), per(rtCPU.self), per(rtCPU.client), per(rtCPU.container),
				per(sshdCPU.total()), per(sshdCPU.self), per(sshdCPU.client), per(sshdCPU.server), per(sshdCPU.container),
				per(rtCPU.self-sshdCPU.self+rtCPU.container-sshdCPU.container), per(sshdCPU.server))
		}
	}
	rows := []result{req}
	for _, r := range []struct {
		metric, note string
		v            float64
	}{
		{"download_devurl", "", devMBs},
		{"download_ssh_forward", "OpenSSH ssh -L " + openSSHNote, openSSHMBs},
		{"download_ssh_forward_xcrypto", "x/crypto/ssh client in this process, a direct-tcpip channel", sshMBs},
	} {
		ratio := math.Round(r.v/directMBs*100) / 100
		rows = append(rows, result{Metric: r.metric, Value: ptr(r.v), Unit: "MB/s", Ratio: ptr(ratio), N: 2,
			BaselineP50: nil, Baseline: fmt.Sprintf("direct %.1f MB/s (%.0f MiB)", directMBs, mb), Target: "≥ 50% of direct", Met: ratio >= 0.5,
			Note: strings.TrimSpace(r.note)})
	}

	vs := result{Metric: "download_ssh_forward_vs_sshd", Value: ptr(openSSHMBs), Unit: "MB/s", N: 3,
		Baseline: fmt.Sprintf("OpenSSH sshd %.1f MB/s (the same ssh -L to the container's address)", sshdMBs),
		Target:   "≥ 1.0× sshd", Note: strings.TrimSpace(openSSHNote + " " + sshdNote + " " + cpuNote)}
	if sshdMBs > 0 {
		ratio := math.Round(openSSHMBs/sshdMBs*100) / 100
		vs.Ratio, vs.Met = ptr(ratio), ratio >= 1
	}
	rows = append(rows, vs)

	// websockets_64: 64 WebSockets through the dev URL, open at once, each
	// echoing before and after a hold. They are opened one after another:
	// the echo server (busybox nc -ll) listens with a backlog of 2, so 64
	// connects in the same instant overflow its accept queue (the kernel
	// drops the handshakes it cannot queue, and some stall past the
	// deadline) whatever is in front of it. Every one is open before any
	// is held.
	hold := 10 * time.Second
	if b.s.short {
		hold = time.Second
	}
	const nWS = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	ok := 0
	g := &wsGroup{turn: make(chan struct{}, 1), allOpen: make(chan struct{})}
	g.opening.Add(nWS)
	go func() { g.opening.Wait(); close(g.allOpen) }()
	for i := range nWS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := holdWebSocket(ctx, strings.TrimPrefix(wsURL.URL, "http://"), i, hold, g)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
			} else {
				ok++
			}
		}()
	}
	wg.Wait()
	ws := result{Metric: "websockets_64", Value: ptr(float64(ok)), Unit: "open", N: nWS, Target: "64 open, 0 errors", Met: ok == nWS,
		Note: fmt.Sprintf("held %v", hold)}
	if len(errs) > 0 {
		ws.Note += "; first error: " + errs[0]
	}
	return append(rows, ws), nil
}

// openSSHForward runs `ssh -N -L` (OpenSSH, the password given by sshpass)
// to rtemu's gateway at sshAddr as user, forwarding a local port to port
// in the sandbox; it returns the local address and a stop.
func openSSHForward(ctx context.Context, sshAddr, user, password string, port int) (*forward, error) {
	if _, err := exec.LookPath("sshpass"); err != nil {
		return nil, fmt.Errorf("no sshpass on this machine")
	}
	return sshForward(ctx, sshAddr, user, fmt.Sprintf("localhost:%d", port), []string{"SSHPASS=" + password},
		"sshpass", "-e", "ssh", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no")
}

// forward is a running `ssh -N -L`: its local address, the pids of the
// client (or the wrapper that started it) and of the server's daemon
// where the bench started one (sshd), and a stop.
type forward struct {
	addr           string
	client, server int
	stop           func()
}

// sshForward runs `ssh -N -L local:target user@sshAddr` by argv (ssh and
// its auth options, maybe behind a wrapper) and waits until the local port
// answers.
func sshForward(ctx context.Context, sshAddr, user, target string, env []string, argv ...string) (*forward, error) {
	if _, err := exec.LookPath("ssh"); err != nil {
		return nil, fmt.Errorf("no ssh on this machine")
	}
	host, sshPort, err := net.SplitHostPort(sshAddr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	local := ln.Addr().String()
	ln.Close()
	args := append(argv[1:], "-N", "-p", sshPort,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "ExitOnForwardFailure=yes", "-L", local+":"+target, user+"@"+host)
	cmd := exec.CommandContext(ctx, argv[0], args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() { _ = cmd.Process.Kill(); <-exited }
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", local); err == nil {
			c.Close()
			return &forward{addr: local, client: cmd.Process.Pid, stop: stop}, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("ssh -L ended: %s", strings.TrimSpace(stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("ssh -L did not listen within 20s: %s", strings.TrimSpace(stderr.String()))
		}
	}
}

// fetch GETs url and reads the whole body.
func fetch(ctx context.Context, hc *http.Client, url string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	t := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return time.Since(t), nil
}

// wsGroup paces the opening of websockets_64: one handshake at a time
// (turn), and every socket open (opening, then allOpen) before any is held.
type wsGroup struct {
	turn    chan struct{}
	opening sync.WaitGroup
	allOpen chan struct{}
}

// holdWebSocket upgrades a connection to addr in its turn, echoes a line,
// waits until every socket of the group is open, holds it open, and echoes
// another.
func holdWebSocket(ctx context.Context, addr string, i int, hold time.Duration, g *wsGroup) error {
	opened := false
	defer func() {
		if !opened {
			g.opening.Done()
		}
	}()
	g.turn <- struct{}{}
	released := false
	release := func() {
		if !released {
			released = true
			<-g.turn
		}
	}
	defer release()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hold + time.Minute))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("upgrade: %d", resp.StatusCode)
	}
	for round := range 2 {
		if round == 1 {
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		msg := fmt.Sprintf("ws %d round %d\n", i, round)
		if _, err := io.WriteString(conn, msg); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil || line != msg {
			return fmt.Errorf("echo %q: %v", line, err)
		}
		if round == 0 {
			release()
			opened = true
			g.opening.Done()
			select {
			case <-g.allOpen:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
