package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestCachedReadsFollowWrites: once a sandbox is cached (read by id), every
// kind of write of it shows in the next read: an update, a project delete
// that unassigns it, a reset; and what a caller does to a record it was
// given does not change the next read.
func TestCachedReadsFollowWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const projectID = "6f1c2a4e-0000-4000-8000-000000000001"
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, s *Store, id string)
		check func(sb *sandbox.Sandbox, err error) error
	}{
		{"update", func(t *testing.T, s *Store, id string) {
			if _, err := s.UpdateSandbox(ctx, id, func(x *sandbox.Sandbox) error { x.Status = sandbox.StatusPaused; return nil }); err != nil {
				t.Fatal(err)
			}
		}, func(sb *sandbox.Sandbox, err error) error {
			if err != nil || sb.Status != sandbox.StatusPaused {
				return fmt.Errorf("after an update: %v %v", sb, err)
			}
			return nil
		}},
		{"failed update", func(t *testing.T, s *Store, id string) {
			_, _ = s.UpdateSandbox(ctx, id, func(x *sandbox.Sandbox) error { x.Status = sandbox.StatusPaused; return fmt.Errorf("no") })
		}, func(sb *sandbox.Sandbox, err error) error {
			if err != nil || sb.Status != sandbox.StatusRunning {
				return fmt.Errorf("after an aborted update: %v %v", sb, err)
			}
			return nil
		}},
		{"project delete", func(t *testing.T, s *Store, id string) {
			if _, err := s.DeleteProject(ctx, projectID, true); err != nil {
				t.Fatal(err)
			}
		}, func(sb *sandbox.Sandbox, err error) error {
			// Moved to the default project, which the cache must show.
			if err != nil || sb.ProjectID == projectID || sb.ProjectID == "" {
				return fmt.Errorf("after its project's delete: %+v %v", sb, err)
			}
			return nil
		}},
		{"reset", func(t *testing.T, s *Store, id string) {
			if err := s.Reset(ctx); err != nil {
				t.Fatal(err)
			}
		}, func(sb *sandbox.Sandbox, err error) error {
			if err != sandbox.ErrNoRecord {
				return fmt.Errorf("after a reset: %v %v", sb, err)
			}
			return nil
		}},
		{"caller's changes", func(t *testing.T, s *Store, id string) {
			sb, err := s.GetSandbox(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			sb.Status, sb.Env["A"], sb.Tags[0] = sandbox.StatusError, "changed", "changed"
		}, func(sb *sandbox.Sandbox, err error) error {
			if err != nil || sb.Status != sandbox.StatusRunning || sb.Env["A"] != "1" || sb.Tags[0] != "x" {
				return fmt.Errorf("a caller's changes leaked into the cache: %+v %v", sb, err)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := open(t)
			now := time.Now().UTC()
			if err := s.InsertProject(ctx, &sandbox.Project{ID: projectID, Name: "p", Color: "#112233", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			sb := newSandbox("sandbox-aaaaaaaaaaaa", "one", "x")
			sb.ProjectID = projectID
			if err := s.InsertSandbox(ctx, sb); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetSandbox(ctx, sb.ID); err != nil { // now cached
				t.Fatal(err)
			}
			tc.write(t, s, sb.ID)
			if err := tc.check(s.GetSandbox(ctx, sb.ID)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCacheReadsRacingWrites: reads that miss while writes land never leave
// an older record in the cache than the last write.
func TestCacheReadsRacingWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	sb := newSandbox("sandbox-bbbbbbbbbbbb", "two")
	if err := s.InsertSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.cache.clear() // force misses
				_, _ = s.GetSandbox(ctx, sb.ID)
			}
		}()
	}
	for i := range 200 {
		if _, err := s.UpdateSandbox(ctx, sb.ID, func(x *sandbox.Sandbox) error { x.IdleTimeout = i; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil || got.IdleTimeout != 199 {
		t.Fatalf("last read %v %v, want idleTimeout 199", got, err)
	}
}

// TestListDecodeCache: a list decodes a record again when its columns
// changed, whoever changed them (here a second handle on the file), and
// what a caller does to a listed record does not change the next list.
func TestListDecodeCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := open(t)
	sb := newSandbox("sandbox-cccccccccccc", "three", "x")
	if err := s.InsertSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	list := func() *sandbox.Sandbox {
		t.Helper()
		got, _, err := s.ListSandboxes(ctx, sandbox.ListFilter{Limit: 10}, 0)
		if err != nil || len(got) != 1 {
			t.Fatalf("list: %v %v", got, err)
		}
		return got[0]
	}
	first := list()
	first.Env["A"], first.Tags[0] = "changed", "changed"
	if again := list(); again.Env["A"] != "1" || again.Tags[0] != "x" {
		t.Fatalf("a caller's change leaked into the next list: %+v", again)
	}
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.UpdateSandbox(ctx, sb.ID, func(x *sandbox.Sandbox) error {
		x.Env["A"], x.Tags = "2", []string{"y"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(); got.Env["A"] != "2" || got.Tags[0] != "y" {
		t.Fatalf("list after another handle's write: %+v", got)
	}
}

// Lists read again between writes come from the list cache: each write of a
// sandbox (insert, update, a project's removal, reset) shows in the next
// list, and what a caller does to a list it got does not reach the next.
func TestListCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	all := sandbox.ListFilter{Limit: 10}
	ids := func() string {
		t.Helper()
		page, _, err := s.ListSandboxes(ctx, all, 0)
		if err != nil {
			t.Fatal(err)
		}
		live, err := s.LiveSandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sb := range page {
			out = append(out, sb.ID[len(sb.ID)-1:]+":"+string(sb.Status)+":"+sb.Env["A"])
		}
		out = append(out, "|")
		for _, sb := range live {
			out = append(out, sb.ID[len(sb.ID)-1:]+":"+string(sb.Status)+":"+sb.Env["A"])
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		name  string
		write func() error
		want  string
	}{
		{"empty", func() error { return nil }, "|"},
		{"insert", func() error { return s.InsertSandbox(ctx, newSandbox("sandbox-aaaaaaaaaaaa", "a")) }, "a:running:1 | a:running:1"},
		{"second insert", func() error { return s.InsertSandbox(ctx, newSandbox("sandbox-bbbbbbbbbbbb", "b")) }, "b:running:1 a:running:1 | a:running:1 b:running:1"},
		{"update", func() error {
			_, err := s.UpdateSandbox(ctx, "sandbox-aaaaaaaaaaaa", func(x *sandbox.Sandbox) error {
				x.Status, x.Env = sandbox.StatusPaused, map[string]string{"A": "2"}
				return nil
			})
			return err
		}, "b:running:1 a:paused:2 | a:paused:2 b:running:1"},
		{"destroy", func() error {
			_, err := s.UpdateSandbox(ctx, "sandbox-bbbbbbbbbbbb", func(x *sandbox.Sandbox) error {
				x.Status = sandbox.StatusDestroyed
				return nil
			})
			return err
		}, "a:paused:2 | a:paused:2"},
		{"reset", func() error { return s.Reset(ctx) }, "|"},
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for range 2 { // the second read is the cache's
			if got := ids(); got != st.want {
				t.Fatalf("after %s: %q, want %q", st.name, got, st.want)
			}
		}
		// A caller changing what it got changes nothing for the next.
		if page, _, _ := s.ListSandboxes(ctx, all, 0); len(page) > 0 {
			page[0].Status, page[0].Env["A"] = "scribbled", "scribbled"
		}
		if live, _ := s.LiveSandboxes(ctx); len(live) > 0 {
			live[0].Env["A"] = "scribbled"
		}
		if got := ids(); got != st.want {
			t.Fatalf("after %s and a caller's changes to its copy: %q, want %q", st.name, got, st.want)
		}
	}
}
