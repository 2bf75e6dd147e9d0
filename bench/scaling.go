package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

// point is one level of parallelism of a scaling series.
type point struct {
	Parallel int     `json:"parallel"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Rate     float64 `json:"rate_per_s"`
}

// scalingData is what -plot draws besides churn.
type scalingData struct {
	ExecRtemu, ExecRaw     []point
	CreateRtemu, CreateRaw []point
}

var execLevels, createLevels = []int{1, 2, 4, 8, 16}, []int{1, 2, 4, 8}

// scaling: latency against parallelism of exec (`true`, clients spread
// over 4 sandboxes) and of cold creates (create to running), rtemu and the
// raw API alike. Its rows are information (the points of the charts).
func (b *bench) scaling(ctx context.Context) ([]result, error) {
	const boxes = 4
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
		if err := a.exec(ctx, ids[i], "true"); err != nil {
			return nil, err
		}
	}
	per := b.s.loadFor / 4
	var rows []result
	d := &scalingData{}
	for _, p := range execLevels {
		rt := closedLoop(ctx, p, per, func(w int) error { return a.exec(ctx, ids[w%boxes], "true") })
		raw := closedLoop(ctx, p, per, func(w int) error { return b.raw.exec(ctx, cids[w%boxes], "true") })
		if rt.errs+raw.errs > 0 {
			return rows, fmt.Errorf("exec at parallelism %d: %v %v", p, rt.firstEr, raw.firstEr)
		}
		d.ExecRtemu = append(d.ExecRtemu, pointOf(p, rt))
		d.ExecRaw = append(d.ExecRaw, pointOf(p, raw))
		r := throughput(fmt.Sprintf("scale_exec_p%d", p), rt, raw, "raw API exec", 0, "exec/s")
		r.Info, r.Target = true, "—"
		rows = append(rows, r)
	}
	waves := 3
	if b.s.short {
		waves = 1
	}
	body := map[string]any{"template": "base-ubuntu"}
	// Three sides: rtemu, the raw API on the engine's default bridge, and
	// the raw API on rtemu's own network (what rtemu's creates pay for:
	// its bridge's rules make a create slower than on the default one).
	sides := []struct {
		create func() (string, error)
		remove func(string) error
	}{
		{func() (string, error) { return a.createRunning(ctx, body) }, func(id string) error { return a.remove(ctx, id) }},
		{func() (string, error) { return b.raw.createStart(ctx, b.defaultNanoCPUs()) }, func(c string) error { return b.raw.remove(ctx, c) }},
		{func() (string, error) { return b.raw.createStartOn(ctx, b.defaultNanoCPUs(), docker.NetworkIsolated) },
			func(c string) error { return b.raw.remove(ctx, c) }},
	}
	for _, p := range createLevels {
		res := make([]loadResult, len(sides))
		for range waves {
			for i, side := range sides {
				if err := createWave(p, side.create, side.remove, &res[i]); err != nil {
					return rows, err
				}
			}
		}
		rt, raw, same := &res[0], &res[1], &res[2]
		d.CreateRtemu = append(d.CreateRtemu, pointOf(p, rt))
		d.CreateRaw = append(d.CreateRaw, pointOf(p, raw))
		r := throughput(fmt.Sprintf("scale_create_p%d", p), rt, raw, "raw API create+start", 0, "creates/s")
		r.Info, r.Target = true, "—"
		rows = append(rows, r)
		r = throughput(fmt.Sprintf("scale_create_p%d_same_network", p), rt, same, "raw API create+start on rtemu's network", 0.95, "creates/s")
		if p != 4 && p != 8 {
			r.Info, r.Target, r.Met = true, "—", true
		}
		rows = append(rows, r)
	}
	b.scalingData = d
	return rows, nil
}

// createWave makes p at once with create (each to running) and, once all
// have ended, removes what was made; it adds the latencies and the wave's
// time to into.
func createWave(p int, create func() (string, error), remove func(string) error, into *loadResult) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var made []string
	var firstErr error
	t0 := time.Now()
	for range p {
		wg.Go(func() {
			t := time.Now()
			id, err := create()
			mu.Lock()
			defer mu.Unlock()
			if id != "" {
				made = append(made, id)
			}
			if err != nil {
				firstErr = err
				return
			}
			into.lat = append(into.lat, time.Since(t))
		})
	}
	wg.Wait()
	into.elapsed += time.Since(t0)
	for _, id := range made {
		_ = remove(id)
	}
	return firstErr
}

func pointOf(p int, l *loadResult) point {
	return point{Parallel: p, P50: ms(percentile(l.lat, 50)), P99: ms(percentile(l.lat, 99)), Rate: l.rate()}
}
