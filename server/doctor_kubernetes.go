package server

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
)

// doctorKubernetes checks the cluster --engine kubernetes would use: where
// it is, its version and nodes, the namespace, the permissions rtemu needs
// there, what the engine can do on it, and the templates' images; false
// when there is no cluster to check more against.
func doctorKubernetes(ctx context.Context, cfg config.Config, w io.Writer, report func(bool, string, ...any)) bool {
	made, err := newEngine(ctx, cfg, "", nil)
	if err != nil {
		report(false, "kubernetes: %v", err)
		fmt.Fprintln(w, "hint kubernetes: rtemu finds the cluster as kubectl does: --kubeconfig, KUBECONFIG, ~/.kube/config's current context, or the in-cluster service account")
		return false
	}
	k := made.Engine.(*kubernetes.Engine)
	r, err := k.ClusterReport(ctx)
	if err != nil {
		report(false, "kubernetes: the API server at %s does not answer: %v", r.Host, err)
		return false
	}
	report(true, "kubernetes: API server %s, Kubernetes %s", r.Host, r.Version)
	if r.NamespaceMissing {
		report(false, "kubernetes: namespace %s does not exist (kubectl create namespace %s, or --kube-namespace)", r.Namespace, r.Namespace)
	} else {
		report(true, "kubernetes: namespace %s", r.Namespace)
	}
	ready := 0
	for _, n := range r.Nodes {
		if n.Ready {
			ready++
		}
		fmt.Fprintf(w, "info node %s\n", n)
	}
	report(ready > 0, "kubernetes: %d of %d node(s) ready", ready, len(r.Nodes))
	var refused []string
	for _, p := range r.Permissions {
		if !p.Allowed {
			refused = append(refused, p.String())
		}
	}
	if len(refused) == 0 {
		report(true, "kubernetes: rtemu may do all it needs in %s (%d verbs, docs/kubernetes.md lists them as a Role)", r.Namespace, len(r.Permissions))
	} else {
		report(false, "kubernetes: rtemu may not %s in %s (docs/kubernetes.md has the Role to bind)", strings.Join(refused, ", "), r.Namespace)
	}
	fmt.Fprintf(w, "info capabilities: %s\n", capabilityLine(k.Capabilities()))
	fmt.Fprintln(w, "info network isolation: rtemu makes the NetworkPolicy "+kubernetes.PolicyName+"; it keeps sandboxes apart only where the cluster's network plugin enforces policies (Calico, Cilium, …; not the bridge or flannel plugins)")
	for _, t := range cfg.Templates {
		present, err := k.ImagePresent(ctx, t.Image)
		switch {
		case err != nil:
			report(false, "template %s: image %s: %v", t.Name, t.Image, err)
		case present:
			report(true, "template %s: image %s on a node", t.Name, t.Image)
		default:
			fmt.Fprintf(w, "warn template %s: no node reports image %s: with --kube-pull-policy IfNotPresent the node pulls it at the first create; offline, import it into the nodes' runtime (rtemu templates build is Docker's)\n", t.Name, t.Image)
		}
	}
	return true
}

// capabilityLine says what an engine can do, in one line.
func capabilityLine(c engine.Capabilities) string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf("pause keeping memory %s, workspace mounts %s, disk size enforced %s, sandboxes reach each other by name %s, limits changed in place %s, template builds %s",
		yes(c.Pause), yes(c.SharedFolders), yes(c.DiskQuota), yes(c.PeerNames), yes(c.UpdateLimits), yes(c.ImageBuild))
}
