package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// execFlood: exec_flood_rss, rtemu's peak resident memory while 8 commands
// at once print 200 MB each and are answered as JSON (each answer carries
// its first 10 MiB). rtemu runs as its own process, so the figure is its
// own and not the clients'.
func (b *bench) execFlood(ctx context.Context) ([]result, error) {
	floods, mb := 8, 200
	if b.s.short {
		floods, mb = 4, 20
	}
	p, a, stop, err := b.startProc(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	id, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
	if err != nil {
		return nil, err
	}
	if err := a.exec(ctx, id, "true"); err != nil { // the agent is up before the peak is read
		return nil, err
	}
	before, err := p.memKB("VmRSS:")
	if err != nil {
		return nil, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	for range floods {
		wg.Go(func() {
			var out struct {
				Stdout          string `json:"stdout"`
				StdoutTruncated bool   `json:"stdoutTruncated"`
				ExitCode        int    `json:"exitCode"`
			}
			_, err := a.call(ctx, "POST", "/v1/sandboxes/"+id+"/exec",
				map[string]any{"command": fmt.Sprintf("yes | head -c %dm", mb), "timeout": 600000}, &out)
			if err == nil && (len(out.Stdout) != sandbox.MaxExecOutput || !out.StdoutTruncated || out.ExitCode != 0) {
				err = fmt.Errorf("flood answered %d bytes, truncated %v, exit %d", len(out.Stdout), out.StdoutTruncated, out.ExitCode)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	peak, err := p.memKB("VmHWM:")
	if err != nil {
		return nil, err
	}
	peakMB := float64(peak*10/1024) / 10
	r := result{Metric: "exec_flood_rss", Value: ptr(peakMB), Unit: "MB", N: floods,
		Baseline: fmt.Sprintf("%.0f MB before the floods", float64(before)/1024),
		Target:   "≤ 150 MB peak, 0 errors", Met: peakMB <= 150 && len(errs) == 0,
		Note: fmt.Sprintf("peak RSS of rtemu (its own process) over %d concurrent `yes | head -c %dm` execs answered as JSON, in %v; %d errors",
			floods, mb, took.Round(time.Millisecond), len(errs))}
	if len(errs) > 0 {
		r.Note += fmt.Sprintf(" (first: %v)", errs[0])
	}
	return []result{r}, nil
}

// memKB reads a figure in kB (VmRSS:, VmHWM: the peak) of the process from
// /proc.
func (p *proc) memKB(field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}
