package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/rtemu-dev/rtemu/dockerdriver"
	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

// TestRecipeImageBuiltAtFirstCreate: a recipe template whose image is
// missing is built (never pulled) at its first create, once for creates
// that come together; a failed build fails the sandbox with an error that
// says how to build the image.
func TestRecipeImageBuiltAtFirstCreate(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	ctx := context.Background()
	testImage, err := emulatortest.TestImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// A tag no engine has: the "recipe image" the builder makes.
	built := fmt.Sprintf("rtemu-test/built-at-create:%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), built, image.RemoveOptions{}) })

	var builds atomic.Int32
	buildTemplate := func(ctx context.Context, recipe string, progress func(string)) error {
		builds.Add(1)
		if recipe == "broken" {
			return errors.New("apt-get install: exit status 100")
		}
		progress("Step 1/1 : FROM test")
		time.Sleep(200 * time.Millisecond) // long enough for the creates to meet
		return cli.ImageTag(ctx, testImage, built)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	drv, err := dockerdriver.New()
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	svc := sandbox.New(sandbox.Config{Store: st, Engine: drv.Engine(), InstanceID: st.InstanceID(), BuildTemplate: buildTemplate,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Templates: []sandbox.Template{
			{Name: "base-ubuntu", Image: built, Recipe: "base-ubuntu"},
			{Name: "broken", Image: built + "-never", Recipe: "broken"},
			{Name: "fallback", Image: built + "-unbuilt", Recipe: "fallback", Fallback: testImage},
		}})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = svc.DestroyAll(context.Background())
		svc.Close()
	}()

	wait := func(id string, want sandbox.Status) *sandbox.Sandbox {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			sb, err := svc.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sb.Status == want {
				return sb
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox %s is %s (%s), want %s", id, sb.Status, sb.Error, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var ids []string
	for range 3 {
		sb, err := svc.Create(ctx, sandbox.CreateParams{Template: "base-ubuntu"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID)
	}
	for _, id := range ids {
		wait(id, sandbox.StatusRunning)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds for three creates, want 1", n)
	}
	// Built now: the next create builds nothing.
	sb, _ := svc.Create(ctx, sandbox.CreateParams{Template: "base-ubuntu"})
	wait(sb.ID, sandbox.StatusRunning)
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds after the image exists, want 1", n)
	}

	bad, err := svc.Create(ctx, sandbox.CreateParams{Template: "broken"})
	if err != nil {
		t.Fatal(err)
	}
	failed := wait(bad.ID, sandbox.StatusFailed)
	for _, want := range []string{"apt-get install: exit status 100", "rtemu templates build broken", "--template broken=IMAGE"} {
		if !strings.Contains(failed.Error, want) {
			t.Errorf("failed sandbox's error %q lacks %q", failed.Error, want)
		}
	}

	// A recipe template with a fallback uses the fallback image while the
	// recipe's image is not built, and builds nothing.
	before := builds.Load()
	fb, err := svc.Create(ctx, sandbox.CreateParams{Template: "fallback"})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(fb.ID, sandbox.StatusRunning); got.Image != testImage {
		t.Errorf("fallback sandbox's image %q, want %q", got.Image, testImage)
	}
	if builds.Load() != before {
		t.Error("a template with a fallback was built")
	}
}
