package kubernetes

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rtemu-dev/rtemu/engine"
)

// measure prints what Stats needs, read in the sandbox from its cgroup
// (v2 or v1) and its root file system, as name=value lines: memory in use
// and the inactive page cache, the CPU time used in nanoseconds and the
// uptime in seconds before and after a fifth of a second, and the disk use
// in KiB. Only the sleep and du are programs; the rest are shell builtins.
const measure = `c=/sys/fs/cgroup
cpu() {
  if [ -f $c/cpu.stat ]; then
    while read -r k v; do [ "$k" = usage_usec ] && echo $((v * 1000)) && return; done < $c/cpu.stat
  fi
  for f in $c/cpuacct/cpuacct.usage $c/cpu,cpuacct/cpuacct.usage; do
    [ -f $f ] && read -r v < $f && echo "$v" && return
  done
  echo 0
}
if [ -f $c/memory.current ]; then
  read -r m < $c/memory.current; s=$c/memory.stat; key=inactive_file
else
  read -r m < $c/memory/memory.usage_in_bytes; s=$c/memory/memory.stat; key=total_inactive_file
fi
while read -r k v; do [ "$k" = $key ] && echo "inactive=$v"; done < $s
echo "mem=$m"
read -r u0 _ < /proc/uptime; echo "cpu0=$(cpu)"
sleep 0.2 2>/dev/null || sleep 1
read -r u1 _ < /proc/uptime; echo "cpu1=$(cpu)"
echo "up0=$u0"; echo "up1=$u1"
[ -n "$1" ] && echo "disk=$(du -sxk / 2>/dev/null | { read -r k _; echo "$k"; })"
exit 0`

// Stats measures the sandbox from inside: CPU over a fifth of a second and
// memory from its cgroup (no metrics-server needed, and finer than its 15 s
// samples), disk from its root file system; the limit and the start time
// from the pod.
func (e *Engine) Stats(ctx context.Context, name string) (engine.Stats, error) {
	p, err := e.live(ctx, name)
	if err != nil {
		return engine.Stats{}, err
	}
	out, err := e.run(ctx, p.Name, measure, "disk")
	if err != nil {
		return engine.Stats{}, fmt.Errorf("stats of %s: %w", name, err)
	}
	v := values(out)
	st := engine.Stats{MemoryUsedBytes: max(0, v["mem"]-v["inactive"]), MemoryLimitBytes: memoryLimit(p), DiskUsedBytes: v["disk"] << 10}
	if cs := containerStatus(p); cs != nil && cs.State.Running != nil {
		st.StartedAt = cs.State.Running.StartedAt.Time
	}
	up0, _ := strconv.ParseFloat(valueText(out, "up0"), 64)
	up1, _ := strconv.ParseFloat(valueText(out, "up1"), 64)
	if dt := up1 - up0; dt > 0 {
		st.CPUCores = max(0, float64(v["cpu1"]-v["cpu0"])/1e9/dt)
	}
	return st, nil
}

// memoryLimit is the container's memory limit as the kubelet applied it (a
// resize shows there once done), else as the pod asks.
func memoryLimit(p *corev1.Pod) int64 {
	if cs := containerStatus(p); cs != nil && cs.Resources != nil {
		if q, ok := cs.Resources.Limits[corev1.ResourceMemory]; ok {
			return q.Value()
		}
	}
	q := p.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	return q.Value()
}

func values(out string) map[string]int64 {
	m := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m
}

func valueText(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// DiskLimits: the engine does not hold a sandbox to a disk size by failing
// its writes. A size becomes the pod's ephemeral-storage limit, which the
// kubelet enforces by evicting the pod some seconds after it is passed;
// rtemu's disk watch measures in the meantime.
func (e *Engine) DiskLimits(ctx context.Context, _ string, _ map[string]string) (engine.DiskLimits, error) {
	nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return engine.DiskLimits{}, wrap(err, "list nodes")
	}
	driver := "kubelet ephemeral storage"
	if len(nodes.Items) > 0 && nodes.Items[0].Status.NodeInfo.ContainerRuntimeVersion != "" {
		driver += " (" + nodes.Items[0].Status.NodeInfo.ContainerRuntimeVersion + ")"
	}
	return engine.DiskLimits{StorageDriver: driver,
		Why: "Kubernetes enforces a pod's ephemeral-storage limit by evicting the pod, not by failing its writes"}, nil
}

// DiskUsed measures the sandbox's root file system from inside (du).
func (e *Engine) DiskUsed(ctx context.Context, name string) (int64, error) {
	p, err := e.live(ctx, name)
	if err != nil {
		return 0, err
	}
	out, err := e.run(ctx, p.Name, `du -sxk / 2>/dev/null | { read -r k _; echo "disk=$k"; }`)
	if err != nil {
		return 0, fmt.Errorf("disk use of %s: %w", name, err)
	}
	return values(out)["disk"] << 10, nil
}

// SharesFolder answers whether the sandboxes' pods see the folder: one
// under the workspace claim's root (Config.WorkspaceClaim), or any where
// the cluster's node sees rtemu's folders at the same paths (what the
// engine was told: Config.HostFolders; nothing in the API says where rtemu
// runs).
func (e *Engine) SharesFolder(_ context.Context, dir, _ string, _ map[string]string) (bool, error) {
	if _, ok := e.claimPath(dir); ok {
		return true, nil
	}
	return e.host, nil
}

// claimPath is the folder's path inside the workspace claim, when the
// engine has one and the folder is its root or under it.
func (e *Engine) claimPath(dir string) (string, bool) {
	if e.claim == "" {
		return "", false
	}
	rel, err := filepath.Rel(e.root, filepath.Clean(dir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
