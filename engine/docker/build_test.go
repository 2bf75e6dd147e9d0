package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

func buildContext(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

// TestBuildAndStartLabel: Build makes an image from a Dockerfile with build
// args and labels, showing the build's output line by line; a container of
// an image labelled rtemu.start runs that program in the background of the
// keep-alive loop, and one whose program fails keeps running all the same.
func TestBuildAndStartLabel(t *testing.T) {
	d := newDriver(t)
	t.Parallel()
	ctx := context.Background()
	base := testImage(t)
	cli, _ := client.New(client.FromEnv)
	defer cli.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)

	tests := []struct {
		name, start string
		wantStarted bool
	}{
		{"starts its program", "/bin/started", true},
		{"failing program", "/bin/no-such-program", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := "rtemu-test/start-label:" + suffix + strings.ReplaceAll(tt.name, " ", "-")
			t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true}) })
			var lines []string
			id, err := d.Build(ctx, docker.BuildSpec{
				Context: buildContext(t, map[string]string{
					"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY started /bin/started\nLABEL " + docker.LabelStart + "=" + tt.start + "\n",
					"started":    "#!/bin/sh\necho up > /tmp/started\nexec sleep 1000\n",
				}),
				Tag: tag, Args: map[string]string{"BASE": base}, Labels: map[string]string{"rtemu.test": "yes"},
			}, func(l string) { lines = append(lines, l) })
			if err != nil || !strings.HasPrefix(id, "sha256:") {
				t.Fatalf("build: %q, %v", id, err)
			}
			if all := strings.Join(lines, "\n"); !strings.Contains(all, "Step 2/5 : FROM ${BASE}") || !strings.Contains(all, "Successfully tagged "+tag) {
				t.Errorf("build progress lacks the steps:\n%s", strings.Join(lines, "\n"))
			}
			labels, err := d.ImageLabels(ctx, tag)
			if err != nil || labels["rtemu.test"] != "yes" || labels[docker.LabelStart] != tt.start {
				t.Errorf("labels %v, %v", labels, err)
			}

			name := "rtemu-drivertest-" + suffix + strings.ReplaceAll(tt.name, " ", "-")
			t.Cleanup(func() { _ = d.Remove(context.Background(), name) })
			if err := d.Create(ctx, docker.ContainerSpec{Name: name, Image: tag, PidsLimit: 100}); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			var out string
			for time.Now().Before(deadline) {
				out, _, _, _ = run(t, d, ctx, name, "cat /tmp/started 2>/dev/null; ps -o args | grep -q '^[s]leep 86400' && echo alive")
				if strings.Contains(out, "alive") && (!tt.wantStarted || strings.Contains(out, "up")) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := strings.Contains(out, "up"); got != tt.wantStarted || !strings.Contains(out, "alive") {
				t.Errorf("container says %q; want started=%v and the keep-alive loop alive", out, tt.wantStarted)
			}
			if st, err := d.Inspect(ctx, name); err != nil || !st.Running {
				t.Errorf("container not running: %+v %v", st, err)
			}
		})
	}

	t.Run("failing build", func(t *testing.T) {
		_, err := d.Build(ctx, docker.BuildSpec{
			Context: buildContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN exit 3\n"}),
			Tag:     "rtemu-test/failing-build:" + suffix,
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "non-zero code: 3") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing image labels", func(t *testing.T) {
		if _, err := d.ImageLabels(ctx, "rtemu-test/none:missing"); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("err = %v", err)
		}
	})
}
