package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// sseEvent is one server-sent event and when it arrived.
type sseEvent struct {
	name string
	data map[string]any
	at   time.Duration
}

// streamExec runs a command through the streaming exec endpoint (exec with
// Accept: text/event-stream) and returns its events in order.
func (a api) streamExec(id string, body map[string]any) []sseEvent {
	a.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", a.base+"/v1/sandboxes/"+id+"/exec", bytes.NewReader(b))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-API-Key", "rt_test_0123456789abcdefghijklmnopqrstuv")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		raw, _ := io.ReadAll(resp.Body)
		a.t.Fatalf("streaming exec: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var events []sseEvent
	var name, data string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		case line == "" && name != "":
			ev := sseEvent{name: name, at: time.Since(start)}
			if err := json.Unmarshal([]byte(data), &ev.data); err != nil {
				a.t.Fatalf("event %s data %q: %v", name, data, err)
			}
			events = append(events, ev)
			name, data = "", ""
		}
	}
	return events
}

// A sandbox on the cluster as a user of the hosted API and of SSH meets it:
// the streaming exec endpoint (stdout and stderr chunks as they come, in
// order, then the exit code), an SSH session with a terminal and a command
// with its exit status, SFTP through the gateway (a file up and down with
// equal checksums, listing, rename, remove), and a workspace mounted into
// the pod (hostPath on the test cluster's one node: --kube-host-folders)
// whose files the workspace file API and the sandbox both see.
func TestKubernetesSessionsAndWorkspace(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	srv, a := kubeServer(t, kubeconfig, func(c *config.Config) { c.Kube.HostFolders = true })

	ws := a.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "k8s-files"})
	wsID := ws["id"].(string)
	a.must(http.StatusOK, "POST", "/v1/workspaces/"+wsID+"/files", map[string]any{"name": "from-api.txt", "type": "file", "contents": "written by the file API\n"})
	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "name": "k8s-sessions",
		"rootPassword": "correct horse", "resources": small,
		"mounts": []map[string]any{{"workspaceId": wsID, "path": "/workspace/data"}}})
	id := sb["id"].(string)
	a.waitStatus(id, "running")
	if n := len(podsOf(t, cs, id)); n != 1 {
		t.Fatalf("sandbox %s has %d pods", id, n)
	}

	t.Run("streaming exec", func(t *testing.T) {
		a := api{t: t, base: a.base}
		events := a.streamExec(id, map[string]any{"command": "echo one; echo oops >&2; sleep 1.5; echo two; echo late >&2; exit 5"})
		var seq []string
		var firstOut, exit *sseEvent
		for i, ev := range events {
			switch ev.name {
			case "stdout", "stderr":
				if ev.name == "stdout" && firstOut == nil {
					firstOut = &events[i]
				}
				for _, l := range strings.SplitAfter(ev.data["data"].(string), "\n") {
					if l != "" {
						seq = append(seq, ev.name+":"+strings.TrimSpace(l))
					}
				}
			case "exit":
				exit = &events[i]
			default:
				t.Errorf("unexpected event %s %v", ev.name, ev.data)
			}
		}
		if exit == nil || exit != &events[len(events)-1] {
			t.Fatalf("no exit event last: %+v", events)
		}
		if exit.data["exitCode"] != float64(5) || exit.data["timedOut"] != false {
			t.Errorf("exit event %v, want exit code 5", exit.data)
		}
		// Within a stream the order is kept; across the 1.5 s pause the
		// first stdout and stderr lines come before the second ones.
		pos := map[string]int{}
		for i, s := range seq {
			pos[s] = i + 1
		}
		for _, want := range [][2]string{{"stdout:one", "stdout:two"}, {"stderr:oops", "stderr:late"}, {"stderr:oops", "stdout:two"}, {"stdout:one", "stderr:late"}} {
			if pos[want[0]] == 0 || pos[want[1]] == 0 || pos[want[0]] > pos[want[1]] {
				t.Errorf("%s not before %s in %q", want[0], want[1], seq)
			}
		}
		if len(seq) != 4 {
			t.Errorf("output lines %q, want 4", seq)
		}
		// The first line came as it was written, not with the end.
		if firstOut == nil || exit.at-firstOut.at < time.Second {
			t.Errorf("first stdout chunk at %v, exit at %v: output was held back", firstOut, exit.at)
		}
	})

	dial := func(t *testing.T) *gossh.Client {
		c, err := gossh.Dial("tcp", srv.SSHAddr, &gossh.ClientConfig{User: "k8s-sessions",
			Auth: []gossh.AuthMethod{gossh.Password("correct horse")}, HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 20 * time.Second})
		if err != nil {
			t.Fatalf("ssh: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("ssh session", func(t *testing.T) {
		c := dial(t)
		// A shell on a terminal: input typed in, output back, its exit status.
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.RequestPty("xterm", 24, 80, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
			t.Fatal(err)
		}
		stdin, _ := sess.StdinPipe()
		var out bytes.Buffer
		sess.Stdout = &out
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(stdin, "echo answer=$((6*7)) cols=$(stty size | cut -d' ' -f2)\nexit 7\n")
		err = sess.Wait()
		var exit *gossh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 7 {
			t.Errorf("shell ended with %v, want exit 7; output %q", err, out.String())
		}
		if !strings.Contains(out.String(), "answer=42 cols=80") {
			t.Errorf("the terminal session printed %q", out.String())
		}
		// A command: stdin in, stdout and stderr apart, exit status.
		sess, err = c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var so, se bytes.Buffer
		sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader("piped in\n"), &so, &se
		err = sess.Run("cat; echo to-stderr >&2; exit 3")
		if !errors.As(err, &exit) || exit.ExitStatus() != 3 || so.String() != "piped in\n" || se.String() != "to-stderr\n" {
			t.Errorf("ssh command: stdout %q stderr %q, %v; want the input, to-stderr and exit 3", so.String(), se.String(), err)
		}
	})

	t.Run("sftp", func(t *testing.T) {
		fc, err := sftp.NewClient(dial(t))
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		body := make([]byte, 1<<20+77)
		_, _ = rand.Read(body)
		sum := sha256.Sum256(body)
		want := hex.EncodeToString(sum[:])
		f, err := fc.Create("/tmp/up.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out, code := a.exec(id, "sha256sum /tmp/up.bin | cut -d' ' -f1"); code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("uploaded file's checksum in the sandbox %q (exit %d), want %s", out, code, want)
		}
		if err := fc.Rename("/tmp/up.bin", "/tmp/moved.bin"); err != nil {
			t.Fatal(err)
		}
		r, err := fc.Open("/tmp/moved.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(body))
		}
		entries, err := fc.ReadDir("/workspace/data")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !strings.Contains(strings.Join(names, ","), "from-api.txt") {
			t.Errorf("sftp lists %v in the mounted workspace, want from-api.txt", names)
		}
		if err := fc.Remove("/tmp/moved.bin"); err != nil {
			t.Fatal(err)
		}
		if _, err := fc.Stat("/tmp/moved.bin"); err == nil {
			t.Error("the removed file is still there")
		}
	})

	t.Run("workspace mount and file API", func(t *testing.T) {
		a := api{t: t, base: a.base}
		if out, code := a.exec(id, "cat /workspace/data/from-api.txt"); code != 0 || out != "written by the file API\n" {
			t.Errorf("the file API's file in the pod: %q exit %d", out, code)
		}
		if _, code := a.exec(id, "mkdir -p /workspace/data/sub && echo written in the pod > /workspace/data/sub/from-pod.txt"); code != 0 {
			t.Fatalf("write in the pod: exit %d", code)
		}
		if _, got := a.call("GET", "/v1/workspaces/"+wsID+"/direct?path=/sub/from-pod.txt", nil); got["raw"] != "written in the pod\n" {
			t.Errorf("the pod's file through the file API: %v", got)
		}
		if _, got := a.call("GET", "/v1/workspaces/"+wsID+"/files/sub", nil); !strings.Contains(fmt.Sprint(got), "/sub/from-pod.txt") {
			t.Errorf("the file API lists %v in /sub, want from-pod.txt", got)
		}
		// The files outlive the sandbox.
		a.must(http.StatusOK, "DELETE", "/v1/sandboxes/"+id, nil)
		if _, got := a.call("GET", "/v1/workspaces/"+wsID+"/direct?path=/sub/from-pod.txt", nil); got["raw"] != "written in the pod\n" {
			t.Errorf("the pod's file after the sandbox's destroy: %v", got)
		}
	})
}

// Workspaces from a PersistentVolumeClaim (--kube-workspace-claim): the
// sandbox's pod mounts the claim with the workspace's folder as subPath,
// and the workspace file API (rtemu's own view of the same volume: here the
// hostPath folder the test's PersistentVolume is, on the one node) and the
// sandbox see each other's files. On a cluster of several nodes the claim
// would be ReadWriteMany, mounted in rtemu's pod at its workspaces folder.
func TestKubernetesWorkspaceClaim(t *testing.T) {
	kubeconfig, cs := kubeconfigForTest(t)
	t.Parallel()
	ctx := context.Background()
	dataDir := t.TempDir()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "rtemu-ws-" + hex.EncodeToString(b)
	class := name // no provisioner binds it: the volume is made here
	dir := corev1.HostPathDirectoryOrCreate
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			StorageClassName: class,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: sandbox.WorkspacesDir(dataDir), Type: &dir}},
			ClaimRef: &corev1.ObjectReference{Namespace: e2eNamespace, Name: name},
		}}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e2eNamespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			StorageClassName: &class,
			VolumeName:       name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
	if _, err := cs.CoreV1().PersistentVolumeClaims(e2eNamespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumeClaims(e2eNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	testwait.Check(t, 60*time.Second, func() error {
		c, err := cs.CoreV1().PersistentVolumeClaims(e2eNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || c.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("claim %s not bound: %v %v", name, c.Status.Phase, err)
		}
		return nil
	})

	_, a := kubeServer(t, kubeconfig, func(c *config.Config) { c.DataDir, c.Kube.WorkspaceClaim = dataDir, name })
	ws := a.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "claimed"})
	wsID := ws["id"].(string)
	a.must(http.StatusOK, "POST", "/v1/workspaces/"+wsID+"/files", map[string]any{"name": "from-api.txt", "contents": "through the claim\n"})
	sb := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small,
		"mounts": []map[string]any{{"workspaceId": wsID, "path": "/workspace/data"}}})
	id := sb["id"].(string)
	a.waitStatus(id, "running")

	pods, err := cs.CoreV1().Pods(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + id})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of %s: %v", id, err)
	}
	claimed := false
	for _, v := range pods.Items[0].Spec.Volumes {
		claimed = claimed || v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name
	}
	var mounts []corev1.VolumeMount // but the exec agent's folder
	for _, m := range pods.Items[0].Spec.Containers[0].VolumeMounts {
		if m.MountPath != kubernetes.AgentMount {
			mounts = append(mounts, m)
		}
	}
	if !claimed || len(mounts) != 1 || mounts[0].SubPath != wsID || mounts[0].MountPath != "/workspace/data" {
		t.Fatalf("the pod's volumes %+v and mounts %+v, want the claim %s with subPath %s", pods.Items[0].Spec.Volumes, mounts, name, wsID)
	}
	if out, code := a.exec(id, "cat /workspace/data/from-api.txt && echo from the pod > /workspace/data/from-pod.txt"); code != 0 || out != "through the claim\n" {
		t.Errorf("the file API's file in the pod: %q exit %d", out, code)
	}
	if _, got := a.call("GET", "/v1/workspaces/"+wsID+"/direct?path=/from-pod.txt", nil); got["raw"] != "from the pod\n" {
		t.Errorf("the pod's file through the file API: %v", got)
	}
	// A second workspace is the same claim's other folder: nothing of the
	// first shows in it.
	ws2 := a.must(http.StatusCreated, "POST", "/v1/workspaces", map[string]any{"name": "other"})["id"].(string)
	sb2 := a.must(http.StatusCreated, "POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "resources": small,
		"mounts": []map[string]any{{"workspaceId": ws2, "path": "/workspace/data", "readOnly": true}}})
	id2 := sb2["id"].(string)
	a.waitStatus(id2, "running")
	if out, code := a.exec(id2, "ls -A /workspace/data; if touch /workspace/data/x 2>/dev/null; then echo writable; fi"); code != 0 || out != "" {
		t.Errorf("the second workspace (read-only) lists %q (exit %d), want nothing", out, code)
	}
}
