package emulatortest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// Start rtemu, create a sandbox, wait for it and run a command in it. On a
// machine without Docker it runs on the fake engine (WithFake), which
// answers the same.
func Example() {
	srv, err := emulatortest.Start(context.Background())
	if err != nil {
		srv, err = emulatortest.Start(context.Background(), emulatortest.WithFake())
	}
	if err != nil {
		fmt.Println("cannot start rtemu:", err)
		return
	}
	defer srv.Close()

	call := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		req.Header.Set("X-API-Key", srv.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var out struct{ Data map[string]any }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out.Data
	}

	sb := call("POST", "/v1/sandboxes", `{"template":"base-ubuntu","name":"example"}`)
	fmt.Println("created:", sb["status"])
	for call("GET", "/v1/sandboxes/example", "")["status"] != "running" {
		time.Sleep(50 * time.Millisecond)
	}
	res := call("POST", "/v1/sandboxes/example/exec", `{"command":"echo hello from $PWD"}`)
	fmt.Print("stdout: ", res["stdout"])
	fmt.Println("exit code:", res["exitCode"])
	// Output:
	// created: creating
	// stdout: hello from /workspace
	// exit code: 0
}
