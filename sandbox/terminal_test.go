package sandbox

import (
	"errors"
	"testing"
	"time"
)

// TestTerminalSessionsOneTime: a session opens once, and not after it
// expires; each refusal says which.
func TestTerminalSessionsOneTime(t *testing.T) {
	t.Parallel()
	var ts terminalSessions
	now := time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)
	a := ts.add("sandbox-a", now)
	b := ts.add("sandbox-b", now)
	if !uuidPattern.MatchString(a.ID) || a.ID == b.ID || !a.ExpiresAt.Equal(now.Add(TerminalSessionTTL)) {
		t.Fatalf("sessions %+v %+v", a, b)
	}
	tests := []struct {
		name string
		id   string
		at   time.Time
		want error
	}{
		{"first use", a.ID, now.Add(time.Second), nil},
		{"second use", a.ID, now.Add(2 * time.Second), ErrTerminalUsed},
		{"late use", b.ID, now.Add(TerminalSessionTTL + time.Millisecond), ErrTerminalExpired},
		{"unknown", "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b", now, ErrTerminalUnknown},
	}
	for _, tc := range tests {
		got, err := ts.claim(tc.id, tc.at)
		if !errors.Is(err, tc.want) || (err == nil && got.SandboxID != "sandbox-a") {
			t.Errorf("%s: %+v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	// Long expired sessions are forgotten at the next mint.
	ts.add("sandbox-c", now.Add(3*TerminalSessionTTL))
	if _, err := ts.claim(b.ID, now); !errors.Is(err, ErrTerminalUnknown) {
		t.Errorf("an old session is still kept: %v", err)
	}
}
