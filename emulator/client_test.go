package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/internal/testwait"
)

// client talks to a test rtemu as an SDK would: real HTTP on loopback.
type client struct {
	t   *testing.T
	srv *emulatortest.Server
	key string
}

func newClient(t *testing.T, opts ...emulatortest.Option) *client {
	t.Helper()
	emulatortest.SkipIfNoDocker(t)
	return startClient(t, opts...)
}

// newFakeClient is newClient on the fake engine (emulatortest.WithFake),
// for tests about the API itself (bad input, auth, envelopes, pagination,
// the OpenAPI document): no Docker needed.
func newFakeClient(t *testing.T, opts ...emulatortest.Option) *client {
	t.Helper()
	return startClient(t, append([]emulatortest.Option{emulatortest.WithFake()}, opts...)...)
}

func startClient(t *testing.T, opts ...emulatortest.Option) *client {
	t.Helper()
	// RTEMU_TEST_WARM_POOL=N runs the tests with a warm pool of N for
	// base-ubuntu, so the lifecycle tests prove a pooled sandbox behaves as
	// a cold one (CI runs them both ways).
	if v := os.Getenv("RTEMU_TEST_WARM_POOL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RTEMU_TEST_WARM_POOL=%q: %v", v, err)
		}
		opts = append([]emulatortest.Option{emulatortest.WithWarmPool("base-ubuntu", n)}, opts...)
	}
	srv := emulatortest.New(t, opts...)
	if v := os.Getenv("RTEMU_TEST_WARM_POOL"); v != "" {
		// Full before the test begins, so its first creates take pool
		// containers rather than racing the first fill.
		n, _ := strconv.Atoi(v)
		testwait.Until(t, 60*time.Second, func() bool { return srv.Service().WarmPoolReady("base-ubuntu") >= n }, "warm pool of %d not filled", n)
	}
	return &client{t: t, srv: srv, key: srv.APIKey}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Data is the envelope's data as an object.
func (r response) Data() map[string]any {
	d, _ := r.JSON["data"].(map[string]any)
	return d
}

// List is the envelope's data as an array of objects.
func (r response) List() []map[string]any {
	raw, _ := r.JSON["data"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}

// ErrCode is the error envelope's code ("" when there is none).
func (r response) ErrCode() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON).
func (c *client) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		raw = js
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	checkOpenAPI(c.t, c.srv.URL, req, raw, resp, respBody)
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: respBody}
	_ = json.Unmarshal(respBody, &r.JSON)
	return r
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any) response {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// create makes a sandbox and waits until it is running.
func (c *client) create(body map[string]any) map[string]any {
	c.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["template"]; !ok {
		body["template"] = "base-ubuntu"
	}
	r := c.must(http.StatusCreated, "POST", "/v1/sandboxes", body)
	return c.waitStatus(r.Data()["id"].(string), "running")
}

// waitStatus polls a sandbox until it has the status, with a deadline.
func (c *client) waitStatus(id, status string) map[string]any {
	c.t.Helper()
	var last map[string]any
	testwait.Check(c.t, 60*time.Second, func() error {
		if r := c.do("GET", "/v1/sandboxes/"+id, nil); r.Status == http.StatusOK {
			last = r.Data()
		}
		if s := last["status"]; s == "failed" && status != "failed" {
			c.t.Fatalf("sandbox %s failed: %v", id, last["error"])
		}
		if last["status"] == status {
			return nil
		}
		return fmt.Errorf("sandbox %s did not become %s; last %v", id, status, last)
	})
	return last
}

// exec runs a command through the API and returns the result object.
func (c *client) exec(id string, body map[string]any) map[string]any {
	c.t.Helper()
	return c.must(http.StatusOK, "POST", "/v1/sandboxes/"+id+"/exec", body).Data()
}

// sh runs a shell command and returns its stdout, failing on a non-zero exit.
func (c *client) sh(id, cmd string) string {
	c.t.Helper()
	res := c.exec(id, map[string]any{"command": cmd})
	if res["exitCode"].(float64) != 0 {
		c.t.Fatalf("%q: exit %v, stderr %q", cmd, res["exitCode"], res["stderr"])
	}
	return res["stdout"].(string)
}
