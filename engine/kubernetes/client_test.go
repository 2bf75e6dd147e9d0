package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// request is what an API server saw of one call.
type request struct {
	Method, Path, Query, Accept, ContentType string
	Body                                     []byte
}

// apiServer records the requests made to it and answers each with JSON: a
// pod, a list of one pod, a watch event, a version, or a 404 Status for
// names starting with "missing".
func apiServer(t *testing.T) (*rest.Config, func() []request) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"), r.Header.Get("Content-Type"), body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		pod := corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "ns", ResourceVersion: "7"}}
		switch {
		case r.URL.Path == "/version":
			_ = json.NewEncoder(w).Encode(map[string]string{"gitVersion": "v1.34.4", "platform": "linux/amd64"})
		case bytes.Contains([]byte(r.URL.Path), []byte("/missing")):
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: "not found"})
		case r.URL.Query().Get("watch") == "true":
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "ADDED", "object": pod})
		case r.URL.Path == "/api/v1/namespaces/ns/pods" && r.Method == http.MethodGet:
			_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
				ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []corev1.Pod{pod}})
		case r.URL.Path == "/api/v1/nodes":
			_ = json.NewEncoder(w).Encode(corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
				Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}})
		case r.URL.Path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
			_ = json.NewEncoder(w).Encode(authorizationv1.SelfSubjectAccessReview{
				TypeMeta: metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: "authorization.k8s.io/v1"},
				Status:   authorizationv1.SubjectAccessReviewStatus{Allowed: true}})
		case r.URL.Path == "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies":
			_ = json.NewEncoder(w).Encode(networkingv1.NetworkPolicy{
				TypeMeta:   metav1.TypeMeta{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "ns"}})
		case r.URL.Path == "/api/v1/namespaces/ns":
			_ = json.NewEncoder(w).Encode(corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "ns"}})
		default:
			_ = json.NewEncoder(w).Encode(pod)
		}
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL, QPS: 100, Burst: 200}, func() []request {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
}

// TestClientsetRequests makes each call the engine makes with its own
// clientset and with client-go's, against one API server, and wants the
// same requests (method, path, query, content types, body) and answers.
func TestClientsetRequests(t *testing.T) {
	t.Parallel()
	rc, taken := apiServer(t)
	ours, err := newClientset(rc)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	secs := int64(30)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1", Labels: map[string]string{"a": "b"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	listOpts := metav1.ListOptions{LabelSelector: "a=b", ResourceVersion: "5", AllowWatchBookmarks: true, TimeoutSeconds: &secs}
	zero := int64(0)
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "ns", Verb: "create", Resource: "pods", Subresource: "exec"}}}
	policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "np"}}
	forwardURL := func(c rest.Interface) string {
		return c.Post().Resource("pods").Namespace("ns").Name("p1").SubResource("portforward").URL().String()
	}

	// Each case gives what the call answered, to compare too.
	cases := []struct {
		name         string
		ours, theirs func(ctx context.Context) (any, error)
	}{
		{"pod get",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Pods("ns").Get(ctx, "p1", metav1.GetOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Pods("ns").Get(ctx, "p1", metav1.GetOptions{})
			}},
		{"pod list",
			func(ctx context.Context) (any, error) { return ours.CoreV1().Pods("ns").List(ctx, listOpts) },
			func(ctx context.Context) (any, error) { return theirs.CoreV1().Pods("ns").List(ctx, listOpts) }},
		{"pod create",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{})
			}},
		{"pod update",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Pods("ns").Update(ctx, pod, metav1.UpdateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Pods("ns").Update(ctx, pod, metav1.UpdateOptions{})
			}},
		{"pod delete",
			func(ctx context.Context) (any, error) {
				return nil, ours.CoreV1().Pods("ns").Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: &zero})
			},
			func(ctx context.Context) (any, error) {
				return nil, theirs.CoreV1().Pods("ns").Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}},
		{"pod patch resize",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Pods("ns").Patch(ctx, "p1", types.StrategicMergePatchType, []byte(`{"spec":{}}`), metav1.PatchOptions{}, "resize")
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Pods("ns").Patch(ctx, "p1", types.StrategicMergePatchType, []byte(`{"spec":{}}`), metav1.PatchOptions{}, "resize")
			}},
		{"pod patch json",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Pods("ns").Patch(ctx, "p1", types.JSONPatchType, []byte(`[]`), metav1.PatchOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Pods("ns").Patch(ctx, "p1", types.JSONPatchType, []byte(`[]`), metav1.PatchOptions{})
			}},
		{"pod watch",
			func(ctx context.Context) (any, error) {
				w, err := ours.CoreV1().Pods("ns").Watch(ctx, listOpts)
				if err != nil {
					return nil, err
				}
				defer w.Stop()
				ev := <-w.ResultChan()
				return ev.Object, nil
			},
			func(ctx context.Context) (any, error) {
				w, err := theirs.CoreV1().Pods("ns").Watch(ctx, listOpts)
				if err != nil {
					return nil, err
				}
				defer w.Stop()
				ev := <-w.ResultChan()
				return ev.Object, nil
			}},
		{"node get",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
			}},
		{"node list",
			func(ctx context.Context) (any, error) { return ours.CoreV1().Nodes().List(ctx, metav1.ListOptions{}) },
			func(ctx context.Context) (any, error) { return theirs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}) }},
		{"namespace get",
			func(ctx context.Context) (any, error) {
				return ours.CoreV1().Namespaces().Get(ctx, "ns", metav1.GetOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.CoreV1().Namespaces().Get(ctx, "ns", metav1.GetOptions{})
			}},
		{"network policy create",
			func(ctx context.Context) (any, error) {
				return ours.NetworkingV1().NetworkPolicies("ns").Create(ctx, policy, metav1.CreateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.NetworkingV1().NetworkPolicies("ns").Create(ctx, policy, metav1.CreateOptions{})
			}},
		{"access review create",
			func(ctx context.Context) (any, error) {
				return ours.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return theirs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			}},
		{"server version",
			func(ctx context.Context) (any, error) { return ours.ServerVersion(ctx) },
			func(context.Context) (any, error) { return theirs.Discovery().ServerVersion() }},
		{"exec URL",
			func(context.Context) (any, error) {
				return ours.CoreV1().RESTClient().Post().Resource("pods").Namespace("ns").Name("p1").SubResource("exec").
					VersionedParams(&corev1.PodExecOptions{Container: "c", Command: []string{"true"}, Stdout: true}, ours.params).URL().String(), nil
			},
			func(context.Context) (any, error) {
				return theirs.CoreV1().RESTClient().Post().Resource("pods").Namespace("ns").Name("p1").SubResource("exec").
					VersionedParams(&corev1.PodExecOptions{Container: "c", Command: []string{"true"}, Stdout: true}, scheme.ParameterCodec).URL().String(), nil
			}},
		{"portforward URL",
			func(context.Context) (any, error) { return forwardURL(ours.CoreV1().RESTClient()), nil },
			func(context.Context) (any, error) { return forwardURL(theirs.CoreV1().RESTClient()), nil }},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := c.ours(ctx)
		if err != nil {
			t.Fatalf("%s: ours: %v", c.name, err)
		}
		gotReqs := taken()
		want, err := c.theirs(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: client-go: %v", c.name, err)
		}
		wantReqs := taken()
		if len(gotReqs) != len(wantReqs) {
			t.Fatalf("%s: %d requests, client-go made %d", c.name, len(gotReqs), len(wantReqs))
		}
		for i := range gotReqs {
			g, w := gotReqs[i], wantReqs[i]
			if g.Method != w.Method || g.Path != w.Path || g.Query != w.Query || g.Accept != w.Accept ||
				g.ContentType != w.ContentType || !bytes.Equal(g.Body, w.Body) {
				t.Errorf("%s: request\n%+v\nclient-go's\n%+v", c.name, g, w)
			}
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s: answered %s, client-go %s", c.name, gj, wj)
		}
	}
}

// TestClientsetNotFound: an API server's 404 is a NotFound error, which
// the engine asks for by apierrors.IsNotFound.
func TestClientsetNotFound(t *testing.T) {
	t.Parallel()
	rc, _ := apiServer(t)
	cs, err := newClientset(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"pod", func() error { _, err := cs.CoreV1().Pods("ns").Get(ctx, "missing", metav1.GetOptions{}); return err }},
		{"namespace", func() error { _, err := cs.CoreV1().Namespaces().Get(ctx, "missing", metav1.GetOptions{}); return err }},
		{"delete", func() error { return cs.CoreV1().Pods("ns").Delete(ctx, "missing", metav1.DeleteOptions{}) }},
	} {
		if err := c.call(); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v, want a NotFound error", c.name, err)
		}
	}
}
