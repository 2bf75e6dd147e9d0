package sshgw_test

import (
	"context"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestWarmPoolSessionEnv: SSH sessions into a sandbox from the warm pool
// see its env, though the container was started before the env was known.
func TestWarmPoolSessionEnv(t *testing.T) {
	needSSHPass(t)
	t.Parallel()
	h := newHarness(t, emulatortest.WithWarmPool("base-ubuntu", 1))
	eventually(t, 90e9, "pool filled", func() bool { return h.srv.Service().WarmPoolReady("base-ubuntu") == 1 })
	id := h.sandbox(map[string]any{"name": "warm-ssh", "rootPassword": "pw", "env": map[string]any{"GREETING": "hello pool"}})
	st, err := emulatortest.Docker(t).Inspect(context.Background(), "rtemu-"+id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Labels[sandbox.LabelPool] != "base-ubuntu" {
		t.Fatalf("sandbox not from the pool: labels %v", st.Labels)
	}
	c := h.mustDial("warm-ssh", gossh.Password("pw"))
	if r := run(t, c, `echo "$GREETING"`, nil); r.stdout != "hello pool\n" || r.code != 0 {
		t.Fatalf("gossh: %+v", r)
	}
	if r := openssh(t, h.sshpass("pw", "ssh", target("warm-ssh", h), `echo "$GREETING"`), nil); r.stdout != "hello pool\n" {
		t.Fatalf("OpenSSH: %+v", r)
	}
}
