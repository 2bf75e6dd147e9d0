package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// createThenExec: POST /v1/sandboxes and an exec of `echo hi` until its
// answer (the exec waits for the sandbox to be running), cold and from the
// warm pool, against raw create + start + exec of the same container.
func (b *bench) createThenExec(ctx context.Context) ([]result, error) {
	body := map[string]any{"template": "base-ubuntu"}
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	var cold, base, sameNet []time.Duration
	for i := 0; i < b.s.iters && ctx.Err() == nil; i++ {
		var id string
		d, err := timed(ctx, 1, nil, func() (err error) {
			if id, err = a.create(ctx, body); err != nil {
				return err
			}
			return a.execOut(ctx, id, "echo hi", "hi\n")
		}, func() error { return a.remove(ctx, id) })
		if err != nil {
			return nil, err
		}
		cold = append(cold, d...)
		if err := b.rawOnBothNetworks(ctx, &base, &sameNet, true); err != nil {
			return nil, err
		}
	}
	rows := []result{compare("create_then_exec", cold, base, "raw API create+start+exec", 1.1),
		sameNetwork(compare("create_then_exec_same_network", cold, sameNet, "raw API create+start+exec on rtemu's network", 1.1))}

	const poolSize = 2
	wsrv, wa, err := b.server(ctx, emulatortest.WithWarmPool("base-ubuntu", poolSize))
	if err != nil {
		return rows, err
	}
	defer wsrv.Close()
	var id string
	warm, err := timed(ctx, b.s.iters,
		func() error { return waitPool(ctx, wsrv.Service(), poolSize) },
		func() (err error) {
			if id, err = wa.create(ctx, body); err != nil {
				return err
			}
			return wa.execOut(ctx, id, "echo hi", "hi\n")
		},
		func() error { return wa.remove(ctx, id) })
	if err != nil {
		return rows, err
	}
	r := compare("create_then_exec_warm", warm, base, "raw API create+start+exec", 1e9)
	r.Target, r.Met = "p50 ≤ 15 ms", r.RtemuP50 <= 15
	r.Note = fmt.Sprintf("pool of %d, refilled between samples", poolSize)
	return append(rows, r), nil
}

// loadResult is what a closed-loop load of parallel workers measured.
type loadResult struct {
	lat     []time.Duration
	done    []time.Duration // when each operation ended, since the start
	errs    int
	firstEr error
	elapsed time.Duration
}

func (l *loadResult) rate() float64 { return float64(len(l.lat)) / l.elapsed.Seconds() }

// closedLoop runs workers that each call op until the duration is over
// (an operation under way is finished and counted).
func closedLoop(ctx context.Context, workers int, dur time.Duration, op func(worker int) error) *loadResult {
	var (
		mu  sync.Mutex
		out = &loadResult{}
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat, done []time.Duration
			errs := 0
			var first error
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				err := op(w)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t))
				done = append(done, time.Since(start))
			}
			mu.Lock()
			out.lat, out.done = append(out.lat, lat...), append(out.done, done...)
			out.errs += errs
			if out.firstEr == nil {
				out.firstEr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

// execParallel: 16 clients on 4 sandboxes, each exec'ing `true` in a loop,
// against 16 clients doing `docker exec` through the raw API on 4
// containers.
func (b *bench) execParallel(ctx context.Context) ([]result, error) {
	const clients, boxes = 16, 4
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ids, cids := make([]string, boxes), make([]string, boxes)
	for i := range boxes {
		if ids[i], cids[i], err = b.targets(ctx, a); err != nil {
			return nil, err
		}
		if err := a.exec(ctx, ids[i], "true"); err != nil { // the agent's start
			return nil, err
		}
	}
	rt := closedLoop(ctx, clients, b.s.loadFor, func(w int) error { return a.exec(ctx, ids[w%boxes], "true") })
	if rt.errs > 0 {
		return nil, fmt.Errorf("exec_parallel: %d errors (first: %v)", rt.errs, rt.firstEr)
	}
	raw := closedLoop(ctx, clients, b.s.loadFor, func(w int) error { return b.raw.exec(ctx, cids[w%boxes], "true") })
	if raw.errs > 0 {
		return nil, fmt.Errorf("exec_parallel baseline: %d errors (first: %v)", raw.errs, raw.firstEr)
	}
	r := throughput("exec_parallel", rt, raw, "raw API exec, same parallelism", 10, "exec/s")
	r.Note = fmt.Sprintf("%d clients on %d sandboxes for %v; %d vs %d execs", clients, boxes, b.s.loadFor, len(rt.lat), len(raw.lat))
	return []result{r}, nil
}

// throughput makes a row of rates: value is rtemu's rate, ratio is rtemu's
// rate over the baseline's (met when ≥ minRatio); latencies are per
// operation.
func throughput(metric string, rt, base *loadResult, baseline string, minRatio float64, unit string) result {
	r := result{Metric: metric, RtemuP50: ms(percentile(rt.lat, 50)), RtemuP95: ms(percentile(rt.lat, 95)),
		RtemuP99: ms(percentile(rt.lat, 99)), N: len(rt.lat), Baseline: baseline,
		Value: ptr(float64(int(rt.rate()*10)) / 10), Unit: unit, Target: fmt.Sprintf("rate ≥ %g× baseline", minRatio)}
	r.BaselineP50, r.BaselineP95 = ptr(ms(percentile(base.lat, 50))), ptr(ms(percentile(base.lat, 95)))
	r.BaselineValue = ptr(float64(int(base.rate()*10)) / 10)
	if br := base.rate(); br > 0 {
		r.Ratio = ptr(float64(int(rt.rate()/br*100)) / 100)
		r.Met = rt.rate()/br >= minRatio
	}
	return r
}

// churn: 8 workers each looping create → exec → delete, against the raw
// API doing create → start → exec → remove(force); afterwards no container
// of either may be left.
func (b *bench) churn(ctx context.Context) ([]result, error) {
	const workers = 8
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	body := map[string]any{"template": "base-ubuntu"}
	rawList := func() ([]container.Summary, error) {
		res, err := b.raw.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", benchLabel+"="+b.raw.run)})
		return res.Items, err
	}
	rawBefore, err := rawList()
	if err != nil {
		return nil, err
	}
	rt := closedLoop(ctx, workers, b.s.churnFor, func(int) error {
		id, err := a.create(ctx, body)
		if err != nil {
			return err
		}
		err = a.execOut(ctx, id, "echo hi", "hi\n")
		return errors.Join(err, a.remove(ctx, id))
	})
	rawLoop := func(network string) *loadResult {
		return closedLoop(ctx, workers, b.s.churnFor, func(int) error {
			cid, err := b.raw.createStartOn(ctx, b.defaultNanoCPUs(), network)
			if err == nil {
				err = b.raw.exec(ctx, cid, "echo", "hi")
			}
			if cid != "" {
				err = errors.Join(err, b.raw.remove(ctx, cid))
			}
			return err
		})
	}
	raw := rawLoop("")
	rawSameNet := rawLoop(docker.NetworkIsolated)
	b.churnSeries = [2]*loadResult{rt, raw}
	left, err := b.raw.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", sandbox.LabelInstance+"="+srv.Service().Instance())})
	if err != nil {
		return nil, err
	}
	rawLeft, err := rawList()
	if err != nil {
		return nil, err
	}
	r := throughput("churn", rt, raw, "raw API create+start+exec+remove(force)", 1.0, "cycles/s")
	r.Met = r.Met && rt.errs == 0 && len(left.Items) == 0
	r.Note = fmt.Sprintf("%d workers for %v; %d vs %d cycles; %d errors (baseline %d); containers left: %d (baseline %d)",
		workers, b.s.churnFor, len(rt.lat), len(raw.lat), rt.errs, raw.errs, len(left.Items), len(rawLeft)-len(rawBefore))
	if rt.firstEr != nil {
		r.Note += fmt.Sprintf("; first error: %v", rt.firstEr)
	}
	return []result{r, sameNetwork(throughput("churn_same_network", rt, rawSameNet, "raw API create+start+exec+remove(force) on rtemu's network", 1.0, "cycles/s"))}, nil
}

// loadMix (issue 15): clients mixing GET, list, exec and create+delete over
// a few sandboxes, then 30 concurrent execs in one sandbox.
func (b *bench) loadMix(ctx context.Context) ([]result, error) {
	clients, boxes, dur := 100, 10, 15*time.Second
	if b.s.short {
		clients, boxes, dur = 20, 4, 3*time.Second
	}
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ids := make([]string, boxes)
	for i := range boxes {
		if ids[i], err = a.createRunning(ctx, map[string]any{"template": "base-ubuntu"}); err != nil {
			return nil, err
		}
	}
	type kind int
	const (
		kGet kind = iota
		kList
		kExec
		kCreate
		kDelete
		kinds
	)
	names := [kinds]string{"get", "list", "exec", "create_to_running", "delete"}
	var (
		mu    sync.Mutex
		lat   [kinds][]time.Duration
		errs  atomic.Int64
		first error
		seq   atomic.Int64
	)
	note := func(k kind, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs.Add(1)
			if first == nil {
				first = fmt.Errorf("%s: %w", names[k], err)
			}
			return
		}
		lat[k] = append(lat[k], d)
	}
	ctrs := make([]string, len(ids))
	for i, id := range ids {
		ctrs[i] = "rtemu-" + id
	}
	watch, err := b.watchExecs(ctx, ctrs)
	if err != nil {
		return nil, err
	}
	defer watch.stop()
	// The mix, per 10 operations: 4 GET, 2 list, 3 exec, 1 create+delete.
	mix := []kind{kGet, kExec, kGet, kList, kExec, kGet, kCreate, kGet, kExec, kList}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Since(start) < dur && ctx.Err() == nil; i++ {
				id := ids[int(seq.Add(1))%boxes]
				t := time.Now()
				switch k := mix[i%len(mix)]; k {
				case kGet:
					_, err := a.call(ctx, "GET", "/v1/sandboxes/"+id, nil, nil)
					note(k, time.Since(t), err)
				case kList:
					_, err := a.call(ctx, "GET", "/v1/sandboxes", nil, nil)
					note(k, time.Since(t), err)
				case kExec:
					err := a.exec(ctx, id, "true")
					note(k, time.Since(t), err)
				case kCreate:
					nid, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
					note(k, time.Since(t), err)
					if nid == "" {
						continue
					}
					t = time.Now()
					err = a.remove(ctx, nid)
					note(kDelete, time.Since(t), err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	agents, err := watch.count(ctx)
	if err != nil {
		return nil, err
	}
	targets := [kinds]float64{200, 0, 1000, 0, 3000}
	var rows []result
	total := 0
	for k := kind(0); k < kinds; k++ {
		total += len(lat[k])
		r := result{Metric: "load_" + names[k], RtemuP50: ms(percentile(lat[k], 50)), RtemuP95: ms(percentile(lat[k], 95)),
			RtemuP99: ms(percentile(lat[k], 99)), N: len(lat[k]), Info: targets[k] == 0,
			Note: fmt.Sprintf("%d clients × %v over %d sandboxes", clients, dur, boxes)}
		if k == kExec {
			r.Note += fmt.Sprintf("; %d Docker execs made meanwhile (exec agents started)", agents)
		}
		if targets[k] > 0 {
			r.Target = fmt.Sprintf("p99 ≤ %.0f ms", targets[k])
			r.Met = r.RtemuP99 <= targets[k]
		}
		rows = append(rows, r)
	}
	e := result{Metric: "load_errors", N: total, Value: ptr(float64(errs.Load())), Unit: "errors", Target: "0 errors", Met: errs.Load() == 0,
		Note: fmt.Sprintf("%.0f operations/s", float64(total)/elapsed.Seconds())}
	if first != nil {
		e.Note += fmt.Sprintf("; first: %v", first)
	}
	rows = append(rows, e)

	// 30 concurrent execs in one sandbox, all done within a second.
	var walls []time.Duration
	for i := 0; i < max(3, b.s.iters/4) && ctx.Err() == nil; i++ {
		var wg sync.WaitGroup
		var failed atomic.Int64
		t := time.Now()
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a.exec(ctx, ids[0], "true") != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			return rows, fmt.Errorf("exec_30_one_sandbox: %d of 30 failed", failed.Load())
		}
		walls = append(walls, time.Since(t))
	}
	c := result{Metric: "exec_30_one_sandbox", RtemuP50: ms(percentile(walls, 50)), RtemuP95: ms(percentile(walls, 95)), N: len(walls),
		Target: "all done ≤ 1000 ms", Note: "wall time of 30 concurrent `true` in one sandbox (after the mix)"}
	c.Met = percentile(walls, 100) <= time.Second
	return append(rows, c), nil
}

// execWatch counts the Docker execs made in some containers while it
// watches (each one an exec agent started, or a command run without one).
// It follows the engine's live events (the engine keeps only its last 256
// for later queries, which a busy run overflows) and knows it has seen all
// up to a moment by making an exec of its own and waiting for its event.
type execWatch struct {
	cli    *client.Client
	marker string // the container the markers are made in
	cancel context.CancelFunc
	mu     sync.Mutex
	seen   map[string]bool
	n      int
}

func (b *bench) watchExecs(ctx context.Context, containers []string) (*execWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &execWatch{cli: b.raw.cli, marker: containers[0], cancel: cancel, seen: map[string]bool{}}
	f := make(client.Filters).Add("type", "container").Add("event", "exec_create")
	for _, c := range containers {
		f.Add("container", c)
	}
	msgs := b.raw.cli.Events(ctx, client.EventsListOptions{Filters: f}).Messages
	go func() {
		for m := range msgs {
			w.mu.Lock()
			w.seen[m.Actor.Attributes["execID"]] = true
			w.n++
			w.mu.Unlock()
		}
	}()
	if _, err := w.count(ctx); err != nil {
		cancel()
		return nil, err
	}
	return w, nil
}

// count returns the execs made since the last count, its markers not
// counted.
func (w *execWatch) count(ctx context.Context) (int, error) {
	ex, err := w.cli.ExecCreate(ctx, w.marker, client.ExecCreateOptions{Cmd: []string{"true"}})
	if err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		if w.seen[ex.ID] {
			n := w.n - 1
			w.n = 0
			w.mu.Unlock()
			return n, nil
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the engine's event of exec %s did not come", ex.ID)
		}
	}
}

func (w *execWatch) stop() { w.cancel() }
