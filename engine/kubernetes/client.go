package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// clientset is the part of the Kubernetes API the engine uses: pods, nodes
// and namespaces (core/v1), network policies (networking.k8s.io/v1), access
// reviews (authorization.k8s.io/v1) and the server's version. Its calls
// have the shape of client-go's typed clientset (cs.CoreV1().Pods(ns).Get
// …) and make the same requests as its generated clients, on a scheme that
// knows only these groups.
//
// client-go's own clientset (k8s.io/client-go/kubernetes) registers every
// API group of Kubernetes in a package-level scheme when the program
// starts, and links in a typed client and apply configuration for each:
// in rtemu's executable that was about two thirds of its code, and its
// start-up touched most of it, whatever the engine (BENCHMARKS.md, round
// six: rtemu's base memory).
type clientset struct {
	core, networking, authorization rest.Interface
	params                          runtime.ParameterCodec
}

// newClientset makes the REST clients of the groups the engine uses, on one
// HTTP client and one rate limiter, as client-go's NewForConfig does.
func newClientset(rc *rest.Config) (*clientset, error) {
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, authorizationv1.AddToScheme} {
		if err := add(sch); err != nil {
			return nil, err
		}
	}
	// The options types (ListOptions, GetOptions …) as unversioned
	// parameters of every group, as client-go's scheme has them.
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(sch)

	c := *rc
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, err
	}
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("burst must be above 0 with a QPS of %v", c.QPS)
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	cs := &clientset{params: runtime.NewParameterCodec(sch)}
	for _, g := range []struct {
		gv   schema.GroupVersion
		path string
		to   *rest.Interface
	}{
		{corev1.SchemeGroupVersion, "/api", &cs.core},
		{networkingv1.SchemeGroupVersion, "/apis", &cs.networking},
		{authorizationv1.SchemeGroupVersion, "/apis", &cs.authorization},
	} {
		gc := c
		gc.GroupVersion, gc.APIPath = &g.gv, g.path
		gc.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(sch, codecs).WithoutConversion()
		rcl, err := rest.RESTClientForConfigAndClient(&gc, hc)
		if err != nil {
			return nil, err
		}
		*g.to = rcl
	}
	return cs, nil
}

// ServerVersion is the API server's version (GET /version).
func (c *clientset) ServerVersion(ctx context.Context) (*version.Info, error) {
	body, err := c.core.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var v version.Info
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("the API server's version: %w", err)
	}
	return &v, nil
}

// CoreV1 is the core group's resources that the engine uses.
func (c *clientset) CoreV1() coreV1 { return coreV1{c} }

// NetworkingV1 is networking.k8s.io/v1's network policies.
func (c *clientset) NetworkingV1() networkingV1 { return networkingV1{c} }

// AuthorizationV1 is authorization.k8s.io/v1's access reviews.
func (c *clientset) AuthorizationV1() authorizationV1 { return authorizationV1{c} }

type coreV1 struct{ c *clientset }

// RESTClient is the core group's REST client (for subresources: exec,
// portforward).
func (g coreV1) RESTClient() rest.Interface { return g.c.core }

func (g coreV1) Pods(ns string) kind[*corev1.Pod, *corev1.PodList] {
	return kind[*corev1.Pod, *corev1.PodList]{g.c.core, g.c.params, "pods", ns,
		func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} }}
}

func (g coreV1) Nodes() kind[*corev1.Node, *corev1.NodeList] {
	return kind[*corev1.Node, *corev1.NodeList]{g.c.core, g.c.params, "nodes", "",
		func() *corev1.Node { return &corev1.Node{} }, func() *corev1.NodeList { return &corev1.NodeList{} }}
}

func (g coreV1) Namespaces() kind[*corev1.Namespace, *corev1.NamespaceList] {
	return kind[*corev1.Namespace, *corev1.NamespaceList]{g.c.core, g.c.params, "namespaces", "",
		func() *corev1.Namespace { return &corev1.Namespace{} }, func() *corev1.NamespaceList { return &corev1.NamespaceList{} }}
}

type networkingV1 struct{ c *clientset }

func (g networkingV1) NetworkPolicies(ns string) kind[*networkingv1.NetworkPolicy, *networkingv1.NetworkPolicyList] {
	return kind[*networkingv1.NetworkPolicy, *networkingv1.NetworkPolicyList]{g.c.networking, g.c.params, "networkpolicies", ns,
		func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} },
		func() *networkingv1.NetworkPolicyList { return &networkingv1.NetworkPolicyList{} }}
}

type authorizationV1 struct{ c *clientset }

// SelfSubjectAccessReviews has no list (L is never made).
func (g authorizationV1) SelfSubjectAccessReviews() kind[*authorizationv1.SelfSubjectAccessReview, *metav1.Status] {
	return kind[*authorizationv1.SelfSubjectAccessReview, *metav1.Status]{g.c.authorization, g.c.params, "selfsubjectaccessreviews", "",
		func() *authorizationv1.SelfSubjectAccessReview { return &authorizationv1.SelfSubjectAccessReview{} }, nil}
}

// kind is one resource of a group, in a namespace ("": the cluster's),
// with the calls of client-go's generated clients, made the same way
// (protobuf on the wire, as client-go does for the built-in types). Not
// client-go's gentype: that links in server-side apply's type machinery
// (kube-openapi, gnostic, protobuf's reflection) for its fake clients.
type kind[T interface {
	runtime.Object
	GetName() string
}, L runtime.Object] struct {
	client   rest.Interface
	params   runtime.ParameterCodec
	resource string
	ns       string
	newT     func() T
	newL     func() L
}

func (r kind[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	out := r.newT()
	err := r.client.Get().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).Name(name).
		VersionedParams(&opts, r.params).Do(ctx).Into(out)
	return out, err
}

func (r kind[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := r.newL()
	err := r.client.Get().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).
		VersionedParams(&opts, r.params).Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

func (r kind[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.client.Get().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).
		VersionedParams(&opts, r.params).Timeout(timeoutOf(opts)).Watch(ctx)
}

func (r kind[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	out := r.newT()
	err := r.client.Post().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).
		VersionedParams(&opts, r.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

func (r kind[T, L]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	out := r.newT()
	err := r.client.Put().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).Name(obj.GetName()).
		VersionedParams(&opts, r.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

func (r kind[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.client.Delete().UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).Name(name).
		Body(&opts).Do(ctx).Error()
}

func (r kind[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	out := r.newT()
	err := r.client.Patch(pt).UseProtobufAsDefault().NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).Name(name).
		SubResource(subresources...).VersionedParams(&opts, r.params).Body(data).Do(ctx).Into(out)
	return out, err
}

func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
