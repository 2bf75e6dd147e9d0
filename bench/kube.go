package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// The Kubernetes engine's rows (-engine kubernetes): rtemu in-process on the
// cluster the kubeconfig names, against client-go used directly on the same
// cluster, namespace, image and pod spec.
const (
	// kubeNamespace holds the pods of both sides; the bench makes it.
	kubeNamespace = "rtemu-bench"
	// kubeImage is the template's image: the test cluster imports it
	// (scripts/k8s-test-cluster), and its pods never pull.
	kubeImage = "docker.io/library/busybox:1.35"
	// kubeFleetRatio is the share of limits the rss step's sandboxes
	// request (the engine's RequestRatio; its default is 0.1).
	kubeFleetRatio = 0.005
)

// kubeBench holds what every Kubernetes row uses.
type kubeBench struct {
	s    settings
	log  *slog.Logger
	path string // the kubeconfig
	rc   *rest.Config
	cs   k8s.Interface
	run  string // this run's id, on every baseline pod's label
	seq  atomic.Int64
	// spec is the pod rtemu made for a default sandbox, which the
	// baseline's pods copy (same image, resources, security context).
	spec *corev1.PodSpec

	srv *server.Server // the rtemu of the latency rows, started once
	a   *api
}

// kubeconfigPath is the flag's, else RTEMU_TEST_KUBECONFIG (the tests'),
// else KUBECONFIG ("" lets client-go look as kubectl does).
func kubeconfigPath(flagged string) string {
	for _, p := range []string{flagged, os.Getenv("RTEMU_TEST_KUBECONFIG"), os.Getenv("KUBECONFIG")} {
		if p != "" {
			return p
		}
	}
	return ""
}

func runKube(ctx context.Context, s settings) (rows []result, err error) {
	start := time.Now()
	kb := &kubeBench{s: s, path: kubeconfigPath(s.kubeconfig), run: strconv.FormatInt(time.Now().UnixNano()%1e9, 10)}
	out := io.Discard
	if s.verbose {
		out = os.Stderr
	}
	kb.log = slog.New(slog.NewTextHandler(out, nil))
	if kb.rc, err = kubernetes.LoadConfig(kb.path); err != nil {
		return nil, err
	}
	// As the engine does: every exec is a request, and client-go's default
	// of 5/s would make the baseline queue behind itself.
	kb.rc.QPS, kb.rc.Burst = 100, 200
	if kb.cs, err = k8s.NewForConfig(kb.rc); err != nil {
		return nil, err
	}
	v, err := kb.cs.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API server at %s: %w", kb.rc.Host, err)
	}
	nodes, err := kb.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var desc []string
	for _, n := range nodes.Items {
		a := n.Status.Allocatable
		desc = append(desc, fmt.Sprintf("%s (%s CPUs, %.1f GiB, %s pods allocatable)", n.Name, a.Cpu(), float64(a.Memory().Value())/(1<<30), a.Pods()))
	}
	fmt.Printf("rtemu bench: kubernetes %s at %s, node(s) %s, namespace %s, image %s, short=%v\n",
		v.GitVersion, kb.rc.Host, strings.Join(desc, ", "), kubeNamespace, kubeImage, s.short)
	fmt.Printf("load average at start: %s\n", loadavg())
	if err := kb.namespace(ctx); err != nil {
		return nil, err
	}
	// Whatever happens (an error, Ctrl-C), the baseline's pods go; rtemu's
	// go with its server's Close.
	defer kb.cleanup(context.WithoutCancel(ctx))
	defer kb.closeServer()

	steps := []struct {
		metrics []string
		fn      func(context.Context) ([]result, error)
	}{
		{[]string{"k8s_create_running"}, kb.createRunning},
		{[]string{"k8s_create_first_command"}, kb.createFirstCommand},
		{[]string{"k8s_exec_true"}, kb.execTrue},
		{[]string{"k8s_rss_"}, kb.fleetRSS},
	}
	for _, st := range steps {
		if !selected(st.metrics, s.only) {
			continue
		}
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		kb.log.Info("measuring", "metrics", st.metrics)
		r, err := st.fn(ctx)
		rows = append(rows, r...)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", st.metrics[0], err)
		}
	}
	fmt.Printf("load average at end: %s; took %v\n", loadavg(), time.Since(start).Round(time.Second))
	return rows, nil
}

// namespace makes the bench's namespace and waits for its default service
// account (pods are refused until it exists).
func (kb *kubeBench) namespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNamespace}}
	if _, err := kb.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("make namespace %s: %w", kubeNamespace, err)
	}
	return poll(ctx, 30*time.Second, func() (bool, error) {
		_, err := kb.cs.CoreV1().ServiceAccounts(kubeNamespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}, "namespace "+kubeNamespace+" has no default service account")
}

// poll calls done every 50 ms until it says so, fails, or the time is over.
func poll(ctx context.Context, limit time.Duration, done func() (bool, error), what string) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New(what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rtemuConfig is rtemu's configuration for the cluster: the engine, the
// bench's namespace, pods that never pull, base-ubuntu as the image.
func (kb *kubeBench) rtemuConfig(dataDir string) config.Config {
	return config.Config{Engine: "kubernetes", Addr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0", DataDir: dataDir,
		Kube:      config.Kube{Kubeconfig: kb.path, Namespace: kubeNamespace, PullPolicy: "Never"},
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: kubeImage}}}
}

// startRtemu starts an in-process rtemu that removes its pods on close;
// eng nil makes the engine from the configuration, as `rtemu serve` does.
func (kb *kubeBench) startRtemu(ctx context.Context, eng *kubernetes.Engine) (*server.Server, *api, func(), error) {
	dir, err := os.MkdirTemp("", "rtemu-bench-k8s-")
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := kb.rtemuConfig(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var srv *server.Server
	if eng != nil {
		srv, err = server.StartWithEngine(ctx, cfg, "bench", quiet, eng)
	} else {
		srv, err = server.Start(ctx, cfg, "bench", quiet)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("start rtemu: %w", err)
	}
	srv.RemoveContainersOnClose()
	stop := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := srv.Close(cctx); err != nil {
			kb.log.Warn("close rtemu", "err", err)
		}
		os.RemoveAll(dir)
	}
	return srv, newAPI(srv.URL, emulatortest.APIKey), stop, nil
}

// rtemu is the latency rows' rtemu, started at its first use, with the pod
// spec the baseline copies taken from its first sandbox.
func (kb *kubeBench) rtemu(ctx context.Context) (*api, error) {
	if kb.a != nil {
		return kb.a, nil
	}
	srv, a, _, err := kb.startRtemu(ctx, nil)
	if err != nil {
		return nil, err
	}
	kb.srv, kb.a = srv, a
	// Warm-up, and the spec: a default sandbox, its first command.
	id, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
	if err != nil {
		return nil, err
	}
	if err := a.execOut(ctx, id, "echo hi", "hi\n"); err != nil {
		return nil, err
	}
	pods, err := kb.cs.CoreV1().Pods(kubeNamespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) != 1 {
		return nil, fmt.Errorf("sandbox %s has %d pods, want 1", id, len(pods.Items))
	}
	kb.spec = baselineSpec(&pods.Items[0])
	c := kb.spec.Containers[0]
	kb.log.Info("baseline pod spec from rtemu's", "image", c.Image, "limits", c.Resources.Limits, "requests", c.Resources.Requests)
	if err := kb.removeSandbox(ctx, a, id); err != nil {
		return nil, err
	}
	// The baseline's own first pod and exec, untimed.
	pod, err := kb.rawCreateRunning(ctx)
	if err != nil {
		return nil, err
	}
	if err := kb.rawExec(ctx, pod, "hi\n", "echo", "hi"); err != nil {
		return nil, err
	}
	return a, kb.rawRemove(ctx, pod)
}

func (kb *kubeBench) closeServer() {
	if kb.srv == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kb.srv.Close(cctx); err != nil {
		kb.log.Warn("close rtemu", "err", err)
	}
	os.RemoveAll(kb.srv.DataDir)
	kb.srv, kb.a = nil, nil
}

// baselineSpec is the spec of rtemu's pod as the baseline makes it: without
// the scheduling gate rtemu lifts at start, and not yet on a node.
func baselineSpec(p *corev1.Pod) *corev1.PodSpec {
	spec := p.Spec.DeepCopy()
	spec.SchedulingGates, spec.NodeName, spec.Hostname = nil, "", ""
	return spec
}

// removeSandbox deletes the sandbox and waits until its pod is gone, so
// that the next sample does not share the node with its teardown.
func (kb *kubeBench) removeSandbox(ctx context.Context, a *api, id string) error {
	if err := a.remove(ctx, id); err != nil {
		return err
	}
	return kb.waitNoPods(ctx, sandbox.LabelSandbox+"="+id)
}

func (kb *kubeBench) waitNoPods(ctx context.Context, selector string) error {
	return poll(ctx, 2*time.Minute, func() (bool, error) {
		l, err := kb.cs.CoreV1().Pods(kubeNamespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		return err == nil && len(l.Items) == 0, err
	}, "pods "+selector+" were not removed")
}

// rawCreateRunning makes a pod of rtemu's spec and watches it until its
// container runs: what a program using client-go would do.
func (kb *kubeBench) rawCreateRunning(ctx context.Context) (string, error) {
	name := fmt.Sprintf("bench-%s-%d", kb.run, kb.seq.Add(1))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: kb.run}}, Spec: *kb.spec.DeepCopy()}
	pod.Spec.Hostname = name
	p, err := kb.cs.CoreV1().Pods(kubeNamespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	for !podRunning(p) {
		w, err := kb.cs.CoreV1().Pods(kubeNamespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: p.ResourceVersion})
		if err != nil {
			return name, err
		}
		p, err = nextPod(ctx, w, p)
		w.Stop()
		if err != nil {
			return name, err
		}
	}
	return name, nil
}

// nextPod waits until the watched pod runs, fails or the watch closes.
func nextPod(ctx context.Context, w watch.Interface, p *corev1.Pod) (*corev1.Pod, error) {
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, fmt.Errorf("pod %s did not run in 2 minutes (phase %s)", p.Name, p.Status.Phase)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return p, nil
			}
			np, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			p = np
			if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded || ev.Type == watch.Deleted {
				return nil, fmt.Errorf("pod %s ended: %s %s", p.Name, p.Status.Reason, p.Status.Message)
			}
			if podRunning(p) {
				return p, nil
			}
		}
	}
}

// podRunning: its one container runs (what the engine waits for too).
func podRunning(p *corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running != nil {
			return true
		}
	}
	return false
}

// rawExec runs argv in the pod through the pods/exec subresource with
// client-go's WebSocket executor, as kubectl exec does, and checks its exit
// code (and its output, unless want is "").
func (kb *kubeBench) rawExec(ctx context.Context, pod, want string, argv ...string) error {
	req := kb.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(kubeNamespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: kb.spec.Containers[0].Name, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewWebSocketExecutor(kb.rc, "GET", req.URL().String())
	if err != nil {
		return err
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return fmt.Errorf("exec %v: exit %d: %s", argv, ce.Code, stderr.String())
	}
	if err != nil {
		return fmt.Errorf("exec %v: %w", argv, err)
	}
	if want != "" && stdout.String() != want {
		return fmt.Errorf("exec %v: stdout %q, want %q", argv, stdout.String(), want)
	}
	return nil
}

// rawRemove deletes the pod at once and waits until it is gone.
func (kb *kubeBench) rawRemove(ctx context.Context, pod string) error {
	zero := int64(0)
	err := kb.cs.CoreV1().Pods(kubeNamespace).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return poll(ctx, 2*time.Minute, func() (bool, error) {
		_, err := kb.cs.CoreV1().Pods(kubeNamespace).Get(ctx, pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	}, "pod "+pod+" was not removed")
}

// cleanup deletes every baseline pod of this run and waits until they and
// rtemu's (deleted by its Close) are gone.
func (kb *kubeBench) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	zero := int64(0)
	sel := benchLabel + "=" + kb.run
	if err := kb.cs.CoreV1().Pods(kubeNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: sel}); err != nil {
		kb.log.Warn("remove the baseline's pods", "err", err)
		return
	}
	for _, sel := range []string{sel, kubernetes.LabelManaged} {
		if err := kb.waitNoPods(ctx, sel); err != nil {
			kb.log.Warn("pods left in "+kubeNamespace, "err", err)
		}
	}
}

// kubeRow is compare with the p90s in the note and the sample count.
func kubeRow(metric string, rt, base []time.Duration, baseline string, maxRatio float64) result {
	r := compare(metric, rt, base, baseline, maxRatio)
	r.Note = fmt.Sprintf("p90 %.2f vs %.2f ms; %d samples a side", ms(percentile(rt, 90)), ms(percentile(base, 90)), len(rt))
	return r
}

// createRunning: POST /v1/sandboxes until GET says running, against a raw
// pod create watched until its container runs; one sample of each in turn.
func (kb *kubeBench) createRunning(ctx context.Context) ([]result, error) {
	a, err := kb.rtemu(ctx)
	if err != nil {
		return nil, err
	}
	var rt, base []time.Duration
	for i := 0; i < kb.creates() && ctx.Err() == nil; i++ {
		var id, pod string
		d, err := timed(ctx, 1, nil, func() (err error) {
			id, err = a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
			return err
		},
			func() error { return kb.removeSandbox(ctx, a, id) })
		if err != nil {
			return nil, err
		}
		rt = append(rt, d...)
		d, err = timed(ctx, 1, nil, func() (err error) { pod, err = kb.rawCreateRunning(ctx); return err },
			func() error { return kb.rawRemove(ctx, pod) })
		if err != nil {
			return nil, err
		}
		base = append(base, d...)
		kb.log.Info("create → running", "rtemu", rt[len(rt)-1], "raw", base[len(base)-1])
	}
	return []result{kubeRow("k8s_create_running", rt, base, "client-go pod create, watched until running", 1.2)}, nil
}

// createFirstCommand: POST /v1/sandboxes, then the first command's answer
// (exec `echo hi`, which waits for the sandbox to run), against a raw pod
// create watched until running, then a pods/exec of `echo hi`.
func (kb *kubeBench) createFirstCommand(ctx context.Context) ([]result, error) {
	a, err := kb.rtemu(ctx)
	if err != nil {
		return nil, err
	}
	var rt, base []time.Duration
	for i := 0; i < kb.creates() && ctx.Err() == nil; i++ {
		var id, pod string
		d, err := timed(ctx, 1, nil, func() (err error) {
			if id, err = a.create(ctx, map[string]any{"template": "base-ubuntu"}); err != nil {
				return err
			}
			return a.execOut(ctx, id, "echo hi", "hi\n")
		}, func() error { return kb.removeSandbox(ctx, a, id) })
		if err != nil {
			return nil, err
		}
		rt = append(rt, d...)
		d, err = timed(ctx, 1, nil, func() (err error) {
			if pod, err = kb.rawCreateRunning(ctx); err != nil {
				return err
			}
			return kb.rawExec(ctx, pod, "hi\n", "echo", "hi")
		}, func() error { return kb.rawRemove(ctx, pod) })
		if err != nil {
			return nil, err
		}
		base = append(base, d...)
		kb.log.Info("create → first command", "rtemu", rt[len(rt)-1], "raw", base[len(base)-1])
	}
	return []result{kubeRow("k8s_create_first_command", rt, base, "client-go pod create, watch, pods/exec", 1.2)}, nil
}

func (kb *kubeBench) creates() int {
	if kb.s.short {
		return 2
	}
	return 10
}

// execTrue: exec `true` through rtemu's API against the pods/exec
// subresource, after each side's first command, in blocks of back-to-back
// samples taking turns (as exec_true on Docker).
func (kb *kubeBench) execTrue(ctx context.Context) ([]result, error) {
	a, err := kb.rtemu(ctx)
	if err != nil {
		return nil, err
	}
	id, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
	if err != nil {
		return nil, err
	}
	defer func() { _ = kb.removeSandbox(context.WithoutCancel(ctx), a, id) }()
	pod, err := kb.rawCreateRunning(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = kb.rawRemove(context.WithoutCancel(ctx), pod) }()
	sides := []func() error{
		func() error { return a.exec(ctx, id, "true") },
		func() error { return kb.rawExec(ctx, pod, "", "true") },
	}
	for _, run := range sides {
		if err := run(); err != nil { // the first command, untimed
			return nil, err
		}
	}
	rounds, block := 5, 10
	if kb.s.short {
		rounds, block = 2, 5
	}
	samples := make([][]time.Duration, len(sides))
	for range rounds {
		for i, run := range sides {
			for range block {
				t := time.Now()
				if err := run(); err != nil {
					return nil, err
				}
				samples[i] = append(samples[i], time.Since(t))
			}
		}
	}
	r := kubeRow("k8s_exec_true", samples[0], samples[1], "client-go pods/exec (WebSocket executor)", 0.2)
	r.Target = "ratio ≤ 0.20 (via an in-pod agent)"
	r.Note += fmt.Sprintf(", %d rounds of blocks of %d; rtemu's commands run on its exec agent in the pod, on exec streams it keeps open", rounds, block)
	return []result{r}, nil
}

// fleetRSS: the process's resident memory with the sandboxes running, made
// 8 at a time (the engine's provisioning slots) on a fresh rtemu whose
// engine requests kubeFleetRatio of the limits, so that 50 default sandboxes
// fit a 2-CPU node beside the other users of a shared cluster.
func (kb *kubeBench) fleetRSS(ctx context.Context) (rows []result, err error) {
	n := 50
	if kb.s.short {
		n = 10
	}
	kb.closeServer() // its memory freed below, before the measure
	rc := rest.CopyConfig(kb.rc)
	eng, err := kubernetes.New(kubernetes.Config{REST: rc, Namespace: kubeNamespace, PullPolicy: corev1.PullNever,
		RequestRatio: kubeFleetRatio, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	_, a, stop, err := kb.startRtemu(ctx, eng)
	if err != nil {
		return nil, err
	}
	defer stop()
	fitsDefault, why := kb.defaultFit(ctx)
	id, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"}) // warm-up
	if err != nil {
		return nil, err
	}
	if err := kb.removeSandbox(ctx, a, id); err != nil {
		return nil, err
	}
	before, err := settledRSS()
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		sem  = make(chan struct{}, 8)
		wg   sync.WaitGroup
	)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := time.Now()
			_, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			lat = append(lat, time.Since(t))
			if len(lat)%10 == 0 {
				kb.log.Info("fleet", "running", len(lat))
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var page []sandboxJSON
	if _, err := a.call(ctx, "GET", "/v1/sandboxes?status=running", nil, &page); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the creates' garbage collected, a steady state
	after, err := settledRSS()
	if err != nil {
		return nil, err
	}
	r := result{Metric: fmt.Sprintf("k8s_rss_%d", n), RtemuP50: ms(percentile(lat, 50)), RtemuP95: ms(percentile(lat, 95)), N: len(lat),
		Value: ptr(float64(int(after*10)) / 10), Unit: "MB", Target: "≤ 100 MB (rss_500's on Docker), 0 errors",
		Met: after <= 100 && len(errs) == 0 && len(page) == n}
	r.Note = fmt.Sprintf("the bench process's VmRSS (rtemu in-process); %.1f MB before the creates, +%.1f MB (%.0f KB a sandbox); "+
		"%d running, %d errors; p50/p95: create → running, 8 at a time; requests %.3f× limits (engine default 0.1: %s)",
		before, after-before, (after-before)*1024/float64(max(len(lat), 1)), len(page), len(errs), kubeFleetRatio, why)
	if len(errs) > 0 {
		r.Note += fmt.Sprintf("; first error: %v", errs[0])
	}
	kb.log.Info("default sandboxes that fit now", "n", fitsDefault)
	return []result{r}, nil
}

// settledRSS is the process's resident memory in MB after a collection that
// returns freed memory to the system.
func settledRSS() (float64, error) {
	debug.FreeOSMemory()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kib / 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// defaultFit says how many default sandboxes (2 vcpus, requesting 0.1 of
// them) the nodes' free CPU takes now, and why.
func (kb *kubeBench) defaultFit(ctx context.Context) (int, string) {
	nodes, err := kb.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err.Error()
	}
	pods, err := kb.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err.Error()
	}
	requested := map[string]int64{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, c := range p.Spec.Containers {
			requested[p.Spec.NodeName] += c.Resources.Requests.Cpu().MilliValue()
		}
	}
	const perSandbox = sandbox.DefaultVCPUs * 1000 / 10 // millicores
	fit, alloc, used := 0, int64(0), int64(0)
	for _, n := range nodes.Items {
		a := n.Status.Allocatable.Cpu().MilliValue()
		alloc, used = alloc+a, used+requested[n.Name]
		fit += int(max(0, a-requested[n.Name]) / perSandbox)
	}
	return fit, fmt.Sprintf("a default sandbox requests %dm CPU, the node(s) allocate %dm, %dm of it requested by other pods now: %d fit, at most %d on an empty cluster",
		perSandbox, alloc, used, fit, alloc/perSandbox)
}
