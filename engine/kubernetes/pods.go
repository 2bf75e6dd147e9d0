package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rtemu-dev/rtemu/engine"
)

// keepAlive is the sandbox container's command: it keeps the container
// running whatever the image's own command is. The pod shares one process
// namespace, so its pause process is PID 1 and reaps the orphans of exec'd
// commands (Docker's Init: true).
var keepAlive = []string{"/bin/sh", "-c", "while :; do sleep 86400; done"}

// claimVolume is the pod's volume of the workspace claim.
const claimVolume = "workspaces"

// droppedCaps are dropped from the runtime's default set, as on Docker: raw
// sockets (forged packets on the pod network) and device nodes.
var droppedCaps = []corev1.Capability{"NET_RAW", "MKNOD"}

// Create makes the sandbox's pod, held back from scheduling by a gate until
// Start: the pod is listed and inspected as created. It fails with
// ErrNotFound when the pods never pull and no node has the image, and with
// ErrUnschedulable when the sandbox asks for more than any node has.
func (e *Engine) Create(ctx context.Context, spec engine.ContainerSpec) error {
	for _, m := range spec.Mounts {
		if _, ok := e.claimPath(m.Source); !ok && !e.host {
			if e.claim != "" {
				return fmt.Errorf("create %s: %s is not in the workspace claim %s's folder %s, the only folder of rtemu's the pods see", spec.Name, m.Source, e.claim, e.root)
			}
			return fmt.Errorf("create %s: this engine does not share rtemu's folders with the cluster's nodes, so a sandbox cannot mount one", spec.Name)
		}
	}
	nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return wrap(err, "create "+spec.Name+": list nodes")
	}
	if e.pull == corev1.PullNever && !nodesHaveImage(nodes.Items, spec.Image) {
		return fmt.Errorf("create %s: image %s: no node of the cluster has it and its pods never pull: %w", spec.Name, spec.Image, engine.ErrNotFound)
	}
	pod := e.podFor(spec)
	if err := fits(nodes.Items, pod); err != nil {
		return fmt.Errorf("create %s: %w", spec.Name, err)
	}
	e.ensurePolicy(ctx)
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return wrap(err, "create pod for "+spec.Name)
	}
	return nil
}

// podFor is the pod a spec becomes.
func (e *Engine) podFor(spec engine.ContainerSpec) *corev1.Pod {
	lbls, all := podLabels(spec.Labels)
	zero := int64(0)
	no, yes := false, true
	c := corev1.Container{
		Name:            containerName,
		Image:           spec.Image,
		ImagePullPolicy: e.pull,
		Command:         keepAlive,
		WorkingDir:      spec.WorkingDir,
		Resources:       e.resources(spec.NanoCPUs, spec.MemoryBytes, spec.DiskBytes),
		SecurityContext: &corev1.SecurityContext{
			Privileged:   &no,
			Capabilities: &corev1.Capabilities{Drop: droppedCaps},
		},
	}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	// The exec agent's folder (agent.go).
	vols := []corev1.Volume{{Name: agentVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: agentVolume, MountPath: AgentMount})
	for i, m := range spec.Mounts {
		if sub, ok := e.claimPath(m.Source); ok {
			// One volume of the claim, each mount its folder of it.
			if len(vols) == 0 || vols[0].Name != claimVolume {
				vols = append([]corev1.Volume{{Name: claimVolume, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: e.claim}}}}, vols...)
			}
			if sub == "." {
				sub = ""
			}
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: claimVolume, MountPath: m.Target, SubPath: sub, ReadOnly: m.ReadOnly})
			continue
		}
		vname := fmt.Sprintf("mount-%d", i)
		dir := corev1.HostPathDirectory
		vols = append(vols, corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: m.Source, Type: &dir}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vname, MountPath: m.Target, ReadOnly: m.ReadOnly})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(spec.Name),
			Labels:      lbls,
			Annotations: map[string]string{annName: spec.Name, annLabels: all},
		},
		Spec: corev1.PodSpec{
			SchedulingGates:               []corev1.PodSchedulingGate{{Name: gate}},
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			ShareProcessNamespace:         &yes,
			Hostname:                      hostName(spec.Hostname),
			Containers:                    []corev1.Container{c},
			Volumes:                       vols,
		},
	}
}

// podLabels are the labels Kubernetes takes as they are, plus the engine's
// own, and every label as JSON for the annotation.
func podLabels(spec map[string]string) (map[string]string, string) {
	lbls := map[string]string{LabelManaged: managedBy}
	for k, v := range spec {
		if validLabel(k, v) {
			lbls[k] = v
		}
	}
	b, _ := json.Marshal(spec)
	return lbls, string(b)
}

func validLabel(k, v string) bool {
	return len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 && k != LabelManaged
}

// resources are a sandbox's limits, and the requests the scheduler reserves
// (a share of them, Config.RequestRatio).
func (e *Engine) resources(nanoCPUs, memory, disk int64) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	if nanoCPUs > 0 {
		milli := nanoCPUs / 1e6
		r.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
		r.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(1, int64(float64(milli)*e.ratio)), resource.DecimalSI)
	}
	if memory > 0 {
		r.Limits[corev1.ResourceMemory] = *resource.NewQuantity(memory, resource.BinarySI)
		r.Requests[corev1.ResourceMemory] = *resource.NewQuantity(max(1<<20, int64(float64(memory)*e.ratio)), resource.BinarySI)
	}
	if disk > 0 {
		r.Limits[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(disk, resource.BinarySI)
		r.Requests[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(max(1<<20, int64(float64(disk)*e.ratio)), resource.BinarySI)
	}
	return r
}

// fits fails with ErrUnschedulable when no node could ever take the pod:
// its requests are more than any node's allocatable resources.
func fits(nodes []corev1.Node, pod *corev1.Pod) error {
	req := pod.Spec.Containers[0].Resources.Requests
	var best []string
	for _, n := range nodes {
		if n.Spec.Unschedulable {
			continue
		}
		var short []string
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
			want, ok := req[r]
			if !ok {
				continue
			}
			if have, ok := n.Status.Allocatable[r]; ok && want.Cmp(have) > 0 {
				short = append(short, fmt.Sprintf("%s %s of %s", r, want.String(), have.String()))
			}
		}
		if len(short) == 0 {
			return nil
		}
		best = short
	}
	if best == nil {
		return fmt.Errorf("%w: the cluster has no schedulable node", ErrUnschedulable)
	}
	return fmt.Errorf("%w: it requests more than any node can give (%s)", ErrUnschedulable, strings.Join(best, ", "))
}

func nodesHaveImage(nodes []corev1.Node, ref string) bool {
	want := normalImage(ref)
	for _, n := range nodes {
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				if name == want || normalImage(name) == want {
					return true
				}
			}
		}
	}
	return false
}

// Start lifts the pod's scheduling gate and waits until its container runs.
// A pod the scheduler finds no node for fails with ErrUnschedulable (and
// stays, for Remove), an image the node cannot get with ErrNotFound:
// never a pod pending for ever.
func (e *Engine) Start(ctx context.Context, name string) error {
	p, err := e.pod(ctx, name)
	if err != nil {
		return err
	}
	if len(p.Spec.SchedulingGates) > 0 {
		patch := []byte(`[{"op":"remove","path":"/spec/schedulingGates"}]`)
		p, err = e.cs.CoreV1().Pods(e.ns).Patch(ctx, p.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return wrap(err, "start "+name)
		}
	}
	return e.waitRunning(ctx, name, p)
}

// waitRunning follows the pod until its container runs or cannot.
func (e *Engine) waitRunning(ctx context.Context, name string, p *corev1.Pod) error {
	for {
		if done, err := started(p); done {
			if err != nil {
				return fmt.Errorf("start %s: %w", name, err)
			}
			return nil
		}
		w, err := e.cs.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", p.Name).String(),
			ResourceVersion: p.ResourceVersion,
		})
		if err != nil {
			return wrap(err, "start "+name+": watch its pod")
		}
		p, err = e.nextOf(ctx, w, name, p)
		w.Stop()
		if err != nil {
			return err
		}
	}
}

// nextOf waits for the watched pod to change; it returns the newest pod it
// saw when the watch closes (the caller watches again from there).
func (e *Engine) nextOf(ctx context.Context, w watch.Interface, name string, p *corev1.Pod) (*corev1.Pod, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start %s: %w", name, ctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return p, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return nil, fmt.Errorf("start %s: its pod was deleted: %w", name, engine.ErrNotFound)
			case watch.Error:
				// A too old resource version: read the pod again.
				np, err := e.pod(ctx, name)
				if err != nil {
					return nil, err
				}
				return np, nil
			}
			np, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			p = np
			if done, _ := started(p); done {
				return p, nil
			}
		}
	}
}

// imageReasons are a waiting container's reasons that mean the node cannot
// get the image.
var imageReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true}

// started says whether a starting pod is done starting: its container
// runs (nil), or it cannot start (the error).
func started(p *corev1.Pod) (bool, error) {
	if p.DeletionTimestamp != nil {
		return true, fmt.Errorf("its pod is being deleted: %w", engine.ErrNotRunning)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true, fmt.Errorf("%w: %s", ErrUnschedulable, c.Message)
		}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return true, fmt.Errorf("its pod ended (%s %s): %w", p.Status.Reason, p.Status.Message, engine.ErrNotRunning)
	}
	cs := containerStatus(p)
	if cs == nil {
		return false, nil
	}
	switch {
	case cs.State.Running != nil:
		return true, nil
	case cs.State.Terminated != nil:
		t := cs.State.Terminated
		return true, fmt.Errorf("its container exited at once (code %d, %s %s): %w", t.ExitCode, t.Reason, t.Message, engine.ErrNotRunning)
	case cs.State.Waiting != nil && imageReasons[cs.State.Waiting.Reason]:
		return true, fmt.Errorf("image %s: %s: %s: %w", cs.Image, cs.State.Waiting.Reason, cs.State.Waiting.Message, engine.ErrNotFound)
	case cs.State.Waiting != nil && strings.HasSuffix(cs.State.Waiting.Reason, "Error"):
		return true, fmt.Errorf("%s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
	}
	return false, nil
}

func containerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == containerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// Remove deletes the sandbox's pod at once (no grace: its processes are
// killed) and returns when the API server no longer has it. A missing pod
// is no error.
func (e *Engine) Remove(ctx context.Context, name string) error {
	zero := int64(0)
	pn := podName(name)
	if e.agents != nil {
		e.agents.forget(name, pn)
	}
	err := e.cs.CoreV1().Pods(e.ns).Delete(ctx, pn, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return wrap(err, "remove "+name)
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		_, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, pn, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return wrap(err, "remove "+name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove %s: its pod is still there: %w", name, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// Inspect says what the sandbox's pod is doing.
func (e *Engine) Inspect(ctx context.Context, name string) (engine.State, error) {
	p, err := e.pod(ctx, name)
	if err != nil {
		return engine.State{}, err
	}
	return stateOf(p), nil
}

// stateOf maps a pod onto the contract's states: gated or pending is
// created; a running container is running (paused when its processes are
// stopped); a terminated one, an ended pod or one being deleted is exited.
func stateOf(p *corev1.Pod) engine.State {
	st := engine.State{Status: engine.Created, IP: p.Status.PodIP, Labels: labelsOf(p)}
	cs := containerStatus(p)
	switch {
	case p.DeletionTimestamp != nil:
		st.Status = engine.Exited
	case cs != nil && cs.State.Terminated != nil:
		st.Status, st.ExitCode = engine.Exited, int(cs.State.Terminated.ExitCode)
	case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
		st.Status, st.ExitCode = engine.Exited, 137
	case cs != nil && cs.State.Running != nil:
		st.Status = engine.Running
		if p.Annotations[annPaused] != "" {
			st.Status = engine.Paused
		}
	}
	return st
}

// labelsOf are the labels the pod was made with.
func labelsOf(p *corev1.Pod) map[string]string {
	var l map[string]string
	if s := p.Annotations[annLabels]; s != "" && json.Unmarshal([]byte(s), &l) == nil {
		return l
	}
	l = maps.Clone(p.Labels)
	delete(l, LabelManaged)
	return l
}

// nameOf is the container name the pod was made for.
func nameOf(p *corev1.Pod) string {
	if n := p.Annotations[annName]; n != "" {
		return n
	}
	return p.Name
}

// selector selects the engine's pods by the labels Kubernetes can select
// by; matches checks all of them (also those kept only in the annotation).
func selector(want map[string]string) string {
	sel := labels.Set{LabelManaged: managedBy}
	for k, v := range want {
		if validLabel(k, v) {
			sel[k] = v
		}
	}
	return labels.SelectorFromSet(sel).String()
}

func matches(p *corev1.Pod, want map[string]string) bool {
	have := labelsOf(p)
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// List returns the engine's pods carrying every label given.
func (e *Engine) List(ctx context.Context, want map[string]string) ([]engine.Container, error) {
	pods, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: selector(want)})
	if err != nil {
		return nil, wrap(err, "list pods")
	}
	var out []engine.Container
	for i := range pods.Items {
		p := &pods.Items[i]
		if !matches(p, want) {
			continue
		}
		st := stateOf(p)
		out = append(out, engine.Container{Name: nameOf(p), Labels: st.Labels, Status: st.Status})
	}
	return out, nil
}

// UpdateLimits resizes the sandbox's pod in place (the pods/resize
// subresource) and, when it runs, waits until the kubelet has applied the
// new limits.
func (e *Engine) UpdateLimits(ctx context.Context, name string, nanoCPUs, memoryBytes int64) error {
	p, err := e.pod(ctx, name)
	if err != nil {
		return err
	}
	old := p.Spec.Containers[0].Resources
	disk := old.Limits[corev1.ResourceEphemeralStorage]
	r := e.resources(nanoCPUs, memoryBytes, disk.Value())
	// Ephemeral storage cannot be resized in place: keep it as it was.
	if q, ok := old.Limits[corev1.ResourceEphemeralStorage]; ok {
		r.Limits[corev1.ResourceEphemeralStorage] = q
	}
	if q, ok := old.Requests[corev1.ResourceEphemeralStorage]; ok {
		r.Requests[corev1.ResourceEphemeralStorage] = q
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"containers": []any{
		map[string]any{"name": containerName, "resources": r},
	}}})
	if err != nil {
		return err
	}
	p, err = e.cs.CoreV1().Pods(e.ns).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "resize")
	if err != nil {
		return wrap(err, "resize "+name)
	}
	if stateOf(p).Status != engine.Running && stateOf(p).Status != engine.Paused {
		return nil
	}
	want := r.Limits[corev1.ResourceMemory]
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		if cs := containerStatus(p); cs != nil && cs.Resources != nil {
			if have, ok := cs.Resources.Limits[corev1.ResourceMemory]; ok && have.Cmp(want) == 0 {
				return nil
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodResizePending && c.Reason == corev1.PodReasonInfeasible {
				return fmt.Errorf("resize %s: %w: %s", name, ErrUnschedulable, c.Message)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resize %s: the node has not applied it: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		if p, err = e.pod(ctx, name); err != nil {
			return err
		}
	}
}
