// Command bench measures rtemu against raw Docker on the same engine, image
// and limits, and prints p50/p95 of each and their ratio per metric:
//
//	go run ./bench              # the full run (a few minutes)
//	go run ./bench -short       # a small run, under a minute (CI)
//	go run ./bench -json out.json -cpuprofile cpu.out
//	go run ./bench -engine kubernetes  # the Kubernetes engine's rows (kube.go)
//
// rtemu runs in-process (emulatortest.Start on 127.0.0.1:0 with the offline
// busybox test image); rss_200 and startup_200 run a built rtemu binary as
// its own process. Every container made is removed at the end, also on
// failure or Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

type settings struct {
	short    bool
	iters    int           // samples per latency metric
	rpsFor   time.Duration // how long get_sandbox_rps runs
	fleet    int           // sandboxes for rss/startup
	parallel int           // parallel creates for rss
	records  int           // records for list
	startups int           // restarts for startup
	only     string
	verbose  bool
	loadFor  time.Duration // exec_parallel (and a quarter of it per scaling level)
	churnFor time.Duration // churn
	ref      int           // sandboxes of the fleet's reference case (GET/list latency)
	plotDir  string
	// agentStreams runs rtemu with --exec-agent streams.
	agentStreams bool
	// engine is docker (the rows above) or kubernetes (kube.go's rows, on
	// the cluster kubeconfig names).
	engine     string
	kubeconfig string
}

func main() {
	var (
		s       settings
		jsonOut string
		cpuProf string
	)
	flag.BoolVar(&s.short, "short", false, "a small run (under a minute), to keep the program working")
	flag.StringVar(&jsonOut, "json", "", "write the results as JSON to this file")
	flag.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the whole run (rtemu is in-process) to this file")
	flag.StringVar(&s.only, "only", "", "run only the metrics whose name starts with this")
	flag.BoolVar(&s.verbose, "v", false, "log progress")
	flag.BoolVar(&s.agentStreams, "agent-streams", false, "run rtemu with --exec-agent streams (the agent on the engine's streams, as on Docker Desktop) instead of linked")
	flag.StringVar(&s.engine, "engine", "docker", "the engine to measure: docker, or kubernetes (its own rows, on a cluster)")
	flag.StringVar(&s.kubeconfig, "kubeconfig", "", "with -engine kubernetes: the cluster's kubeconfig (default $RTEMU_TEST_KUBECONFIG, else $KUBECONFIG, else as kubectl finds it)")
	flag.StringVar(&s.plotDir, "plot", "", "write PNG charts (exec and create latency against parallelism, churn) to this directory")
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		loadgenMain(os.Args[2:]) // get_sandbox_rps's load, as its own process
		return
	}
	flag.Parse()
	if s.short {
		s.iters, s.rpsFor, s.fleet, s.parallel, s.records, s.startups = 4, 2*time.Second, 20, 10, 1000, 2
		s.loadFor, s.churnFor, s.ref = 2*time.Second, 4*time.Second, 5
	} else {
		s.iters, s.rpsFor, s.fleet, s.parallel, s.records, s.startups = 20, 10*time.Second, 500, 50, 1000, 5
		s.loadFor, s.churnFor, s.ref = 10*time.Second, 20*time.Second, 20
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cpuProf != "" {
		f, err := os.Create(cpuProf)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var (
		b    *bench
		rows []result
		err  error
	)
	switch s.engine {
	case "docker":
		b, rows, err = run(ctx, s)
	case "kubernetes":
		rows, err = runKube(ctx, s)
	default:
		fatal(fmt.Errorf("-engine %q: not docker or kubernetes", s.engine))
	}
	printTable(os.Stdout, rows)
	if s.plotDir != "" && b != nil {
		if perr := b.plot(s.plotDir); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	if jsonOut != "" {
		js, _ := json.MarshalIndent(rows, "", "  ")
		if werr := os.WriteFile(jsonOut, append(js, '\n'), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// bench holds what every metric uses.
type bench struct {
	s        settings
	raw      *raw
	img      string
	log      *slog.Logger
	hostCPUs int
	// What -plot draws, when the steps ran.
	churnSeries [2]*loadResult // rtemu, raw
	scalingData *scalingData
}

func run(ctx context.Context, s settings) (b *bench, rows []result, err error) {
	start := time.Now()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		return nil, nil, err
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	res, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("docker engine: %w", err)
	}
	info := res.Info
	b = &bench{s: s, img: img, hostCPUs: info.NCPU,
		raw: &raw{cli: cli, image: img, run: fmt.Sprintf("%d", time.Now().UnixNano()%1e9)}}
	out := io.Discard
	if s.verbose {
		out = os.Stderr
	}
	b.log = slog.New(slog.NewTextHandler(out, nil))
	// Whatever happens (an error, Ctrl-C), the baseline's containers go;
	// rtemu's go with each server's Close.
	defer b.raw.cleanup(context.WithoutCancel(ctx))
	fmt.Printf("rtemu bench: docker %s (API %s), %d CPUs, %.1f GiB, image %s, short=%v\n",
		info.ServerVersion, cli.ClientVersion(), info.NCPU, float64(info.MemTotal)/(1<<30), img, s.short)
	fmt.Printf("load average at start: %s\n", loadavg())

	steps := []struct {
		metrics []string // what the step reports, for -only
		fn      func(context.Context) ([]result, error)
	}{
		{[]string{"create_to_running", "create_to_running_same_network", "create_to_running_warm"}, b.createToRunning},
		{[]string{"create_then_exec", "create_then_exec_same_network", "create_then_exec_warm"}, b.createThenExec},
		{[]string{"exec_true", "exec_true_vs_cli", "agent_rss"}, b.execTrue},
		{[]string{"exec_parallel"}, b.execParallel},
		{[]string{"churn", "churn_same_network"}, b.churn},
		{[]string{"pause", "resume"}, b.pauseResume},
		{[]string{"get_sandbox_rps"}, b.getRPS},
		{[]string{"list_1000"}, b.list},
		{[]string{"ssh_true"}, b.sshTrue},
		{[]string{"devurl_request", "download_devurl", "download_ssh_forward", "websockets_64"}, b.ports},
		{[]string{"exec_flood_rss"}, b.execFlood},
		{[]string{"load_", "exec_30_one_sandbox"}, b.loadMix},
		{[]string{"rss_", "startup_", "fleet_"}, b.fleetMetrics},
		{[]string{"state_"}, b.stateMetrics},
	}
	if !s.short || s.plotDir != "" {
		// The charts' points: not in the short run unless asked for.
		steps = append(steps, struct {
			metrics []string
			fn      func(context.Context) ([]result, error)
		}{[]string{"scale_"}, b.scaling})
	}
	for _, st := range steps {
		if !selected(st.metrics, s.only) {
			continue
		}
		if ctx.Err() != nil {
			return b, rows, ctx.Err()
		}
		b.log.Info("measuring", "metrics", st.metrics)
		r, err := st.fn(ctx)
		rows = append(rows, r...)
		if err != nil {
			return b, rows, fmt.Errorf("%s: %w", st.metrics[0], err)
		}
	}
	fmt.Printf("load average at end: %s; took %v\n", loadavg(), time.Since(start).Round(time.Second))
	return b, rows, nil
}

// selected says whether -only picks a step: "" picks all; otherwise a
// metric of the step starts with it, or it starts with one (rss_200).
func selected(metrics []string, only string) bool {
	if only == "" {
		return true
	}
	for _, m := range metrics {
		if strings.HasPrefix(m, only) || strings.HasPrefix(only, m) {
			return true
		}
	}
	return false
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return string(raw[:len(raw)-1])
}

// defaultNanoCPUs is what rtemu gives a default sandbox (2 vcpus, clamped
// to the host's CPUs, as Docker refuses more).
func (b *bench) defaultNanoCPUs() int64 { return int64(min(2, b.hostCPUs)) * 1e9 }

// server starts an in-process rtemu; stop closes it and removes its
// containers.
func (b *bench) server(ctx context.Context, opts ...emulatortest.Option) (*emulatortest.Server, *api, error) {
	if b.s.agentStreams {
		opts = append(opts, emulatortest.WithExecAgentStreams())
	}
	srv, err := emulatortest.Start(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	return srv, newAPI(srv.URL, srv.APIKey), nil
}

// timed runs fn n times and returns each duration; setup and teardown run
// around each sample, untimed.
func timed(ctx context.Context, n int, setup func() error, fn func() error, teardown func() error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if setup != nil {
			if err := setup(); err != nil {
				return out, err
			}
		}
		t := time.Now()
		err := fn()
		out = append(out, time.Since(t))
		if err != nil {
			return out, err
		}
		if teardown != nil {
			if err := teardown(); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}
