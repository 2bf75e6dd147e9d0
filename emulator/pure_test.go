package emulator_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// TestShowingSandboxesReadsOnly: getting and listing desktop sandboxes
// dials nothing and opens nothing; vncReady and vncUrl are what the
// service's watcher and the create already found.
func TestShowingSandboxesReadsOnly(t *testing.T) {
	t.Parallel()
	eng := emulatortest.Fake()
	c := startClient(t, emulatortest.WithEngine(eng))
	var ids []string
	for range 3 {
		ids = append(ids, c.create(map[string]any{"template": "desktop-ubuntu"})["id"].(string))
	}
	for _, id := range ids {
		if err := eng.Serve("rtemu-"+id, sandbox.VNCPort, func(c net.Conn) { c.Close() }); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		waitField(t, c, id, "vncReady", true)
	}
	urls := map[string]any{}
	for _, id := range ids {
		urls[id] = c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()["vncUrl"]
	}
	dials, start := eng.Calls("DialPort"), time.Now()
	const reads = 30
	for range reads {
		for _, sb := range c.must(http.StatusOK, "GET", "/v1/sandboxes", nil).List() {
			if sb["vncReady"] != true || sb["vncUrl"] != urls[sb["id"].(string)] {
				t.Fatalf("listed desktop %v", sb)
			}
		}
		c.must(http.StatusOK, "GET", "/v1/sandboxes/"+ids[0], nil)
	}
	// The watcher probes each running desktop every 500 ms; the reads add
	// nothing (they used to dial once per desktop per read: 120 here).
	probes := 3 * (int(time.Since(start)/(500*time.Millisecond)) + 2)
	if n := eng.Calls("DialPort") - dials; n > probes {
		t.Fatalf("%d dials during %d reads in %v; the watcher alone makes at most %d", n, reads, time.Since(start), probes)
	}
}
