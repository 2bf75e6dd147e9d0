package fake_test

import (
	"bufio"
	"net"
	"testing"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/enginetest"
	"github.com/rtemu-dev/rtemu/engine/fake"
)

// The fake passes the contract's conformance suite, as the Docker engine
// does (engine/docker/contract_test.go).
// It runs twice: with disk watched (the fake's default) and with disk
// enforced, where the suite's DiskEnforced case writes past a size.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		disk       *engine.DiskLimits
		noSnapshot bool
	}{
		{"disk watched", nil, false},
		{"disk enforced", &engine.DiskLimits{Enforced: true, StorageDriver: "fake"}, false},
		{"no snapshot", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conformance(t, func() *fake.Engine {
				e := fake.New("enginetest-image")
				if tc.disk != nil {
					e.SetDiskLimits(*tc.disk)
				}
				if tc.noSnapshot {
					c := fake.Capabilities()
					c.Snapshot = false
					e.SetCapabilities(c)
				}
				return e
			})
		})
	}
}

func conformance(t *testing.T, newEngine func() *fake.Engine) {
	unmodelled := map[string]string{"SnapshotFiles": "the fake keeps no files", "SnapshotWithoutBase": "the fake keeps no files"}
	if !newEngine().Capabilities().Snapshot {
		unmodelled["Snapshot"] = "told it has no Snapshot"
	}
	enginetest.Run(t, enginetest.Harness{
		New:   func(*testing.T) engine.Engine { return newEngine() },
		Image: "enginetest-image",
		Serve: func(t *testing.T, e engine.Engine, name string, port int) {
			err := e.(*fake.Engine).Serve(name, port, func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		},
		Unmodelled: unmodelled,
	})
}
