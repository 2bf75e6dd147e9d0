package kubernetes

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Report is what `rtemu doctor` says of the cluster.
type Report struct {
	Host      string
	Version   string
	Namespace string
	// NamespaceMissing: the namespace does not exist (pods cannot be made).
	NamespaceMissing bool
	Nodes            []Node
	// Permissions are the verbs rtemu needs, each with whether the
	// cluster allows them to rtemu's identity (SelfSubjectAccessReview).
	Permissions []Permission
}

// Node is one node of the cluster.
type Node struct {
	Name, Runtime, Kubelet string
	Ready                  bool
	CPUs                   int64
	MemoryBytes            int64
}

// Permission is one verb on one resource in the namespace.
type Permission struct {
	Verb, Resource, Subresource, Group string
	Allowed                            bool
	Reason                             string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Group != "" {
		r += "." + p.Group
	}
	return p.Verb + " " + r
}

// needed are the verbs rtemu uses (docs/kubernetes.md lists them as a Role).
var needed = []Permission{
	{Verb: "create", Resource: "pods"}, {Verb: "get", Resource: "pods"}, {Verb: "list", Resource: "pods"},
	{Verb: "watch", Resource: "pods"}, {Verb: "patch", Resource: "pods"}, {Verb: "delete", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"}, {Verb: "create", Resource: "pods", Subresource: "portforward"},
	{Verb: "patch", Resource: "pods", Subresource: "resize"},
	{Verb: "get", Resource: "networkpolicies", Group: "networking.k8s.io"},
	{Verb: "create", Resource: "networkpolicies", Group: "networking.k8s.io"},
}

// ClusterReport asks the cluster what doctor reports: its version, its
// nodes, the namespace and rtemu's permissions in it. An error means the
// API server did not answer.
func (e *Engine) ClusterReport(ctx context.Context) (Report, error) {
	r := Report{Host: e.cfg.Host, Namespace: e.ns}
	v, err := e.cs.ServerVersion(ctx)
	if err != nil {
		return r, wrap(err, "ping the API server")
	}
	r.Version = v.GitVersion
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{}); err != nil {
		r.NamespaceMissing = apierrors.IsNotFound(err)
	}
	if nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range nodes.Items {
			node := Node{Name: n.Name, Runtime: n.Status.NodeInfo.ContainerRuntimeVersion, Kubelet: n.Status.NodeInfo.KubeletVersion,
				CPUs: n.Status.Allocatable.Cpu().Value(), MemoryBytes: n.Status.Allocatable.Memory().Value()}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					node.Ready = c.Status == corev1.ConditionTrue
				}
			}
			r.Nodes = append(r.Nodes, node)
		}
	}
	for _, p := range needed {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: e.ns, Verb: p.Verb, Resource: p.Resource,
				Subresource: p.Subresource, Group: p.Group}}}
		got, err := e.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			p.Reason = err.Error()
		} else {
			p.Allowed, p.Reason = got.Status.Allowed, strings.TrimSpace(got.Status.Reason)
		}
		r.Permissions = append(r.Permissions, p)
	}
	return r, nil
}

// String is the node as doctor prints it.
func (n Node) String() string {
	ready := "ready"
	if !n.Ready {
		ready = "NOT ready"
	}
	return fmt.Sprintf("%s (%s, kubelet %s, %s, %d CPUs, %d MiB)", n.Name, ready, n.Kubelet, n.Runtime, n.CPUs, n.MemoryBytes>>20)
}
