package sandbox

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4GB", 4 << 30, true}, {"4GiB", 4 << 30, true}, {"512MB", 512 << 20, true}, {"1024MiB", 1 << 30, true},
		{"4gb", 4 << 30, true}, {" 2 GB ", 2 << 30, true},
		{"4", 0, false}, {"4TB", 0, false}, {"-1GB", 0, false}, {"1.5GB", 0, false}, {"GB", 0, false}, {"", 0, false},
		{"99999999GB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestMountPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/workspace", "/workspace"}, {"/workspace/", "/workspace"}, {"/workspace/a//b/", "/workspace/a/b"},
		{"/workspace/./a", "/workspace/a"},
		{"/workspace/../etc", ""}, {"/etc", ""}, {"workspace", ""}, {"/workspacex", ""}, {"", ""}, {"/work\x00space", ""},
		{"/", ""},
	}
	for _, tt := range tests {
		got, err := MountPath(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("MountPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestStateMachine(t *testing.T) {
	t.Parallel()
	for _, s := range Statuses {
		if _, ok := transitions[s]; !ok {
			t.Errorf("status %s has no row", s)
		}
		if s != StatusDestroyed && s != StatusDestroying && !canTransition(s, StatusDestroying) {
			t.Errorf("%s cannot be destroyed", s)
		}
	}
	for _, bad := range [][2]Status{{StatusDestroyed, StatusRunning}, {StatusFailed, StatusRunning}, {StatusCreating, StatusPaused},
		{StatusDestroying, StatusRunning}, {StatusError, StatusCreating}, {StatusError, StatusResuming}} {
		if canTransition(bad[0], bad[1]) {
			t.Errorf("%s → %s allowed", bad[0], bad[1])
		}
	}
	// A record in error whose container runs is healed (reconcile).
	for _, good := range [][2]Status{{StatusError, StatusRunning}, {StatusError, StatusPaused}} {
		if !canTransition(good[0], good[1]) {
			t.Errorf("%s → %s refused", good[0], good[1])
		}
	}
}

func TestErrorsIs(t *testing.T) {
	t.Parallel()
	err := error(notFound("Sandbox"))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Fatal("kinds do not match as sentinels")
	}
	var e *Error
	if !errors.As(err, &e) || e.Message != "Sandbox not found" {
		t.Fatalf("%v", e)
	}
}
