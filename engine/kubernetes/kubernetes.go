// Package kubernetes is rtemu's engine on a Kubernetes cluster: every
// sandbox is one pod, made, watched, exec'd into and reached through the API
// server with client-go. It speaks the engine contract (engine.Engine) and
// passes its conformance suite (engine/enginetest)
// against a real cluster, except for the cases contract_test.go lists as
// unmodelled, each with its reason.
//
// How each part of the contract maps onto the cluster (docs/kubernetes.md
// has the operator's view):
//
//   - Create makes the pod with a scheduling gate (gate): it exists, is
//     listed and inspected as created, but no node runs it. Start lifts the
//     gate and waits until the container runs, failing clearly when the
//     scheduler finds no node for it or the node cannot get the image.
//   - Pause sends SIGSTOP to every process of the sandbox but its PID 1 (the
//     pod's pause process: the pod shares one process namespace), from an
//     exec, and marks the pod (annotation) so that execs and dials are
//     refused while it is paused; Unpause sends SIGCONT. Memory is kept, as
//     the contract says; the CPU limit stays reserved.
//   - Exec runs a command on rtemu's exec agent in the pod, on an exec
//     stream kept open (agent.go); a TTY, or a pod the agent cannot run
//     in, takes the pods/exec subresource (WebSocket, SPDY as the fallback);
//     its environment and working directory go through a small /bin/sh
//     wrapper, because the subresource has neither. The API server cannot
//     kill an exec: a cancelled one is killed by its tag from a second exec.
//   - DialPort is the pods/portforward subresource, which reaches servers
//     bound to 127.0.0.1 in the pod.
//   - Stats and DiskUsed read the sandbox's cgroup and root file system from
//     an exec (no metrics-server needed).
package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/distribution/reference"

	"github.com/rtemu-dev/rtemu/engine"
)

// Capabilities says what this engine can do (engine.Capabilities):
//
//   - Pause: true. Pause freezes every process of the sandbox but PID 1 with
//     SIGSTOP from an exec (kill -STOP -1); memory is kept and the processes
//     go on where they were after Unpause. It is not the cgroup freezer: a
//     process that handles SIGCONT sees one.
//   - SharedFolders: only when the engine is told how the pods see rtemu's
//     workspace folders: Config.WorkspaceClaim (a PersistentVolumeClaim
//     holding them, which rtemu mounts too; a mount is the claim with the
//     workspace's folder as subPath) or Config.HostFolders (the cluster's
//     only node sees rtemu's folders at the same paths: a single-node
//     cluster on rtemu's own host, like the test cluster; mounts are
//     hostPath volumes).
//   - DiskQuota: false. A disk size becomes the pod's ephemeral-storage
//     limit, which the kubelet enforces by evicting the pod, not by failing
//     the write; rtemu's disk watch measures instead.
//   - PeerNames: false (Aliases are ignored; no cluster DNS for pods).
//   - UpdateLimits: true (in-place pod resize, waited for).
//   - AgentLink: false. Commands run on rtemu's exec agent, copied into
//     the pod and kept on exec streams (agent.go); no socket link.
//   - ImageBuild: false (templates map to image names the nodes have or
//     pull).
//   - Snapshot: false (no commit of a container, no image save or load in
//     the Kubernetes API).
//   - CPUsCappedToHost, StopsContainersWhenDown: false. The scheduler, not
//     rtemu, checks requests against the nodes (an over-request fails the
//     create); an unreachable API server does not end the pods.
//
// Nothing is paced per sandbox (each command is its own API request);
// creates are bounded to 8 at once, which the API server and one kubelet
// take without slowing their other calls.
func (e *Engine) Capabilities() engine.Capabilities {
	return engine.Capabilities{
		Name:           "Kubernetes",
		Pause:          true,
		SharedFolders:  e.host || e.claim != "",
		UpdateLimits:   true,
		ProvisionSlots: 8,
	}
}

// Labels and annotations the engine puts on its pods.
const (
	// LabelManaged marks every pod of the engine; the NetworkPolicy selects
	// by it.
	LabelManaged = "app.kubernetes.io/managed-by"
	managedBy    = "rtemu"
	// annName keeps the container name the pod was made for (the pod's own
	// name is that name made a valid Kubernetes name).
	annName = "rtemu.dev/name"
	// annLabels keeps every label of the spec, also those Kubernetes would
	// not take as a label (values over 63 characters, other characters).
	annLabels = "rtemu.dev/labels"
	// annPaused is set while the sandbox's processes are stopped.
	annPaused = "rtemu.dev/paused"
	// gate holds a created pod back from scheduling until Start.
	gate = "rtemu.dev/start"
	// containerName is the one container of a sandbox pod.
	containerName = "sandbox"
)

// ErrUnschedulable: no node of the cluster can take the sandbox (it asks
// for more CPU or memory than any node has free or at all).
var ErrUnschedulable = errors.New("no node of the cluster can run the sandbox")

// Config wires an Engine.
type Config struct {
	// REST is the cluster's client configuration; nil finds it as kubectl
	// does (KUBECONFIG, the current context, the in-cluster config).
	REST *rest.Config
	// Namespace holds the sandboxes' pods ("default" when empty).
	Namespace string
	// PullPolicy is the pods' image pull policy: IfNotPresent (the
	// default) lets nodes pull from registries; Never uses only images the
	// nodes have (an offline cluster), and then Create refuses an image no
	// node reports.
	PullPolicy corev1.PullPolicy
	// RequestRatio is the share of a sandbox's CPU and memory limits it
	// requests (what the scheduler reserves): 0 takes 0.1, so sandboxes
	// overcommit a node as they do a Docker host; 1 reserves them whole.
	RequestRatio float64
	// HostFolders says the cluster's node sees rtemu's folders at the same
	// paths (a single-node cluster on rtemu's host): mounts become hostPath
	// volumes and SharesFolder answers true. Off, mounts are refused.
	HostFolders bool
	// WorkspaceClaim is a PersistentVolumeClaim of the namespace whose
	// root is rtemu's folder WorkspaceRoot (rtemu mounts the same volume
	// there): a mount of a folder under WorkspaceRoot is the claim with the
	// folder as its subPath. On a cluster of several nodes the claim must
	// be ReadWriteMany (NFS, CephFS, a cloud file share). Empty: none.
	WorkspaceClaim string
	// WorkspaceRoot is the folder of rtemu's that WorkspaceClaim's root is.
	WorkspaceRoot string
	// NoAgent runs every command by an API-server exec, without the exec
	// agent in the pod (agent.go).
	NoAgent bool
	// AgentCache is where agents built for the nodes are kept ("": the
	// user's cache dir, agent/dist).
	AgentCache string
	// Logger receives the engine's own notes (nil: slog.Default()).
	Logger *slog.Logger
}

// Engine runs sandboxes as pods of one namespace.
type Engine struct {
	cfg   *rest.Config
	cs    *clientset
	ns    string
	pull  corev1.PullPolicy
	ratio float64
	host  bool
	claim string // WorkspaceClaim
	root  string // WorkspaceRoot, cleaned
	log   *slog.Logger

	policyOnce sync.Mutex
	policyDone bool

	agents *agents // nil: no agent in pods
}

// New connects to the cluster (it does not call it yet: Ping does).
func New(c Config) (*Engine, error) {
	rc := c.REST
	if rc == nil {
		var err error
		rc, err = LoadConfig("")
		if err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	if rc.QPS == 0 {
		// Every exec and inspect is a request: client-go's default of 5/s
		// would queue a busy rtemu behind itself.
		rc.QPS, rc.Burst = 100, 200
	}
	cs, err := newClientset(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	e := &Engine{cfg: rc, cs: cs, ns: c.Namespace, pull: c.PullPolicy, ratio: c.RequestRatio, host: c.HostFolders,
		claim: c.WorkspaceClaim, log: c.Logger}
	if !c.NoAgent {
		e.agents = newAgents(e, c.AgentCache)
	}
	if e.claim != "" {
		if c.WorkspaceRoot == "" || !filepath.IsAbs(c.WorkspaceRoot) {
			return nil, fmt.Errorf("kubernetes: the workspace claim %s needs the absolute folder it holds (WorkspaceRoot), not %q", e.claim, c.WorkspaceRoot)
		}
		e.root = filepath.Clean(c.WorkspaceRoot)
	}
	if e.ns == "" {
		e.ns = "default"
	}
	if e.pull == "" {
		e.pull = corev1.PullIfNotPresent
	}
	if e.ratio <= 0 || e.ratio > 1 {
		e.ratio = 0.1
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	return e, nil
}

// LoadConfig finds the cluster as kubectl does: the kubeconfig file given
// (or KUBECONFIG, or ~/.kube/config) and its current context, else the
// in-cluster service account.
func LoadConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		if ic, ierr := rest.InClusterConfig(); ierr == nil {
			return ic, nil
		}
		return nil, fmt.Errorf("no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster): %w", err)
	}
	return rc, nil
}

// Close ends the streams to the agents in pods; the pods stay.
func (e *Engine) Close() error {
	if e.agents != nil {
		e.agents.close()
	}
	return nil
}

// Namespace is where the engine keeps its pods.
func (e *Engine) Namespace() string { return e.ns }

// Ping asks the API server for its version and the nodes for their CPUs:
// CPUs is the largest node's allocatable CPU, the most one sandbox can use.
func (e *Engine) Ping(ctx context.Context) (engine.Info, error) {
	v, err := e.cs.ServerVersion(ctx)
	if err != nil {
		return engine.Info{}, wrap(err, "ping the API server")
	}
	nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return engine.Info{}, wrap(err, "list nodes")
	}
	info := engine.Info{Version: v.GitVersion, APIVersion: "v1", Host: e.cfg.Host, OS: v.Platform}
	for _, n := range nodes.Items {
		if c := n.Status.Allocatable.Cpu().Value(); int(c) > info.CPUs {
			info.CPUs = int(c)
		}
		if n.Status.NodeInfo.OperatingSystem != "" {
			info.OS = n.Status.NodeInfo.OperatingSystem
		}
	}
	if info.CPUs == 0 {
		return info, fmt.Errorf("the cluster has no node with CPUs to run sandboxes on: %w", engine.ErrUnavailable)
	}
	return info, nil
}

// ImagePresent says whether a node of the cluster reports the image (the
// kubelet lists a node's images in its status, refreshed about every 30 s,
// at most 50 of them by default: nodeStatusMaxImages).
func (e *Engine) ImagePresent(ctx context.Context, ref string) (bool, error) {
	want := normalImage(ref)
	nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, wrap(err, "list nodes")
	}
	for _, n := range nodes.Items {
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				if name == want || normalImage(name) == want {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// Pull leaves pulling to the nodes, which pull an image when a pod needs it
// (pull policy IfNotPresent). With pull policy Never nothing can be pulled.
func (e *Engine) Pull(_ context.Context, ref string, progress func(string)) error {
	if e.pull == corev1.PullNever {
		return fmt.Errorf("image %s: this cluster's pods never pull (pull policy Never): load it into the nodes' container runtime: %w", ref, engine.ErrNotFound)
	}
	if progress != nil {
		progress("the cluster's node pulls " + ref + " when the sandbox's pod starts")
	}
	return nil
}

// normalImage is an image reference as the kubelet reports it
// (docker.io/library/busybox:1.35 for busybox:1.35).
func normalImage(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.TagNameOnly(n).String()
}

// podName is the container name as a valid pod name (a DNS subdomain,
// lowercase): the name itself when it is one, else the name made one with a
// short hash of the original, so that two names never meet.
func podName(name string) string {
	return dnsName(name, 253)
}

// hostName is a hostname as a pod's hostname (a DNS label).
func hostName(name string) string {
	return dnsName(name, 63)
}

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsInvalid = regexp.MustCompile(`[^-a-z0-9]+`)
)

func dnsName(name string, max int) string {
	if len(name) <= max && dnsLabel.MatchString(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:4])
	s := strings.Trim(dnsInvalid.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > max-len(suffix) {
		s = strings.TrimRight(s[:max-len(suffix)], "-")
	}
	if s == "" {
		s = "rtemu"
	}
	return s + suffix
}

// wrap maps what client-go said onto the contract's errors.
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", what, engine.ErrNotFound, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w: %v", what, engine.ErrNameInUse, err)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %v", what, engine.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unavailable tells an API server that does not answer (or answers that it
// cannot serve) from one that refused the request.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) {
		return true
	}
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// pod gets the sandbox's pod.
func (e *Engine) pod(ctx context.Context, name string) (*corev1.Pod, error) {
	p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, podName(name), metav1.GetOptions{})
	if err != nil {
		return nil, wrap(err, "get pod of "+name)
	}
	return p, nil
}

// running gets the pod and fails unless its container runs and is not
// paused.
func (e *Engine) running(ctx context.Context, name string) (*corev1.Pod, error) {
	p, err := e.pod(ctx, name)
	if err != nil {
		return nil, err
	}
	if st := stateOf(p); st.Status != engine.Running {
		return nil, fmt.Errorf("%s is %s: %w", name, st.Status, engine.ErrNotRunning)
	}
	return p, nil
}

// live gets the pod and fails unless its container runs, paused or not
// (a paused sandbox's processes are stopped, but a new exec runs).
func (e *Engine) live(ctx context.Context, name string) (*corev1.Pod, error) {
	p, err := e.pod(ctx, name)
	if err != nil {
		return nil, err
	}
	if st := stateOf(p); st.Status != engine.Running && st.Status != engine.Paused {
		return nil, fmt.Errorf("%s is %s: %w", name, st.Status, engine.ErrNotRunning)
	}
	return p, nil
}
