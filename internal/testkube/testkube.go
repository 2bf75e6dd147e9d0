// Package testkube finds the Kubernetes cluster tests run on, or skips the
// test saying how to start one.
package testkube

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// How says how to get the test cluster.
const How = "start the test cluster (as root): export RTEMU_TEST_KUBECONFIG=$(scripts/k8s-test-cluster/up.sh | tail -1)"

// Cluster is the cluster of RTEMU_TEST_KUBECONFIG (else KUBECONFIG): its
// kubeconfig's path, client configuration and a client. The test is
// skipped when none is configured or its API server does not answer.
func Cluster(t testing.TB) (string, *rest.Config, kubernetes.Interface) {
	t.Helper()
	path := os.Getenv("RTEMU_TEST_KUBECONFIG")
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		t.Skip("no Kubernetes cluster (RTEMU_TEST_KUBECONFIG and KUBECONFIG unset); " + How)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Skipf("no Kubernetes cluster (%v); %s", err, How)
	}
	rc.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Skipf("the Kubernetes API server at %s does not answer (%v); %s", rc.Host, err, How)
	}
	rc.Timeout = 0
	return path, rc, cs
}

// Namespace makes the namespace unless it is there, and waits for its
// default service account (pods of a new namespace wait for it).
func Namespace(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("make namespace %s: %v", ns, err)
	}
	testwait.Until(t, 30*time.Second, func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}, "namespace %s has no default service account", ns)
}
