package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// api is a plain HTTP client of one rtemu, as an SDK is.
type api struct {
	base, key string
	hc        *http.Client
}

func newAPI(base, key string) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &api{base: base, key: key, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// call sends a request and decodes the envelope's data into out (may be nil).
func (a *api) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-Key", a.key)
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		env := struct{ Data any }{Data: out}
		if err := json.Unmarshal(raw, &env); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

type sandboxJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

func (a *api) create(ctx context.Context, body map[string]any) (string, error) {
	var sb sandboxJSON
	if _, err := a.call(ctx, "POST", "/v1/sandboxes", body, &sb); err != nil {
		return "", err
	}
	return sb.ID, nil
}

// waitStatus polls GET until the sandbox has the status: every 1 ms for
// the first 20 ms (a warm create), then every 5 ms, so the polling adds
// little to what is measured without taking CPU from the engine while a
// container starts (a 1 ms poll did, on 2 cores).
func (a *api) waitStatus(ctx context.Context, id, status string) error {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var sb sandboxJSON
		if _, err := a.call(ctx, "GET", "/v1/sandboxes/"+id, nil, &sb); err != nil {
			return err
		}
		if sb.Status == status {
			return nil
		}
		if sb.Status == "failed" || sb.Status == "error" {
			return fmt.Errorf("sandbox %s is %s: %s", id, sb.Status, sb.Error)
		}
		if time.Since(start) < 20*time.Millisecond {
			time.Sleep(time.Millisecond)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return fmt.Errorf("sandbox %s did not become %s", id, status)
}

func (a *api) createRunning(ctx context.Context, body map[string]any) (string, error) {
	id, err := a.create(ctx, body)
	if err != nil {
		return "", err
	}
	return id, a.waitStatus(ctx, id, "running")
}

func (a *api) remove(ctx context.Context, id string) error {
	_, err := a.call(ctx, "DELETE", "/v1/sandboxes/"+id, nil, nil)
	return err
}

// execOut runs cmd and checks its output.
func (a *api) execOut(ctx context.Context, id, cmd, want string) error {
	out, err := a.execStdout(ctx, id, cmd)
	if err != nil {
		return err
	}
	if out != want {
		return fmt.Errorf("exec %q: stdout %q, want %q", cmd, out, want)
	}
	return nil
}

// execStdout runs cmd, which must exit 0, and returns its stdout.
func (a *api) execStdout(ctx context.Context, id, cmd string) (string, error) {
	var res struct {
		ExitCode int    `json:"exitCode"`
		Stdout   string `json:"stdout"`
	}
	if _, err := a.call(ctx, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd}, &res); err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("exec %q: exit %d, stdout %q", cmd, res.ExitCode, res.Stdout)
	}
	return res.Stdout, nil
}

func (a *api) exec(ctx context.Context, id, cmd string) error {
	var res struct {
		ExitCode int `json:"exitCode"`
	}
	if _, err := a.call(ctx, "POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": cmd}, &res); err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("exec %q: exit %d", cmd, res.ExitCode)
	}
	return nil
}
