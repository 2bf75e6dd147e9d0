package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// proc is rtemu run as its own process (built from this module), so its
// memory and start-up are its own.
type proc struct {
	bin, dataDir, addr, img string
	agent                   string // --exec-agent
	cmd                     *exec.Cmd
}

func (p *proc) start(ctx context.Context) (time.Duration, error) {
	t := time.Now()
	p.cmd = exec.Command(p.bin, "serve", "--addr", p.addr, "--ssh-addr", "127.0.0.1:0", "--data-dir", p.dataDir,
		"--template", "base-ubuntu="+p.img, "--auth", "off", "--exec-agent", p.agent)
	p.cmd.Stdout, p.cmd.Stderr = nil, nil
	if err := p.cmd.Start(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get("http://" + p.addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("rtemu did not answer /health")
}

// stop ends the process with SIGTERM; containers stay (not ephemeral).
func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// startProc builds rtemu and starts it as its own process on a data dir of
// its own; stop ends it and removes its containers and files.
func (b *bench) startProc(ctx context.Context) (p *proc, a *api, stop func(), err error) {
	dir := tempDir()
	bin := filepath.Join(dir, "rtemu")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/rtemu-dev/rtemu")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("go build: %v: %s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	p = &proc{bin: bin, dataDir: filepath.Join(dir, "data"), addr: addr, img: b.img, agent: "on"}
	if b.s.agentStreams {
		p.agent = "streams"
	}
	stop = func() {
		p.stop()
		b.removeInstance(context.WithoutCancel(ctx), p.dataDir)
		os.RemoveAll(dir)
	}
	if _, err := p.start(ctx); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return p, newAPI("http://"+addr, "rt_test_0123456789abcdefghijklmnopqrstuv"), stop, nil
}

// rssMB reads the process's resident memory from /proc.
func (p *proc) rssMB() (float64, error) {
	kb, err := p.memKB("VmRSS:")
	return float64(kb) / 1024, err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// fleetMetrics: rss_200 (resident memory of rtemu with the fleet running,
// after creating it `parallel` at a time with no error) and startup_200
// (rtemu start until /health is 200, with the fleet to reconcile).
func (b *bench) fleetMetrics(ctx context.Context) (rows []result, err error) {
	p, a, stop, err := b.startProc(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()

	// The fleet, `parallel` creates at a time; every create must succeed.
	// At ref sandboxes, the reference case: RSS, GET and list latency.
	var (
		mu     sync.Mutex
		errs   []error
		first  []time.Duration // the first full wave's create-to-running
		refRSS float64
		refLat fleetLatency
	)
	for made := 0; made < b.s.fleet && ctx.Err() == nil; {
		wave := min(b.s.parallel, b.s.fleet-made)
		if made < b.s.ref {
			wave = min(wave, b.s.ref-made)
		}
		var wg sync.WaitGroup
		var waveLat []time.Duration
		for i := 0; i < wave; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.Now()
				_, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				waveLat = append(waveLat, time.Since(t))
			}()
		}
		wg.Wait()
		if first == nil && wave == b.s.parallel {
			first = waveLat
		}
		made += wave
		b.log.Info("fleet", "running", made)
		if made == b.s.ref {
			time.Sleep(2 * time.Second)
			if refRSS, err = p.rssMB(); err != nil {
				return nil, err
			}
			if refLat, err = b.fleetLatency(ctx, a); err != nil {
				return nil, err
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	time.Sleep(2 * time.Second) // let the creates' garbage be collected, as a steady state
	rss, err := p.rssMB()
	if err != nil {
		return nil, err
	}
	lat, err := b.fleetLatency(ctx, a)
	if err != nil {
		return nil, err
	}
	n := b.s.fleet
	r := result{Metric: fmt.Sprintf("rss_%d", n), RtemuP50: ms(percentile(first, 50)), RtemuP95: ms(percentile(first, 95)), N: len(first),
		Value: ptr(float64(int(rss*10)) / 10), Unit: "MB", Target: "≤ 100 MB, 0 errors",
		Met:  rss <= 100 && len(errs) == 0,
		Note: fmt.Sprintf("p50/p95: create_to_running of %d parallel creates; %d errors; %.1f MB with %d", b.s.parallel, len(errs), refRSS, b.s.ref)}
	if len(errs) > 0 {
		r.Note += fmt.Sprintf(" (first: %v)", errs[0])
	}
	per := (rss - refRSS) * (1 << 20) / float64(n-b.s.ref)
	rows = append(rows, r,
		result{Metric: "fleet_rss_per_sandbox", Value: ptr(float64(int(per))), Unit: "bytes", Info: true, Target: "—",
			Note: fmt.Sprintf("(RSS with %d − RSS with %d) / %d", n, b.s.ref, n-b.s.ref)},
		fleetCompare(fmt.Sprintf("fleet_get_%d", n), lat.get, refLat.get, fmt.Sprintf("GET with %d sandboxes", b.s.ref)),
		fleetCompare(fmt.Sprintf("fleet_list20_%d", n), lat.list20, refLat.list20, fmt.Sprintf("list ?limit=20 with %d sandboxes", b.s.ref)),
	)
	full := fleetCompare(fmt.Sprintf("fleet_list_%d", n), lat.list, refLat.list, fmt.Sprintf("list (first page, all %d) with %d sandboxes", b.s.ref, b.s.ref))
	full.Info, full.Target = true, "— (a page of 500 against one of 20)"
	rows = append(rows, full)

	// Start-up with the fleet to reconcile.
	var ups []time.Duration
	for i := 0; i < b.s.startups && ctx.Err() == nil; i++ {
		p.stop()
		d, err := p.start(ctx)
		if err != nil {
			return rows, err
		}
		ups = append(ups, d)
	}
	var page []sandboxJSON
	if _, err := a.call(ctx, "GET", "/v1/sandboxes?status=running", nil, &page); err != nil {
		return rows, err
	}
	s := result{Metric: fmt.Sprintf("startup_%d", b.s.fleet), RtemuP50: ms(percentile(ups, 50)), RtemuP95: ms(percentile(ups, 95)), N: len(ups),
		Target: "≤ 2000 ms", Note: fmt.Sprintf("%d sandboxes running after restart", len(page))}
	s.Met = percentile(ups, 95) <= 2*time.Second && len(page) == min(b.s.fleet, sandbox.MaxListLimit)
	return append(rows, s), nil
}

// removeInstance removes every container of the rtemu whose state is in
// dataDir (the process is stopped; its instance id is in the database).
func (b *bench) removeInstance(ctx context.Context, dataDir string) {
	st, err := store.Open(ctx, filepath.Join(dataDir, "rtemu.db"))
	if err != nil {
		return
	}
	inst := st.InstanceID()
	st.Close()
	cs, err := b.raw.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", sandbox.LabelInstance+"="+inst)})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range cs.Items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _ = b.raw.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}()
	}
	wg.Wait()
}

// fleetLatency is GET and list latency with the fleet as it is.
type fleetLatency struct{ get, list20, list []time.Duration }

func (b *bench) fleetLatency(ctx context.Context, a *api) (fleetLatency, error) {
	var page []sandboxJSON
	if _, err := a.call(ctx, "GET", "/v1/sandboxes?limit=1", nil, &page); err != nil || len(page) == 0 {
		return fleetLatency{}, fmt.Errorf("fleet: no sandbox to GET (%v)", err)
	}
	var l fleetLatency
	var err error
	for _, m := range []struct {
		out  *[]time.Duration
		path string
		n    int
	}{{&l.get, "/v1/sandboxes/" + page[0].ID, 400}, {&l.list20, "/v1/sandboxes?limit=20", 200}, {&l.list, "/v1/sandboxes", 50}} {
		if _, err := a.call(ctx, "GET", m.path, nil, nil); err != nil { // warm-up
			return l, err
		}
		if *m.out, err = timed(ctx, m.n, nil, func() error { _, err := a.call(ctx, "GET", m.path, nil, nil); return err }, nil); err != nil {
			return l, err
		}
	}
	return l, nil
}

// fleetCompare sets latency with the whole fleet against the reference
// case: within 20%.
func fleetCompare(metric string, at, ref []time.Duration, baseline string) result {
	r := compare(metric, at, ref, baseline, 1.2)
	return r
}
