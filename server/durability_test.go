package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/internal/testtool"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// rtemuBinary builds rtemu once per test run: durability is tested on a
// real process that can be killed with SIGKILL.
func rtemuBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rtemu-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rtemu")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/rtemu-dev/rtemu").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is an rtemu process.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	url string
	log *emulatortest.Buffer
}

var apiLine = regexp.MustCompile(`API (http://127\.0\.0\.1:\d+)`)

func startRtemu(t *testing.T, dataDir string) *proc {
	t.Helper()
	return startRtemuVia(t, dataDir)
}

// startRtemuVia starts rtemu through a wrapper command (say, a shell that
// sets limits first, then execs "$@"), or directly without one.
func startRtemuVia(t *testing.T, dataDir string, wrapper ...string) *proc {
	t.Helper()
	img, err := emulatortest.TestImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	args := append(wrapper, rtemuBinary(t), "serve", "--addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0",
		"--data-dir", dataDir, "--template", "base-ubuntu="+img)
	return startRtemuArgs(t, args)
}

// startRtemuArgs runs a command line that starts rtemu and waits until it
// says where its API is.
func startRtemuArgs(t *testing.T, args []string) *proc {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, log: &emulatortest.Buffer{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case p.url = <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("rtemu did not start; log:\n%s", p.log)
	}
	return p
}

// kill ends rtemu with SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) do(method, path string, body any) (int, map[string]any) {
	p.t.Helper()
	code, raw := p.doRaw(method, path, body)
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	data, _ := out["data"].(map[string]any)
	return code, data
}

// doRaw sends a request and returns the status and the body as text.
func (p *proc) doRaw(method, path string, body any) (int, string) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	return p.send(method, path, "application/json", rd)
}

// send sends a request with a body of the type given, and returns the
// status and the body as text; a request that fails (a process killed
// meanwhile) answers code 0 and the error.
func (p *proc) send(method, path, contentType string, body io.Reader) (int, string) {
	req, _ := http.NewRequest(method, p.url+path, body)
	req.Header.Set("X-API-Key", emulatortest.APIKey)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) status(id string) string {
	_, d := p.do("GET", "/v1/sandboxes/"+id, nil)
	s, _ := d["status"].(string)
	return s
}

func (p *proc) waitStatus(id, want string, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		if last = p.status(id); last == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("sandbox %s is %q, want %q; rtemu log:\n%s", id, last, want, p.log)
}

func driver(t *testing.T, options ...docker.Option) *docker.Driver {
	t.Helper()
	d, err := docker.New(options...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// agentsIn counts the exec agents running in a container, asking through d,
// a driver without the agent (so the count starts none).
func agentsIn(t *testing.T, d *docker.Driver, name string) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := d.Exec(context.Background(), name, docker.ExecSpec{
		Cmd: []string{"/bin/sh", "-c", "ps -o args | grep -c '[r]temu-agent'"}, Stdout: &out,
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

// instanceContainers lists the containers of the rtemu that owns dataDir,
// and removes them all when the test ends.
func instanceContainers(t *testing.T, dataDir string) func() []docker.Container {
	t.Helper()
	d := driver(t)
	instance := ""
	list := func() []docker.Container {
		if instance == "" {
			st, err := store.Open(context.Background(), filepath.Join(dataDir, "rtemu.db"))
			if err != nil {
				t.Fatal(err)
			}
			instance = st.InstanceID()
			st.Close()
		}
		cs, err := d.List(context.Background(), map[string]string{sandbox.LabelInstance: instance})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	t.Cleanup(func() {
		if instance == "" {
			return
		}
		cs, _ := d.List(context.Background(), map[string]string{sandbox.LabelInstance: instance})
		for _, c := range cs {
			_ = d.Remove(context.Background(), c.Name)
		}
	})
	return list
}

// TestKillDuringChurn kills rtemu with SIGKILL while sandboxes are being
// created, paused and deleted, restarts it on the same data dir, and checks
// that nothing acknowledged was lost and nothing leaked.
func TestKillDuringChurn(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	for round, killAfter := range []time.Duration{300 * time.Millisecond, 1200 * time.Millisecond, 2500 * time.Millisecond} {
		t.Run(fmt.Sprintf("kill after %v", killAfter), func(t *testing.T) {
			dataDir := t.TempDir()
			containers := instanceContainers(t, dataDir)
			p := startRtemu(t, dataDir)

			type acked struct {
				created, paused, deleted bool
			}
			var (
				mu   sync.Mutex
				acks = map[string]*acked{}
				wg   sync.WaitGroup
			)
			stop := make(chan struct{})
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						code, d := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu",
							"name": fmt.Sprintf("r%d-w%d-%d", round, w, i), "resources": map[string]any{"vcpus": 1, "memory": "128MB"}})
						if code != 201 {
							return
						}
						id := d["id"].(string)
						a := &acked{created: true}
						mu.Lock()
						acks[id] = a
						mu.Unlock()
						for p.status(id) == "creating" {
							time.Sleep(20 * time.Millisecond)
						}
						if i%3 == 0 {
							continue // left running
						}
						if code, _ := p.do("POST", "/v1/sandboxes/"+id+"/pause", nil); code == 200 {
							mu.Lock()
							a.paused = true
							mu.Unlock()
						} else {
							return
						}
						if i%3 == 1 {
							continue // left paused
						}
						if code, _ := p.do("DELETE", "/v1/sandboxes/"+id, nil); code == 200 {
							mu.Lock()
							a.deleted = true
							mu.Unlock()
						} else {
							return
						}
					}
				}(w)
			}
			time.Sleep(killAfter)
			p.kill()
			close(stop)
			wg.Wait()

			p = startRtemu(t, dataDir)
			mu.Lock()
			defer mu.Unlock()
			if len(acks) == 0 {
				t.Fatal("no sandbox was created before the kill")
			}
			settled := map[string]bool{"running": true, "paused": true, "destroyed": true, "failed": true, "error": true}
			for id, a := range acks {
				deadline := time.Now().Add(60 * time.Second)
				st := p.status(id)
				for !settled[st] && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
					st = p.status(id)
				}
				switch {
				case st == "":
					t.Errorf("%s: acknowledged create lost", id)
				case a.deleted && st != "destroyed":
					t.Errorf("%s: acknowledged delete, status %s", id, st)
				case a.paused && !a.deleted && st != "paused" && st != "destroyed":
					t.Errorf("%s: acknowledged pause, status %s", id, st)
				case !settled[st]:
					t.Errorf("%s: still %s after restart", id, st)
				case st == "error" || st == "failed":
					t.Errorf("%s: %s after restart (nothing happened behind rtemu's back)", id, st)
				}
			}
			// The records and the engine agree, and nothing leaked. A call
			// the killed rtemu had made (a pause, a helper container's
			// create) may still be finished by the engine after the
			// restart's reconcile looked; rtemu follows it from the
			// engine's events and its sweep of helpers, so agreement is
			// waited for (the bound only stops a test that would hang).
			var list []map[string]any
			var disagree []string
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
				byName := map[string]docker.Container{}
				for _, c := range containers() {
					byName[c.Name] = c
				}
				_, list = p.list()
				live := map[string]bool{}
				disagree = nil
				for _, sb := range list {
					id, st := sb["id"].(string), sb["status"].(string)
					live["rtemu-"+id] = true
					c, ok := byName["rtemu-"+id]
					switch {
					case !ok:
						disagree = append(disagree, fmt.Sprintf("%s is %s but has no container", id, st))
					case st == "running" && c.State != "running", st == "paused" && c.State != "paused":
						disagree = append(disagree, fmt.Sprintf("%s is %s but its container is %s", id, st, c.State))
					}
				}
				for name := range byName {
					if !live[name] {
						disagree = append(disagree, "leaked container "+name)
					}
				}
				if len(disagree) == 0 || time.Now().After(deadline) {
					break
				}
			}
			for _, d := range disagree {
				t.Error(d)
			}
			t.Logf("%d sandboxes acknowledged before the kill; %d live after restart", len(acks), len(list))
		})
	}
}

func (p *proc) list() (int, []map[string]any) {
	req, _ := http.NewRequest("GET", p.url+"/v1/sandboxes", nil)
	req.Header.Set("X-API-Key", emulatortest.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []map[string]any `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Data
}

// TestReconcileAtStart changes the engine and the records behind a dead
// rtemu's back and checks what the restarted rtemu makes of it.
func TestReconcileAtStart(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	testtool.Need(t, "docker.io", "docker")
	t.Parallel()
	ctx := context.Background()
	dataDir := t.TempDir()
	containers := instanceContainers(t, dataDir)
	d := driver(t)
	p := startRtemu(t, dataDir)

	create := func(name string) string {
		code, data := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu", "name": name})
		if code != 201 {
			t.Fatalf("create %s: %d", name, code)
		}
		id := data["id"].(string)
		p.waitStatus(id, "running", 30*time.Second)
		return id
	}
	vanished, kept, paused := create("vanished"), create("kept"), create("paused")
	if code, _ := p.do("POST", "/v1/sandboxes/"+paused+"/pause", nil); code != 200 {
		t.Fatal("pause failed")
	}
	p.waitStatus(paused, "paused", 10*time.Second)
	// A command starts kept's exec agent, which must not outlive rtemu.
	byDockerExec := driver(t, docker.WithoutExecAgent())
	if code, data := p.do("POST", "/v1/sandboxes/"+kept+"/exec", map[string]any{"command": "true"}); code != 200 || data["exitCode"] != float64(0) {
		t.Fatalf("exec in kept: %d %v", code, data)
	}
	if n := agentsIn(t, byDockerExec, "rtemu-"+kept); n != "1" {
		t.Fatalf("exec agents in kept: %s, want 1", n)
	}
	p.kill()
	deadline := time.Now().Add(10 * time.Second)
	for agentsIn(t, byDockerExec, "rtemu-"+kept) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the exec agent outlived rtemu's SIGKILL")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Behind its back: a container removed, an orphan container of this
	// instance with no record, and a record caught in creating.
	if err := d.Remove(ctx, "rtemu-"+vanished); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dataDir, "rtemu.db"))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := emulatortest.TestImage(ctx)
	orphan := "rtemu-sandbox-orphan000000"
	if err := d.Create(ctx, docker.ContainerSpec{Name: orphan, Image: img,
		Labels: map[string]string{sandbox.LabelInstance: st.InstanceID(), sandbox.LabelSandbox: "sandbox-orphan000000"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	// What a kill in the middle of filling the exec agent's volume leaves:
	// a helper container, created, never started, labelled with the
	// instance but no sandbox.
	helper := "rtemu-test-agent-helper-" + filepath.Base(dataDir)
	if out, err := exec.Command("docker", "create", "--name", helper, "--label", sandbox.LabelInstance+"="+st.InstanceID(),
		"--label", "rtemu.agent.helper=1", "--entrypoint", "/.rtemu/none", img).CombinedOutput(); err != nil {
		t.Fatalf("docker create: %v\n%s", err, out)
	}
	now := time.Now().UTC()
	caught := &sandbox.Sandbox{ID: "sandbox-caught000000", Template: "base-ubuntu", Image: img, Status: sandbox.StatusCreating,
		Resources: sandbox.Resources{VCPUs: 1, Memory: "256MB", Disk: "10GB"}, Env: map[string]string{"CAUGHT": "yes"},
		CreatedAt: now, UpdatedAt: now}
	if err := st.InsertSandbox(ctx, caught); err != nil {
		t.Fatal(err)
	}
	st.Close()

	p = startRtemu(t, dataDir)
	p.waitStatus(vanished, "error", 10*time.Second)
	if _, data := p.do("GET", "/v1/sandboxes/"+vanished, nil); !strings.Contains(data["error"].(string), "gone") {
		t.Errorf("error message %v", data["error"])
	}
	if s := p.status(kept); s != "running" {
		t.Errorf("kept is %s", s)
	}
	if s := p.status(paused); s != "paused" {
		t.Errorf("paused is %s", s)
	}
	p.waitStatus(caught.ID, "running", 30*time.Second)
	for _, c := range containers() {
		if c.Name == helper {
			t.Errorf("agent helper container not removed")
		}
		if c.Name == orphan {
			t.Errorf("orphan container not removed")
		}
	}
	if code, data := p.do("POST", "/v1/sandboxes/"+caught.ID+"/exec", map[string]any{"command": "echo $CAUGHT"}); code != 200 || data["stdout"] != "yes\n" {
		t.Errorf("exec in the finished sandbox: %d %v", code, data)
	}
	// The new rtemu starts kept a new agent.
	if code, data := p.do("POST", "/v1/sandboxes/"+kept+"/exec", map[string]any{"command": "echo again"}); code != 200 || data["stdout"] != "again\n" {
		t.Errorf("exec in kept after the restart: %d %v", code, data)
	}
	if n := agentsIn(t, byDockerExec, "rtemu-"+kept); n != "1" {
		t.Errorf("exec agents in kept after the restart: %s, want 1", n)
	}

	// Killed behind rtemu's back while it runs: error within seconds.
	start := time.Now()
	if err := exec.Command("docker", "kill", "rtemu-"+kept).Run(); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(kept, "error", 5*time.Second)
	t.Logf("container kill noticed in %v", time.Since(start))
	// An error sandbox can still be deleted, and its container goes.
	if code, _ := p.do("DELETE", "/v1/sandboxes/"+kept, nil); code != 200 {
		t.Fatalf("delete of error sandbox: %d", code)
	}
	for _, c := range containers() {
		if c.Name == "rtemu-"+kept {
			t.Errorf("container of deleted error sandbox left")
		}
	}
}

// TestFeedSurvivesKillAfterAnswers: an event whose answer went out is in
// the store: execs and a pause answered, then SIGKILL at once, and the
// restarted rtemu's feed has every one of them.
func TestFeedSurvivesKillAfterAnswers(t *testing.T) {
	emulatortest.SkipIfNoDocker(t)
	t.Parallel()
	dataDir := t.TempDir()
	containers := instanceContainers(t, dataDir)
	p := startRtemu(t, dataDir)
	code, data := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, data)
	}
	id := data["id"].(string)
	containers() // learns the instance, whose containers the cleanup removes
	p.waitStatus(id, "running", 30*time.Second)
	const execs = 8
	var wg sync.WaitGroup
	for i := range execs {
		wg.Go(func() {
			if code, data := p.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"command": fmt.Sprintf("echo %d", i)}); code != 200 {
				t.Errorf("exec %d: %d %v", i, code, data)
			}
		})
	}
	wg.Wait()
	if code, _ := p.do("POST", "/v1/sandboxes/"+id+"/pause", nil); code != 200 {
		t.Fatal("pause failed")
	}
	p.kill()

	p = startRtemu(t, dataDir)
	_, raw := p.doRaw("GET", "/v1/sandboxes/"+id+"/activity?limit=100", nil)
	var feed struct {
		Data struct {
			Events []map[string]any `json:"events"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(raw), &feed); err != nil {
		t.Fatalf("activity: %v: %s", err, raw)
	}
	got := map[string]int{}
	for _, e := range feed.Data.Events {
		got[fmt.Sprint(e["eventType"])]++
	}
	if got["exec"] != execs || got["paused"] != 1 {
		t.Errorf("after a kill -9 the feed has %d exec and %d paused events, want %d and 1 (all: %v)", got["exec"], got["paused"], execs, got)
	}
}
