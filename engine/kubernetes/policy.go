package kubernetes

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyName is the NetworkPolicy that keeps sandboxes apart.
const PolicyName = "rtemu-sandbox-isolation"

// isolation is the namespace's NetworkPolicy for the engine's pods: they
// take connections only from pods that are not sandboxes (rtemu in the
// cluster, an ingress), never from each other. A sandbox's own outbound
// connections are not restricted. Port-forwards (DialPort) do not cross the
// pod network, so the policy does not touch them.
//
// A policy is only as good as the cluster's network plugin: one that does
// not enforce NetworkPolicy (the bridge plugin of the test cluster,
// flannel) accepts it and lets everything through.
func isolation() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName, Labels: map[string]string{LabelManaged: managedBy}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelManaged: managedBy}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{},
					PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
						Key: LabelManaged, Operator: metav1.LabelSelectorOpNotIn, Values: []string{managedBy},
					}}},
				}},
			}},
		},
	}
}

// ensurePolicy makes the namespace's isolation policy once per engine. A
// refusal (no RBAC for networkpolicies) is logged once, not fatal: the
// sandbox is still made, unisolated, as on a plugin that does not enforce
// policies.
func (e *Engine) ensurePolicy(ctx context.Context) {
	e.policyOnce.Lock()
	defer e.policyOnce.Unlock()
	if e.policyDone {
		return
	}
	_, err := e.cs.NetworkingV1().NetworkPolicies(e.ns).Create(ctx, isolation(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		e.log.Warn("cannot make the NetworkPolicy that isolates sandboxes from each other", "namespace", e.ns, "err", err)
		if unavailable(err) {
			return // tried again by the next create
		}
	}
	e.policyDone = true
}
