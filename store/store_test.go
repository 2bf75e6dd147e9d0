package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rtemu.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func newSandbox(id, name string, tags ...string) *sandbox.Sandbox {
	now := time.Now().UTC()
	return &sandbox.Sandbox{ID: id, Name: name, Template: "base-ubuntu", Status: sandbox.StatusRunning, Tags: tags,
		Env: map[string]string{"A": "1"}, Resources: sandbox.Resources{VCPUs: 2, Memory: "4GB", Disk: "10GB"},
		CreatedAt: now, UpdatedAt: now}
}

func TestRoundTripAndReopen(t *testing.T) {
	t.Parallel()
	s, path := open(t)
	ctx := context.Background()
	sb := newSandbox("sandbox-aaaaaaaaaaaa", "one", "x")
	sb.Metadata = []byte(`{"k":[1,2]}`)
	sb.Mounts = []sandbox.Mount{{WorkspaceID: "w", Path: "/workspace", ReadOnly: true}}
	if err := s.InsertSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	inst := s.InstanceID()
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.InstanceID() != inst || inst == "" {
		t.Fatalf("instance id changed: %q → %q", inst, s2.InstanceID())
	}
	got, err := s2.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "one" || string(got.Metadata) != `{"k":[1,2]}` || !got.Mounts[0].ReadOnly || got.Env["A"] != "1" ||
		!got.CreatedAt.Equal(sb.CreatedAt) {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestNamesAndUpdates(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.InsertSandbox(ctx, newSandbox("sandbox-aaaaaaaaaaaa", "n")); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertSandbox(ctx, newSandbox("sandbox-bbbbbbbbbbbb", "n")); !errors.Is(err, sandbox.ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
	// An aborted update writes nothing.
	boom := errors.New("boom")
	if _, err := s.UpdateSandbox(ctx, "sandbox-aaaaaaaaaaaa", func(x *sandbox.Sandbox) error {
		x.Status = sandbox.StatusPaused
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, _ := s.GetSandbox(ctx, "sandbox-aaaaaaaaaaaa"); got.Status != sandbox.StatusRunning {
		t.Fatalf("aborted update written: %s", got.Status)
	}
	// Destroyed frees the name.
	if _, err := s.UpdateSandbox(ctx, "sandbox-aaaaaaaaaaaa", func(x *sandbox.Sandbox) error {
		x.Status = sandbox.StatusDestroyed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertSandbox(ctx, newSandbox("sandbox-bbbbbbbbbbbb", "n")); err != nil {
		t.Fatalf("name of a destroyed sandbox: %v", err)
	}
	if got, err := s.SandboxByName(ctx, "n"); err != nil || got.ID != "sandbox-bbbbbbbbbbbb" {
		t.Fatalf("by name: %v %v", got, err)
	}
	if _, err := s.GetSandbox(ctx, "sandbox-cccccccccccc"); !errors.Is(err, sandbox.ErrNoRecord) {
		t.Fatalf("missing: %v", err)
	}
}

func TestListPages(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		tags := []string{"all"}
		if i%5 == 0 {
			tags = append(tags, "fifth")
		}
		if err := s.InsertSandbox(ctx, newSandbox(fmt.Sprintf("sandbox-%012d", i), "", tags...)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	after := int64(0)
	for {
		page, more, err := s.ListSandboxes(ctx, sandbox.ListFilter{Limit: 10, Tags: []string{"all"}}, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range page {
			seen = append(seen, sb.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(seen) != 25 || seen[0] != "sandbox-000000000024" || seen[24] != "sandbox-000000000000" {
		t.Fatalf("pages: %d %v", len(seen), seen)
	}
	fifth, _, err := s.ListSandboxes(ctx, sandbox.ListFilter{Limit: 500, Tags: []string{"all", "fifth"}}, 0)
	if err != nil || len(fifth) != 5 {
		t.Fatalf("tag filter: %d %v", len(fifth), err)
	}
}

// TestAddEvents: a batch is written in one transaction: all of it, or, when
// one event cannot be written (an id already there), none of it.
func TestAddEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := func(id string) sandbox.Event {
		return sandbox.Event{ID: id, SandboxID: "sandbox-aaaaaaaaaaaa", Type: "exec", Severity: "info", Title: "Command executed",
			Attributes: map[string]any{"exitCode": 0}, CreatedAt: time.Now().UTC()}
	}
	for _, tc := range []struct {
		name  string
		batch []sandbox.Event
		ok    bool
		want  int
	}{
		{"all written", []sandbox.Event{ev("evt_1"), ev("evt_2"), ev("evt_3")}, true, 3},
		{"a duplicate writes none", []sandbox.Event{ev("evt_1"), ev("evt_2"), ev("evt_1")}, false, 0},
		{"empty", nil, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := open(t)
			err := s.AddEvents(ctx, tc.batch)
			if (err == nil) != tc.ok {
				t.Fatalf("AddEvents: %v, want ok=%v", err, tc.ok)
			}
			got, _, err := s.ListEvents(ctx, "sandbox-aaaaaaaaaaaa", 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("%d events written, want %d", len(got), tc.want)
			}
		})
	}
}

// A sandbox an older rtemu kept with no project is in the default project
// after the migration, as every sandbox created now is.
func TestMigrationPutsSandboxesInTheDefaultProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	sb := newSandbox("sandbox-bbbbbbbbbbbb", "old", "x")
	if err := s.InsertSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	// Run the migration again over the record with no projectId.
	if _, err := s.w.ExecContext(ctx, sandboxesInProjectsSchema); err != nil {
		t.Fatal(err)
	}
	s.cache.clear()
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.ListProjects(ctx)
	if err != nil || len(ps) == 0 || !ps[0].IsDefault {
		t.Fatalf("projects %v, %v", ps, err)
	}
	if got.ProjectID != ps[0].ID {
		t.Fatalf("projectId %q after the migration, want the default project %s", got.ProjectID, ps[0].ID)
	}
}
