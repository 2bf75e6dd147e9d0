package kubernetes

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rtemu-dev/rtemu/engine"
)

func TestPodName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 300)
	cases := []struct {
		in, same string // same: the name kept as it is ("" when it must change)
	}{
		{"rtemu-sandbox-abc123", "rtemu-sandbox-abc123"},
		{"Rtemu_Sandbox.Name", ""},
		{"-lead", ""},
		{long, ""},
		{"ünïcode", ""},
		{"___", ""},
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := podName(c.in)
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
			t.Errorf("podName(%q) = %q, not a valid pod name: %v", c.in, got, errs)
		}
		if c.same != "" && got != c.same {
			t.Errorf("podName(%q) = %q, want it unchanged", c.in, got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("podName(%q) = podName(%q) = %q", c.in, prev, got)
		}
		seen[got] = c.in
		if h := hostName(c.in); len(validation.IsDNS1123Label(h)) > 0 {
			t.Errorf("hostName(%q) = %q, not a DNS label", c.in, h)
		}
	}
	// Names differing only in what is replaced stay apart.
	if podName("a_b") == podName("a.b") || podName("A") == podName("a") {
		t.Error("two names met")
	}
}

func pod(name string, mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annName: name, annLabels: `{"k":"v"}`}}}
	if mod != nil {
		mod(p)
	}
	return p
}

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
}

func terminated(code int32, reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}}
	}
}

func TestStateOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*corev1.Pod)
		want engine.Status
		code int
	}{
		{"gated", func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: gate}} }, engine.Created, 0},
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, engine.Created, 0},
		{"running", running, engine.Running, 0},
		{"paused", func(p *corev1.Pod) { running(p); p.Annotations[annPaused] = "x" }, engine.Paused, 0},
		{"exited", terminated(3, "Error"), engine.Exited, 3},
		{"deleting", func(p *corev1.Pod) { running(p); p.DeletionTimestamp = &metav1.Time{} }, engine.Exited, 0},
	}
	for _, c := range cases {
		st := stateOf(pod("p", c.mod))
		if st.Status != c.want || st.ExitCode != c.code || st.Labels["k"] != "v" {
			t.Errorf("%s: %+v, want %s code %d with the labels", c.name, st, c.want, c.code)
		}
	}
}

// A pod's life as the watch sees it becomes the contract's events.
func TestChanges(t *testing.T) {
	t.Parallel()
	steps := []struct {
		typ  watch.EventType
		mod  func(*corev1.Pod)
		want []engine.EventKind
	}{
		{watch.Added, func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: gate}} }, nil},
		{watch.Modified, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, nil},
		{watch.Modified, running, []engine.EventKind{engine.EventStarted}},
		{watch.Modified, running, nil},
		{watch.Modified, func(p *corev1.Pod) { running(p); p.Annotations[annPaused] = "x" }, []engine.EventKind{engine.EventPaused}},
		{watch.Modified, running, []engine.EventKind{engine.EventUnpaused}},
		{watch.Modified, terminated(137, "OOMKilled"), []engine.EventKind{engine.EventOOM, engine.EventDied}},
		{watch.Deleted, terminated(137, "OOMKilled"), []engine.EventKind{engine.EventRemoved}},
		// Another pod deleted while it ran: died (a kill) and removed.
		{watch.Added, running, []engine.EventKind{engine.EventStarted}},
		{watch.Deleted, running, []engine.EventKind{engine.EventDied, engine.EventRemoved}},
	}
	known := map[string]seen{}
	for i, s := range steps {
		name := "one"
		if i >= 8 {
			name = "two"
		}
		var got []engine.EventKind
		for _, ev := range changes(known, s.typ, pod(name, s.mod)) {
			got = append(got, ev.Kind)
			if ev.Name != name || ev.Labels["k"] != "v" {
				t.Errorf("step %d: event %+v without the name or the labels", i, ev)
			}
			if ev.Kind == engine.EventDied && ev.ExitCode != 137 {
				t.Errorf("step %d: died with %d, want 137", i, ev.ExitCode)
			}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d (%s): %v, want %v", i, s.typ, got, s.want)
		}
	}
}

func TestFits(t *testing.T) {
	t.Parallel()
	node := corev1.Node{Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")}}}
	e := &Engine{ratio: 1}
	cases := []struct {
		cpus, mem int64
		nodes     []corev1.Node
		ok        bool
	}{
		{1e9, 1 << 30, []corev1.Node{node}, true},
		{2e9, 4 << 30, []corev1.Node{node}, true},
		{3e9, 1 << 30, []corev1.Node{node}, false},
		{1e9, 5 << 30, []corev1.Node{node}, false},
		{1e9, 1 << 30, nil, false},
	}
	for _, c := range cases {
		p := e.podFor(engine.ContainerSpec{Name: "x", Image: "i", NanoCPUs: c.cpus, MemoryBytes: c.mem})
		err := fits(c.nodes, p)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrUnschedulable)) {
			t.Errorf("%d CPUs, %d bytes on %d nodes: %v, want fits=%v", c.cpus, c.mem, len(c.nodes), err, c.ok)
		}
	}
	// Requests are the ratio's share of the limits.
	e.ratio = 0.1
	r := e.podFor(engine.ContainerSpec{Name: "x", NanoCPUs: 2e9, MemoryBytes: 1 << 30}).Spec.Containers[0].Resources
	if cpu := r.Requests[corev1.ResourceCPU]; cpu.MilliValue() != 200 {
		t.Errorf("CPU request %s, want 200m", cpu.String())
	}
	if lim := r.Limits[corev1.ResourceMemory]; lim.Value() != 1<<30 {
		t.Errorf("memory limit %s, want 1Gi", lim.String())
	}
}

func TestNormalImage(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"busybox:1.35":                   "docker.io/library/busybox:1.35",
		"rtemu-test/busybox:abc":         "docker.io/rtemu-test/busybox:abc",
		"registry.k8s.io/pause:3.10.1":   "registry.k8s.io/pause:3.10.1",
		"docker.io/library/busybox:1.35": "docker.io/library/busybox:1.35",
		"ubuntu":                         "docker.io/library/ubuntu:latest",
	} {
		if got := normalImage(in); got != want {
			t.Errorf("normalImage(%q) = %q, want %q", in, got, want)
		}
	}
}

// With a workspace claim, mounts of folders under its root are the claim
// with the folder as subPath (one volume for all of them); folders
// elsewhere are shared only where the node sees rtemu's folders.
func TestWorkspaceClaimMounts(t *testing.T) {
	t.Parallel()
	e := &Engine{ratio: 0.1, claim: "ws-claim", root: "/data/workspaces"}
	p := e.podFor(engine.ContainerSpec{Name: "x", Image: "i", Mounts: []engine.Mount{
		{Source: "/data/workspaces/aaa", Target: "/workspace/a"},
		{Source: "/data/workspaces/bbb/", Target: "/workspace/b", ReadOnly: true},
	}})
	// (After the exec agent's folder, which every pod has.)
	want := []corev1.VolumeMount{{Name: agentVolume, MountPath: AgentMount},
		{Name: claimVolume, MountPath: "/workspace/a", SubPath: "aaa"},
		{Name: claimVolume, MountPath: "/workspace/b", SubPath: "bbb", ReadOnly: true}}
	if got := p.Spec.Containers[0].VolumeMounts; !reflect.DeepEqual(got, want) {
		t.Errorf("mounts %+v, want %+v", got, want)
	}
	claims := 0
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "ws-claim" {
			claims++
		} else if v.Name != agentVolume {
			t.Errorf("volume %+v", v)
		}
	}
	if claims != 1 {
		t.Errorf("volumes %+v, want the claim once", p.Spec.Volumes)
	}
	for _, tc := range []struct {
		dir  string
		host bool
		ok   bool
	}{
		{"/data/workspaces", false, true}, {"/data/workspaces/x/y", false, true},
		{"/data/workspaces-other", false, false}, {"/data/workspaces/../secrets", false, false}, {"/elsewhere", false, false},
		{"/elsewhere", true, true},
	} {
		e.host = tc.host
		if ok, err := e.SharesFolder(t.Context(), tc.dir, "", nil); err != nil || ok != tc.ok {
			t.Errorf("SharesFolder(%s) with host folders %v = %v, %v; want %v", tc.dir, tc.host, ok, err, tc.ok)
		}
	}
	e.host = false
	if err := e.Create(t.Context(), engine.ContainerSpec{Name: "x", Mounts: []engine.Mount{{Source: "/elsewhere", Target: "/w"}}}); err == nil ||
		!strings.Contains(err.Error(), "not in the workspace claim ws-claim's folder") {
		t.Errorf("a mount outside the claim: %v", err)
	}
	if c := e.Capabilities(); !c.SharedFolders {
		t.Error("an engine with a workspace claim says it shares no folders")
	}
}
