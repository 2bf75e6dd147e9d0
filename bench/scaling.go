package main

import (
	"context"
	"fmt"
	"sync"
	"time"
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
	for _, p := range createLevels {
		var rt, raw loadResult
		for range waves {
			var mu sync.Mutex
			var wg sync.WaitGroup
			var made []string
			var firstErr error
			t0 := time.Now()
			for range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.Now()
					id, err := a.createRunning(ctx, body)
					mu.Lock()
					defer mu.Unlock()
					if id != "" {
						made = append(made, id)
					}
					if err != nil {
						firstErr = err
						return
					}
					rt.lat = append(rt.lat, time.Since(t))
				}()
			}
			wg.Wait()
			rt.elapsed += time.Since(t0)
			for _, id := range made {
				_ = a.remove(ctx, id)
			}
			if firstErr != nil {
				return rows, firstErr
			}
			t0 = time.Now()
			var cs []string
			for range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.Now()
					cid, err := b.raw.createStart(ctx, b.defaultNanoCPUs())
					mu.Lock()
					defer mu.Unlock()
					if cid != "" {
						cs = append(cs, cid)
					}
					if err != nil {
						firstErr = err
						return
					}
					raw.lat = append(raw.lat, time.Since(t))
				}()
			}
			wg.Wait()
			raw.elapsed += time.Since(t0)
			for _, c := range cs {
				_ = b.raw.remove(ctx, c)
			}
			if firstErr != nil {
				return rows, firstErr
			}
		}
		d.CreateRtemu = append(d.CreateRtemu, pointOf(p, &rt))
		d.CreateRaw = append(d.CreateRaw, pointOf(p, &raw))
		r := throughput(fmt.Sprintf("scale_create_p%d", p), &rt, &raw, "raw API create+start", 0, "creates/s")
		r.Info, r.Target = true, "—"
		rows = append(rows, r)
	}
	b.scalingData = d
	return rows, nil
}

func pointOf(p int, l *loadResult) point {
	return point{Parallel: p, P50: ms(percentile(l.lat, 50)), P99: ms(percentile(l.lat, 99)), Rate: l.rate()}
}
