// Package emulatortest runs rtemu in-process for tests, as net/http/httptest
// runs an HTTP server:
//
//	srv := emulatortest.New(t)
//	// point a client at srv.URL with srv.APIKey
//
// The server listens on 127.0.0.1 with ephemeral ports, keeps its state in
// a temporary directory, maps every template to a small offline image, and
// removes every container it made when the test ends.
package emulatortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/engine/fake"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

// APIKey is a well-formed key that rtemu accepts by default.
const APIKey = "rt_test_0123456789abcdefghijklmnopqrstuv"

// Server is a running in-process rtemu.
type Server struct {
	*server.Server
	// APIKey is a key the server accepts.
	APIKey string
}

// settings is what the options change.
type settings struct {
	cfg            config.Config
	logOut         io.Writer
	keepContainers bool
	engine         engine.Engine // nil: Docker's
}

// Option changes how rtemu is started.
type Option func(*settings)

// WithTemplate maps a template to an image; "" means TestImage. By default
// base-ubuntu and desktop-ubuntu map to TestImage.
func WithTemplate(name, image string) Option {
	return func(s *settings) {
		for i := range s.cfg.Templates {
			if s.cfg.Templates[i].Name == name {
				s.cfg.Templates[i].Image = image
				return
			}
		}
		s.cfg.Templates = append(s.cfg.Templates, sandbox.Template{Name: name, Image: image})
	}
}

// WithRecipeTemplate adds (or replaces) a template whose image is built
// from an rtemu recipe, as the built-in templates are, with no fallback
// image: a missing image is then built at the first create.
func WithRecipeTemplate(name, recipe, image string) Option {
	return func(s *settings) {
		t := sandbox.Template{Name: name, Image: image, Recipe: recipe}
		for i := range s.cfg.Templates {
			if s.cfg.Templates[i].Name == name {
				s.cfg.Templates[i] = t
				return
			}
		}
		s.cfg.Templates = append(s.cfg.Templates, t)
	}
}

// WithAPIKeys turns on strict mode with these keys.
func WithAPIKeys(keys ...string) Option { return func(s *settings) { s.cfg.APIKeys = keys } }

// WithAuthOff accepts requests with any key or none.
func WithAuthOff() Option { return func(s *settings) { s.cfg.AuthOff = true } }

// WithDataDir keeps the state in dir (to restart rtemu on the same state).
func WithDataDir(dir string) Option { return func(s *settings) { s.cfg.DataDir = dir } }

// WithSeed starts rtemu from a state archive (rtemu state save, GET
// /_emulator/state); Server.ResetToSeed goes back to it.
func WithSeed(file string) Option { return func(s *settings) { s.cfg.Seed = file } }

// WithContainersKept leaves the sandboxes' containers running at Close, as
// a real rtemu does, so a test can start rtemu again on the same data dir.
func WithContainersKept() Option { return func(s *settings) { s.keepContainers = true } }

// WithWarmPool keeps n started containers of a template ready for creates
// (--warm-pool TEMPLATE=N).
func WithWarmPool(template string, n int) Option {
	return func(s *settings) {
		if s.cfg.WarmPool == nil {
			s.cfg.WarmPool = map[string]int{}
		}
		s.cfg.WarmPool[template] = n
	}
}

// WithExecOutputMemory sets the memory buffered exec output shares before
// it spills to files (--exec-output-memory).
func WithExecOutputMemory(bytes int) Option {
	return func(s *settings) { s.cfg.ExecOutputMemory = bytes }
}

// WithDiskWatch measures sandboxes' files this often where the engine
// cannot enforce their disk.
func WithDiskWatch(every time.Duration) Option {
	return func(s *settings) { s.cfg.DiskWatch = every }
}

// WithStrictLifecycle answers exec on a sandbox that is not running with
// a 409 at once (--strict-lifecycle).
func WithStrictLifecycle() Option { return func(s *settings) { s.cfg.StrictLifecycle = true } }

// WithExecAgentStreams keeps the exec agent off its link (--exec-agent
// streams): commands and ports go by the engine's streams, as on Docker
// Desktop.
func WithExecAgentStreams() Option {
	return func(s *settings) { s.cfg.ExecAgentStreamsOnly = true }
}

// WithSharedSandboxNetwork lets sandboxes reach each other
// (--sandbox-network shared).
func WithSharedSandboxNetwork() Option {
	return func(s *settings) { s.cfg.SharedSandboxNetwork = true }
}

// WithEngine runs rtemu on another engine than Docker's: a fake engine
// (see Fake) for tests that are about the front doors (bad input, auth,
// envelopes, pagination, the OpenAPI document, SSH authentication) and need
// no real containers. Templates then map to FakeImage.
func WithEngine(e engine.Engine) Option { return func(s *settings) { s.engine = e } }

// FakeImage is the image templates map to on a fake engine.
const FakeImage = "rtemu-test/fake:1"

// Fake is an in-memory engine that has FakeImage, for WithEngine.
func Fake() *fake.Engine { return fake.New(FakeImage) }

// WithFake runs rtemu on a fresh fake engine (WithEngine(Fake())).
func WithFake() Option { return WithEngine(Fake()) }

// WithLog sends rtemu's warnings and errors to w.
func WithLog(w io.Writer) Option { return func(s *settings) { s.logOut = w } }

// Docker is a Docker driver for a test that looks behind rtemu's back at
// the containers (inspect, list, remove); it is closed when the test ends.
// Tests outside engine/ use it instead of importing the engine.
func Docker(t testing.TB) *docker.Driver {
	t.Helper()
	routeEngine()
	d, err := docker.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// DockerNetwork is the Docker network rtemu puts sandboxes on: the
// isolated one, or the shared one (WithSharedSandboxNetwork).
func DockerNetwork(shared bool) string {
	if shared {
		return docker.NetworkShared
	}
	return docker.NetworkIsolated
}

// DockerState is what Docker says of a container (Docker.Inspect).
type DockerState = docker.State

// DockerNetworkLabel marks the Docker networks rtemu made.
const DockerNetworkLabel = docker.LabelNetwork

// SkipIfNoDocker skips the test when no Docker engine answers, or when
// the test image cannot be made for want of a static busybox
// (ErrNoBusybox).
func SkipIfNoDocker(t testing.TB) {
	t.Helper()
	routeEngine()
	d, err := docker.New()
	if err == nil {
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = d.Ping(ctx)
	}
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	if _, err := TestImage(t.Context()); errors.Is(err, ErrNoBusybox) {
		t.Skip(err)
	}
}

// New starts rtemu for the test and stops it, removing its containers, at
// the test's end. It fails the test when the engine or the test image is
// missing.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	routeEngine()
	opts = append([]Option{WithLog(t.Output()), WithDataDir(t.TempDir())}, opts...)
	srv, err := Start(context.Background(), opts...)
	if err != nil {
		t.Fatalf("emulatortest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulatortest: stop rtemu: %v", err)
		}
	})
	return srv
}

// Start starts rtemu outside a test (in an example, a TestMain or a tool).
// Close stops it and removes its containers, and its state unless
// WithDataDir was given.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var s settings
	for _, o := range opts {
		o(&s)
	}
	img := FakeImage
	if s.engine == nil {
		var err error
		if img, err = TestImage(ctx); err != nil {
			return nil, err
		}
	}
	s = settings{
		cfg: config.Config{
			Addr:      "127.0.0.1:0",
			SSHAddr:   "127.0.0.1:0",
			Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}, {Name: "desktop-ubuntu", Image: img}},
			// The runs without a route stand for Docker Desktop and remote
			// engines, where no socket of rtemu's reaches a container: the
			// agent goes by the engine's streams there (docs/exec-agent.md).
			ExecAgentStreamsOnly: NoRoute() != "",
		},
		logOut: io.Discard,
	}
	for _, o := range opts {
		o(&s)
	}
	for i := range s.cfg.Templates {
		if s.cfg.Templates[i].Image == "" {
			s.cfg.Templates[i].Image = img
		}
	}
	// No data dir: a temporary one, removed at Close.
	s.cfg.Ephemeral = s.cfg.DataDir == ""
	log := slog.New(slog.NewTextHandler(s.logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var srv *server.Server
	var err error
	if s.engine != nil {
		srv, err = server.StartWithEngine(ctx, s.cfg, "test", log, s.engine)
	} else {
		srv, err = server.Start(ctx, s.cfg, "test", log)
	}
	if err != nil {
		return nil, fmt.Errorf("start rtemu: %w", err)
	}
	if !s.keepContainers {
		srv.RemoveContainersOnClose()
	}
	key := APIKey
	if len(s.cfg.APIKeys) > 0 {
		key = s.cfg.APIKeys[0]
	}
	return &Server{Server: srv, APIKey: key}, nil
}

// Close stops rtemu and removes every container it made.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Server.Close(ctx)
}

// ResetToSeed brings rtemu back to the state it was seeded with (WithSeed,
// or a load): POST /_emulator/reset {"to":"seed"}. It returns how many
// sandboxes came back, each running or paused as it was saved.
func (s *Server) ResetToSeed(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/_emulator/reset", strings.NewReader(`{"to":"seed"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			SandboxesRestored int `json:"sandboxesRestored"`
		} `json:"data"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("reset to the seed: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reset to the seed: %s: %s", resp.Status, out.Error.Message)
	}
	return out.Data.SandboxesRestored, nil
}

// SaveOption is a choice of SaveState.
type SaveOption func(*url.Values)

// ReferenceImages makes SaveState refer to the sandboxes' base images by
// name instead of holding them (?referenceImages=true): the archive is
// smaller, and a load needs those images in the engine.
func ReferenceImages() SaveOption {
	return func(q *url.Values) { q.Set("referenceImages", "true") }
}

// SaveState writes the whole state as an archive to w (GET
// /_emulator/state), for WithSeed.
func (s *Server) SaveState(ctx context.Context, w io.Writer, opts ...SaveOption) error {
	q := url.Values{}
	for _, o := range opts {
		o(&q)
	}
	u := s.URL + "/_emulator/state"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", s.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("save the state: %s: %s", resp.Status, b)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
