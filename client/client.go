// Package client is a small typed client of the Runtools sandbox REST API,
// as rtemu and the hosted service serve it. `rtemu sandbox …` and the other
// client commands use it.
//
// Each value decoded from an answer keeps the answer's own JSON in Raw, so a
// caller can print exactly what the API said (--json).
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client speaks to one API origin with one key.
type Client struct {
	base string
	key  string
	http *http.Client
}

// New makes a client of the API at base (an origin without /v1, e.g.
// http://127.0.0.1:7070) with key; hc nil is a client with a 10-minute
// bound on each call.
func New(base, key string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Minute}
	}
	return &Client{base: strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/v1"), key: key, http: hc}
}

// Base is the origin the client speaks to.
func (c *Client) Base() string { return c.base }

// Error is an API error answer, or an answer that was not the API's.
type Error struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Details   []FieldError
}

// FieldError names the request field a validation error is about.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Status == 0 {
		fmt.Fprintf(&b, "%s (%s)", e.Message, e.Code)
	} else {
		fmt.Fprintf(&b, "%s (%d %s)", e.Message, e.Status, e.Code)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Field, d.Message)
	}
	return b.String()
}

// IsNotFound reports an API answer of 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// do sends a request and decodes the answer's data (the envelope's, or
// the whole body where the API answers without one) into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case *multipartBody:
		rd, ctype = b.r, b.ctype
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	resp, err := c.send(ctx, method, path, query, rd, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &env) == nil && len(env.Data) > 0 {
		raw = env.Data
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what the API answers: %w", method, path, err)
	}
	return nil
}

// send makes a request and returns a 2xx answer; any other is an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	return c.sendRequest(req, ctype)
}

// sendRequest sends req with the key and returns a 2xx answer; any other
// is an *Error.
func (c *Client) sendRequest(req *http.Request, ctype string) (*http.Response, error) {
	method, path := req.Method, req.URL.Path
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	req.Header.Set("User-Agent", "rtemu-cli")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no answer from %s (is it running? RUNTOOLS_API_URL says where): %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Error struct {
			Code      string       `json:"code"`
			Message   string       `json:"message"`
			RequestID string       `json:"requestId"`
			Details   []FieldError `json:"details"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode)}
	if json.Unmarshal(raw, &env) == nil && env.Error.Message != "" {
		e.Code, e.Message, e.RequestID, e.Details = env.Error.Code, env.Error.Message, env.Error.RequestID, env.Error.Details
	} else {
		e.Message = strings.TrimSpace(string(raw))
		if e.Message == "" || len(e.Message) > 200 {
			e.Message = method + " " + path + " failed"
		}
	}
	return nil, e
}

// Sandbox is a sandbox as the API describes it (the fields the CLI shows).
type Sandbox struct {
	ID          string            `json:"id"`
	Name        *string           `json:"name"`
	Template    string            `json:"template"`
	Status      string            `json:"status"`
	Tags        []string          `json:"tags"`
	Env         map[string]string `json:"env"`
	Mounts      []Mount           `json:"mounts"`
	IdleTimeout int               `json:"idleTimeout"`
	SSHReady    bool              `json:"sshReady"`
	CreatedAt   string            `json:"createdAt"`
	Error       string            `json:"error,omitempty"`
	// Progress (rtemu's) says how far a creating sandbox's image is.
	Progress  string `json:"progress,omitempty"`
	Resources struct {
		VCPUs  int    `json:"vcpus"`
		Memory string `json:"memory"`
		Disk   string `json:"disk"`
	} `json:"resources"`
	Raw json.RawMessage `json:"-"`
}

// Mount binds a workspace into a sandbox.
type Mount struct {
	WorkspaceID string `json:"workspaceId"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// Resources are a create's limits; zero values are the API's defaults.
type Resources struct {
	VCPUs  int    `json:"vcpus,omitempty"`
	Memory string `json:"memory,omitempty"`
	Disk   string `json:"disk,omitempty"`
}

// CreateSandbox is a create request; empty fields are left to the API.
type CreateSandbox struct {
	Template     string            `json:"template"`
	Name         string            `json:"name,omitempty"`
	RootPassword string            `json:"rootPassword,omitempty"`
	Tags         []string          `json:"tags,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	IdleTimeout  *int              `json:"idleTimeout,omitempty"`
	Mounts       []Mount           `json:"mounts,omitempty"`
	SSHKeys      []string          `json:"sshKeys,omitempty"`
	Resources    *Resources        `json:"resources,omitempty"`
}

// rawOf decodes into v and keeps the JSON in *raw.
type rawOf[T any] struct {
	v   *T
	raw *json.RawMessage
}

func (r rawOf[T]) UnmarshalJSON(b []byte) error {
	*r.raw = append(json.RawMessage(nil), b...)
	return json.Unmarshal(b, r.v)
}

// CreateSandbox asks for a sandbox; it is `creating` when this returns
// (WaitSandbox follows it).
func (c *Client) CreateSandbox(ctx context.Context, req CreateSandbox) (*Sandbox, error) {
	var sb Sandbox
	return &sb, c.do(ctx, http.MethodPost, "/v1/sandboxes", nil, req, &rawOf[Sandbox]{&sb, &sb.Raw})
}

// GetSandbox reads a sandbox by id or name.
func (c *Client) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	var sb Sandbox
	return &sb, c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id), nil, nil, &rawOf[Sandbox]{&sb, &sb.Raw})
}

// ListSandboxes is a list's filters.
type ListSandboxes struct {
	Status   string
	Tags     []string
	Template string
}

// ListSandboxes reads every page of the list, newest first.
func (c *Client) ListSandboxes(ctx context.Context, f ListSandboxes) ([]*Sandbox, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Template != "" {
		q.Set("template", f.Template)
	}
	for _, t := range f.Tags {
		q.Add("tag", t)
	}
	var out []*Sandbox
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			HasMore    bool              `json:"hasMore"`
			NextCursor *string           `json:"nextCursor"`
		}
		if err := c.doPage(ctx, "/v1/sandboxes", q, &page); err != nil {
			return nil, err
		}
		for _, r := range page.Data {
			sb := &Sandbox{Raw: r}
			if err := json.Unmarshal(r, sb); err != nil {
				return nil, err
			}
			out = append(out, sb)
		}
		if !page.HasMore || page.NextCursor == nil || *page.NextCursor == "" {
			return out, nil
		}
		q.Set("cursor", *page.NextCursor)
	}
}

// doPage reads a whole list answer (the envelope included).
func (c *Client) doPage(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.send(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// WaitSandbox polls a sandbox every interval while its status is one of
// passing (e.g. creating), calling seen with each answer, and returns the
// first answer in another status.
func (c *Client) WaitSandbox(ctx context.Context, id string, interval time.Duration, seen func(*Sandbox), passing ...string) (*Sandbox, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sb, err := c.GetSandbox(ctx, id)
		if err != nil {
			return nil, err
		}
		if seen != nil {
			seen(sb)
		}
		still := false
		for _, p := range passing {
			still = still || sb.Status == p
		}
		if !still {
			return sb, nil
		}
		select {
		case <-ctx.Done():
			return sb, ctx.Err()
		case <-t.C:
		}
	}
}

// StatusAnswer is the answer to a pause, a resume or a delete.
type StatusAnswer struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Deleted bool            `json:"deleted"`
	Raw     json.RawMessage `json:"-"`
}

func (c *Client) post(ctx context.Context, method, path string, q url.Values) (*StatusAnswer, error) {
	var a StatusAnswer
	return &a, c.do(ctx, method, path, q, nil, &rawOf[StatusAnswer]{&a, &a.Raw})
}

// PauseSandbox freezes a running sandbox.
func (c *Client) PauseSandbox(ctx context.Context, id string) (*StatusAnswer, error) {
	return c.post(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/pause", nil)
}

// ResumeSandbox thaws a paused sandbox.
func (c *Client) ResumeSandbox(ctx context.Context, id string) (*StatusAnswer, error) {
	return c.post(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/resume", nil)
}

// DestroySandbox removes a sandbox; async returns at once, `destroying`.
func (c *Client) DestroySandbox(ctx context.Context, id string, async bool) (*StatusAnswer, error) {
	var q url.Values
	if async {
		q = url.Values{"async": {"true"}}
	}
	return c.post(ctx, http.MethodDelete, "/v1/sandboxes/"+url.PathEscape(id), q)
}

// Exec is a command to run in a sandbox.
type Exec struct {
	Command string            `json:"command"`
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Timeout in milliseconds; 0 is the API's default (30 s).
	Timeout int64 `json:"timeout,omitempty"`
}

// ExecResult is a finished command.
type ExecResult struct {
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	ExitCode        int             `json:"exitCode"`
	DurationMs      int64           `json:"durationMs"`
	TimedOut        bool            `json:"timedOut"`
	StdoutTruncated bool            `json:"stdoutTruncated"`
	StderrTruncated bool            `json:"stderrTruncated"`
	Raw             json.RawMessage `json:"-"`
}

// ExecSandbox runs a command and returns its output and exit code.
func (c *Client) ExecSandbox(ctx context.Context, id string, req Exec) (*ExecResult, error) {
	var r ExecResult
	return &r, c.do(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/exec", nil, req, &rawOf[ExecResult]{&r, &r.Raw})
}

// SSHInfo is where a sandbox's SSH gateway is.
type SSHInfo struct {
	Host    string          `json:"host"`
	Port    int             `json:"port"`
	User    string          `json:"user"`
	Command string          `json:"command"`
	Raw     json.RawMessage `json:"-"`
}

// SandboxSSH reads how to reach a sandbox by SSH.
func (c *Client) SandboxSSH(ctx context.Context, id string) (*SSHInfo, error) {
	var s SSHInfo
	return &s, c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id)+"/ssh", nil, nil, &rawOf[SSHInfo]{&s, &s.Raw})
}

// URLInfo is a dev URL of a sandbox port.
type URLInfo struct {
	URL          string          `json:"url"`
	Port         int             `json:"port"`
	LocalhostURL string          `json:"localhostUrl"`
	Raw          json.RawMessage `json:"-"`
}

// SandboxURL reads the URL that reaches port inside a sandbox.
func (c *Client) SandboxURL(ctx context.Context, id string, port int) (*URLInfo, error) {
	var u URLInfo
	q := url.Values{"port": {strconv.Itoa(port)}}
	return &u, c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id)+"/url", q, nil, &rawOf[URLInfo]{&u, &u.Raw})
}

// SSHKey is a registered public key.
type SSHKey struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Fingerprint string          `json:"fingerprint"`
	KeyType     string          `json:"keyType"`
	CreatedAt   string          `json:"createdAt"`
	Raw         json.RawMessage `json:"-"`
}

// AddSSHKey registers a public key (authorized_keys form).
func (c *Client) AddSSHKey(ctx context.Context, name, publicKey string) (*SSHKey, error) {
	var k SSHKey
	body := map[string]string{"name": name, "publicKey": publicKey}
	return &k, c.do(ctx, http.MethodPost, "/v1/ssh-keys", nil, body, &rawOf[SSHKey]{&k, &k.Raw})
}

// ListSSHKeys lists the registered keys, newest first.
func (c *Client) ListSSHKeys(ctx context.Context) ([]*SSHKey, error) {
	var raws []json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/ssh-keys", nil, nil, &raws); err != nil {
		return nil, err
	}
	out := make([]*SSHKey, 0, len(raws))
	for _, r := range raws {
		k := &SSHKey{Raw: r}
		if err := json.Unmarshal(r, k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// RemoveSSHKey deletes a registered key.
func (c *Client) RemoveSSHKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/ssh-keys/"+url.PathEscape(id), nil, nil, nil)
}

// Workspace is durable storage sandboxes mount.
type Workspace struct {
	ID        string          `json:"id"`
	Slug      string          `json:"slug"`
	Name      string          `json:"name"`
	SizeBytes int64           `json:"sizeBytes"`
	CreatedAt string          `json:"createdAt"`
	Raw       json.RawMessage `json:"-"`
}

// CreateWorkspace makes a workspace; slug "" is made from the name.
func (c *Client) CreateWorkspace(ctx context.Context, name, slug string) (*Workspace, error) {
	var w Workspace
	body := map[string]string{"name": name}
	if slug != "" {
		body["slug"] = slug
	}
	return &w, c.do(ctx, http.MethodPost, "/v1/workspaces", nil, body, &rawOf[Workspace]{&w, &w.Raw})
}

// GetWorkspace reads a workspace by id or slug.
func (c *Client) GetWorkspace(ctx context.Context, id string) (*Workspace, error) {
	var w Workspace
	return &w, c.do(ctx, http.MethodGet, "/v1/workspaces/"+url.PathEscape(id), nil, nil, &rawOf[Workspace]{&w, &w.Raw})
}

// ListWorkspaces lists every workspace, newest first.
func (c *Client) ListWorkspaces(ctx context.Context) ([]*Workspace, error) {
	var data struct {
		Workspaces []json.RawMessage `json:"workspaces"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/workspaces", nil, nil, &data); err != nil {
		return nil, err
	}
	out := make([]*Workspace, 0, len(data.Workspaces))
	for _, r := range data.Workspaces {
		w := &Workspace{Raw: r}
		if err := json.Unmarshal(r, w); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// DeleteWorkspace deletes a workspace and its files; force deletes one a
// sandbox mounts.
func (c *Client) DeleteWorkspace(ctx context.Context, id string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, http.MethodDelete, "/v1/workspaces/"+url.PathEscape(id), q, nil, nil)
}

// File is an entry of a workspace's folder.
type File struct {
	ID   string          `json:"id"` // its path in the workspace, "/src/a.txt"
	Name string          `json:"value"`
	Type string          `json:"type"` // "file" or "folder"
	Date string          `json:"date"`
	Size *int64          `json:"size"`
	Raw  json.RawMessage `json:"-"`
}

// filesPath is a workspace's files URL path for a path in it.
func filesPath(ws, kind, p string) string {
	out := "/v1/workspaces/" + url.PathEscape(ws) + "/" + kind
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg != "" {
			out += "/" + url.PathEscape(seg)
		}
	}
	return out
}

// ListFiles lists a folder of a workspace ("" or "/" is its root).
func (c *Client) ListFiles(ctx context.Context, ws, dir string, hidden bool) ([]*File, error) {
	var q url.Values
	if hidden {
		q = url.Values{"showHidden": {"true"}}
	}
	var raws []json.RawMessage
	if err := c.do(ctx, http.MethodGet, filesPath(ws, "files", dir), q, nil, &raws); err != nil {
		return nil, err
	}
	out := make([]*File, 0, len(raws))
	for _, r := range raws {
		f := &File{Raw: r}
		if err := json.Unmarshal(r, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// MakeFolder makes a folder name in dir.
func (c *Client) MakeFolder(ctx context.Context, ws, dir, name string) error {
	body := map[string]string{"name": name, "type": "folder"}
	return c.do(ctx, http.MethodPost, filesPath(ws, "files", dir), nil, body, nil)
}

// DeleteFiles deletes files and folders by their paths.
func (c *Client) DeleteFiles(ctx context.Context, ws string, paths []string) error {
	return c.do(ctx, http.MethodDelete, "/v1/workspaces/"+url.PathEscape(ws)+"/files", nil, map[string][]string{"ids": paths}, nil)
}

type multipartBody struct {
	r     io.Reader
	ctype string
}

// Upload writes r as the file name in dir, streaming it.
func (c *Client) Upload(ctx context.Context, ws, dir, name string, r io.Reader) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = io.Copy(part, r)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	err := c.do(ctx, http.MethodPost, filesPath(ws, "upload", dir), nil, &multipartBody{pr, mw.FormDataContentType()}, nil)
	pr.Close()
	return err
}

// Download copies a workspace file to w.
func (c *Client) Download(ctx context.Context, ws, p string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/workspaces/"+url.PathEscape(ws)+"/direct", url.Values{"path": {p}}, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// ChangeFile renames (target: the new name), moves or copies (target: the
// folder to put it in) a workspace file or folder, and returns the result.
func (c *Client) ChangeFile(ctx context.Context, ws, p, operation, target string) (*File, error) {
	var f File
	body := map[string]string{"operation": operation, "target": target}
	return &f, c.do(ctx, http.MethodPut, filesPath(ws, "files", p), nil, body, &rawOf[File]{&f, &f.Raw})
}

// ExecStream runs a command with its output streamed as it comes
// (server-sent events) into stdout and stderr, and returns how it ended.
// Where the API answers with a plain JSON result instead, its output is
// written out whole.
func (c *Client) ExecStream(ctx context.Context, id string, req Exec, stdout, stderr io.Writer) (*ExecResult, error) {
	j, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	path := "/v1/sandboxes/" + url.PathEscape(id) + "/exec"
	u := c.base + path
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(j))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Accept", "text/event-stream")
	resp, err := c.sendRequest(hreq, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		var r ExecResult
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			return nil, fmt.Errorf("POST %s: %w", path, err)
		}
		if err := json.Unmarshal(env.Data, &rawOf[ExecResult]{&r, &r.Raw}); err != nil {
			return nil, fmt.Errorf("POST %s: %w", path, err)
		}
		_, _ = io.WriteString(stdout, r.Stdout)
		_, _ = io.WriteString(stderr, r.Stderr)
		return &r, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "":
			r, err := execEvent(event, data.String(), stdout, stderr)
			if r != nil || err != nil {
				return r, err
			}
			event = ""
			data.Reset()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("POST %s: the stream broke: %w", path, err)
	}
	return nil, fmt.Errorf("POST %s: the stream ended without the command's exit", path)
}

// execEvent handles one event of a streamed exec: output is written, the
// end returns the result (exit) or an error (error).
func execEvent(event, data string, stdout, stderr io.Writer) (*ExecResult, error) {
	switch event {
	case "stdout", "stderr":
		var chunk struct {
			Data string `json:"data"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return nil, fmt.Errorf("a streamed exec's %s event: %w", event, err)
		}
		w := stdout
		if event == "stderr" {
			w = stderr
		}
		_, _ = io.WriteString(w, chunk.Data)
	case "exit":
		var r ExecResult
		if err := json.Unmarshal([]byte(data), &rawOf[ExecResult]{&r, &r.Raw}); err != nil {
			return nil, fmt.Errorf("a streamed exec's exit event: %w", err)
		}
		return &r, nil
	case "error":
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(data), &e)
		return nil, &Error{Code: e.Code, Message: e.Message}
	}
	return nil, nil
}

// SaveState streams the whole state as an archive (GET /_emulator/state)
// to w.
func (c *Client) SaveState(ctx context.Context, w io.Writer) error {
	return c.SaveStateWith(ctx, w, SaveStateOptions{})
}

// SaveStateOptions are a save's choices.
type SaveStateOptions struct {
	// ReferenceImages: the sandboxes' base images are referred to by name,
	// not held in the archive (?referenceImages=true); a load needs them.
	ReferenceImages bool
}

// SaveStateWith is SaveState with choices.
func (c *Client) SaveStateWith(ctx context.Context, w io.Writer, opts SaveStateOptions) error {
	var q url.Values
	if opts.ReferenceImages {
		q = url.Values{"referenceImages": {"true"}}
	}
	resp, err := c.send(ctx, http.MethodGet, "/_emulator/state", q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// StateLoaded is what a load brought back.
type StateLoaded struct {
	ID        string `json:"id"`
	Sandboxes int    `json:"sandboxes"`
	CreatedAt string `json:"createdAt"`
}

// LoadState replaces the whole state with an archive (POST
// /_emulator/state).
func (c *Client) LoadState(ctx context.Context, r io.Reader) (*StateLoaded, error) {
	var out StateLoaded
	resp, err := c.send(ctx, http.MethodPost, "/_emulator/state", nil, r, "application/x-tar")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Data StateLoaded `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("POST /_emulator/state: %w", err)
	}
	out = env.Data
	return &out, nil
}
