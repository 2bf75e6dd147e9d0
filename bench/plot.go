package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plot writes the charts of what the run measured into dir: exec and
// create latency against parallelism (rtemu and the raw API) and the
// throughput of churn over its run. A chart whose step did not run is
// skipped.
func (b *bench) plot(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	if d := b.scalingData; d != nil {
		errs = append(errs,
			latencyChart(filepath.Join(dir, "exec_latency.png"), "exec of `true` (clients on 4 sandboxes)", "exec", d.ExecRtemu, d.ExecRaw),
			latencyChart(filepath.Join(dir, "create_latency.png"), "cold create to running", "create", d.CreateRtemu, d.CreateRaw))
	}
	if rt, raw := b.churnSeries[0], b.churnSeries[1]; rt != nil && raw != nil {
		errs = append(errs, churnChart(filepath.Join(dir, "churn.png"), rt, raw))
	}
	if b.scalingData == nil && b.churnSeries[0] == nil {
		fmt.Fprintln(os.Stderr, "bench: -plot: no charted step ran (scale_, churn)")
	}
	return errors.Join(errs...)
}

func xys(ps []point, y func(point) float64) plotter.XYs {
	out := make(plotter.XYs, len(ps))
	for i, p := range ps {
		out[i].X, out[i].Y = float64(p.Parallel), y(p)
	}
	return out
}

func latencyChart(file, title, what string, rt, raw []point) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "parallel clients"
	p.Y.Label.Text = "latency (ms, log)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	p50 := func(x point) float64 { return max(x.P50, 0.01) }
	p99 := func(x point) float64 { return max(x.P99, 0.01) }
	if err := plotutil.AddLinePoints(p,
		"rtemu p50", xys(rt, p50), "rtemu p99", xys(rt, p99),
		"raw API p50", xys(raw, p50), "raw API p99", xys(raw, p99)); err != nil {
		return fmt.Errorf("%s chart: %w", what, err)
	}
	return p.Save(6*vg.Inch, 4*vg.Inch, file)
}

// perSecond counts the operations ended in each second of a run.
func perSecond(l *loadResult) plotter.XYs {
	secs := int(l.elapsed/time.Second) + 1
	counts := make([]float64, secs)
	for _, d := range l.done {
		counts[int(d/time.Second)]++
	}
	out := make(plotter.XYs, 0, secs)
	for i, c := range counts {
		if time.Duration(i+1)*time.Second > l.elapsed {
			break // a partial last second
		}
		out = append(out, plotter.XY{X: float64(i + 1), Y: c})
	}
	return out
}

func churnChart(file string, rt, raw *loadResult) error {
	p := plot.New()
	p.Title.Text = "churn: create → exec → delete, 8 workers"
	p.X.Label.Text = "second of the run"
	p.Y.Label.Text = "cycles completed in that second"
	p.Legend.Top = true
	if err := plotutil.AddLinePoints(p,
		fmt.Sprintf("rtemu (%.1f/s)", rt.rate()), perSecond(rt),
		fmt.Sprintf("raw API (%.1f/s)", raw.rate()), perSecond(raw)); err != nil {
		return fmt.Errorf("churn chart: %w", err)
	}
	return p.Save(6*vg.Inch, 4*vg.Inch, file)
}
