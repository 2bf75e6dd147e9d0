package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/internal/testwait"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestRecipeImageBuiltAtFirstCreate: a recipe template whose image is
// missing is built (never pulled) at its first create, once for creates
// that come together; a failed build fails the sandbox with an error that
// says how to build the image.
func TestRecipeImageBuiltAtFirstCreate(t *testing.T) {
	t.Parallel()
	// A tag the engine lacks: the "recipe image" the builder makes.
	const built = "rtemu-test/built-at-create:1"
	var e *env
	var builds atomic.Int32
	gate := make(chan struct{})
	buildTemplate := func(ctx context.Context, recipe string, progress func(string)) error {
		builds.Add(1)
		if recipe == "broken" {
			return errors.New("apt-get install: exit status 100")
		}
		progress("Step 1/1 : FROM test")
		// Held until the three creates have asked for the image, so that
		// they meet in one build.
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.eng.AddImage(built)
		return nil
	}
	e = started(t, func(c *sandbox.Config) {
		c.BuildTemplate = buildTemplate
		c.Templates = []sandbox.Template{
			{Name: "base-ubuntu", Image: built, Recipe: "base-ubuntu"},
			{Name: "broken", Image: built + "-never", Recipe: "broken"},
			{Name: "fallback", Image: built + "-unbuilt", Recipe: "fallback", Fallback: testImage},
		}
	})
	var ids []string
	asked := e.eng.Calls("ImagePresent")
	for range 3 {
		sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base-ubuntu"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID)
	}
	testwait.Until(t, 10*time.Second, func() bool { return e.eng.Calls("ImagePresent")-asked >= 3 },
		"the creates did not look for their image")
	close(gate)
	for _, id := range ids {
		e.waitStatus(id, sandbox.StatusRunning)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds for three creates, want 1", n)
	}
	// Built now: the next create builds nothing.
	e.running(sandbox.CreateParams{Template: "base-ubuntu"})
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds after the image exists, want 1", n)
	}

	bad, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "broken"})
	if err != nil {
		t.Fatal(err)
	}
	failed := e.waitStatus(bad.ID, sandbox.StatusFailed)
	for _, want := range []string{"apt-get install: exit status 100", "rtemu templates build broken", "--template broken=IMAGE"} {
		if !strings.Contains(failed.Error, want) {
			t.Errorf("failed sandbox's error %q lacks %q", failed.Error, want)
		}
	}

	// A recipe template with a fallback uses the fallback image while the
	// recipe's image is not built, and builds nothing.
	before := builds.Load()
	fb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "fallback"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.waitStatus(fb.ID, sandbox.StatusRunning); got.Image != testImage {
		t.Errorf("fallback sandbox's image %q, want %q", got.Image, testImage)
	}
	if builds.Load() != before {
		t.Error("a template with a fallback was built")
	}
}

// TestBuildProgressInRecord: while a create builds its template's image,
// the record says which recipe and step; running, it says nothing.
func TestBuildProgressInRecord(t *testing.T) {
	t.Parallel()
	const built = "rtemu-test/built-with-progress:1"
	var e *env
	gate := make(chan struct{})
	e = started(t, func(c *sandbox.Config) {
		c.BuildTemplate = func(ctx context.Context, recipe string, progress func(string)) error {
			progress("building base-ubuntu as " + built + " from ubuntu:24.04")
			progress("Step 4/9 : RUN apt-get update")
			progress("Get:1 http://archive.ubuntu.com noble InRelease")
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			e.eng.AddImage(built)
			return nil
		}
		c.Templates = []sandbox.Template{{Name: "base-ubuntu", Image: built, Recipe: "base-ubuntu"}}
	})
	sb, err := e.svc.Create(e.ctx, sandbox.CreateParams{Template: "base-ubuntu"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "building base-ubuntu: step 4/9"
	testwait.Until(t, 10*time.Second, func() bool { return e.get(sb.ID).Progress == want },
		"the record never said %q", want)
	close(gate)
	if got := e.waitStatus(sb.ID, sandbox.StatusRunning).Progress; got != "" {
		t.Fatalf("running sandbox has progress %q", got)
	}
}

// progressWrites counts the writes of a sandbox record that changed its
// progress text.
type progressWrites struct {
	sandbox.Store
	n atomic.Int32
}

func (p *progressWrites) UpdateSandbox(ctx context.Context, id string, fn func(*sandbox.Sandbox) error) (*sandbox.Sandbox, error) {
	var before string
	sb, err := p.Store.UpdateSandbox(ctx, id, func(sb *sandbox.Sandbox) error {
		before = sb.Progress
		return fn(sb)
	})
	if err == nil && sb.Progress != before && sb.Progress != "" {
		p.n.Add(1)
	}
	return sb, err
}

// TestPullProgressWritesThrottled: a pull's many progress lines make a
// few writes of the record, not one each.
func TestPullProgressWritesThrottled(t *testing.T) {
	t.Parallel()
	const image = "rtemu-test/many-layers:1"
	writes := &progressWrites{}
	e := started(t, func(c *sandbox.Config) {
		writes.Store = c.Store
		c.Store = writes
		c.Templates = []sandbox.Template{{Name: "many", Image: image}}
	})
	e.eng.AddToRegistry(image)
	e.eng.SetPullLayers(500)
	start := time.Now()
	sb := e.running(sandbox.CreateParams{Template: "many"})
	if sb.Progress != "" {
		t.Errorf("running sandbox has progress %q", sb.Progress)
	}
	// One at once, then at most one every half second.
	if n, most := int(writes.n.Load()), 2+int(time.Since(start)/(500*time.Millisecond)); n < 1 || n > most {
		t.Errorf("%d writes of the progress in %v of a pull of 1000 lines, want 1 to %d", n, time.Since(start), most)
	}
}
