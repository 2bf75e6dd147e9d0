package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// result is one row of the report (and of -json).
type result struct {
	Metric      string   `json:"metric"`
	RtemuP50    float64  `json:"rtemu_p50_ms"`
	RtemuP95    float64  `json:"rtemu_p95_ms"`
	BaselineP50 *float64 `json:"baseline_p50_ms"`
	Ratio       *float64 `json:"ratio"`
	Baseline    string   `json:"baseline,omitempty"`
	N           int      `json:"n"`
	Value       *float64 `json:"value,omitempty"` // for metrics that are not latencies (req/s, MB, ms)
	Unit        string   `json:"unit,omitempty"`
	Target      string   `json:"target"`
	Met         bool     `json:"met"`
	Note        string   `json:"note,omitempty"`
	BaselineP95 *float64 `json:"baseline_p95_ms,omitempty"`
	RtemuP99    float64  `json:"rtemu_p99_ms,omitempty"`
	// BaselineValue is the baseline's rate, for rows of rates.
	BaselineValue *float64 `json:"baseline_value,omitempty"`
	// Info rows have no target (the points of a chart).
	Info bool `json:"info,omitempty"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

// percentile of durations (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ptr(f float64) *float64 { return &f }

// compare makes a row of rtemu against a baseline; met is ratio ≤ maxRatio.
func compare(metric string, rt, base []time.Duration, baseline string, maxRatio float64) result {
	r := result{Metric: metric, RtemuP50: ms(percentile(rt, 50)), RtemuP95: ms(percentile(rt, 95)), N: len(rt), Baseline: baseline,
		Target: fmt.Sprintf("ratio ≤ %.2f", maxRatio)}
	b50 := ms(percentile(base, 50))
	r.BaselineP50, r.BaselineP95 = ptr(b50), ptr(ms(percentile(base, 95)))
	if b50 > 0 {
		r.Ratio = ptr(math.Round(r.RtemuP50/b50*100) / 100)
		r.Met = *r.Ratio <= maxRatio
	}
	return r
}

func printTable(w io.Writer, rows []result) {
	fmt.Fprintf(w, "\n%-24s %10s %10s %12s %7s  %-22s %s\n", "metric", "rtemu p50", "rtemu p95", "baseline p50", "ratio", "target", "")
	for _, r := range rows {
		b, ratio := "-", "-"
		if r.BaselineP50 != nil {
			b = fmt.Sprintf("%.2f", *r.BaselineP50)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		ok := "MET"
		switch {
		case r.Info:
			ok = "(info)"
		case !r.Met:
			ok = "NOT MET"
		}
		extra := ""
		if r.RtemuP99 > 0 {
			extra = fmt.Sprintf("  p99 %.2f", r.RtemuP99)
		}
		if r.Value != nil {
			extra += fmt.Sprintf("  value %.1f %s", *r.Value, r.Unit)
		}
		if r.BaselineValue != nil {
			extra += fmt.Sprintf(" (baseline %.1f %s)", *r.BaselineValue, r.Unit)
		}
		if r.Baseline != "" {
			extra += "  (baseline: " + r.Baseline + ")"
		}
		if r.Note != "" {
			extra += "  " + r.Note
		}
		fmt.Fprintf(w, "%-24s %10.2f %10.2f %12s %7s  %-22s %s%s\n", r.Metric, r.RtemuP50, r.RtemuP95, b, ratio, r.Target, ok, extra)
	}
}
