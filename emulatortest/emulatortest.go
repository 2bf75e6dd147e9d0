// Package emulatortest runs rtemu in-process for tests, as net/http/httptest
// runs an HTTP server:
//
//	srv := emulatortest.New(t)
//	// point a client at srv.URL with srv.APIKey
//
// The server listens on 127.0.0.1 with an ephemeral port, keeps its state in
// the test's temporary directory, maps every template to a small offline
// image, and removes every container it made when the test ends.
package emulatortest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/dockerdriver"
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

// Option changes how New starts rtemu.
type Option func(*config.Config)

// WithTemplate maps a template to an image; "" means TestImage. By default
// base-ubuntu and desktop-ubuntu map to TestImage.
func WithTemplate(name, image string) Option {
	return func(c *config.Config) {
		for i := range c.Templates {
			if c.Templates[i].Name == name {
				c.Templates[i].Image = image
				return
			}
		}
		c.Templates = append(c.Templates, sandbox.Template{Name: name, Image: image})
	}
}

// WithAPIKeys turns on strict mode with these keys.
func WithAPIKeys(keys ...string) Option { return func(c *config.Config) { c.APIKeys = keys } }

// WithAuthOff accepts requests with any key or none.
func WithAuthOff() Option { return func(c *config.Config) { c.AuthOff = true } }

// WithDataDir keeps the state in dir (to restart rtemu on the same state).
func WithDataDir(dir string) Option { return func(c *config.Config) { c.DataDir = dir } }

// SkipIfNoDocker skips the test when no Docker engine answers.
func SkipIfNoDocker(t testing.TB) {
	t.Helper()
	d, err := dockerdriver.New()
	if err == nil {
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = d.Ping(ctx)
	}
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
}

// New starts rtemu for the test and stops it, removing its containers, at
// the test's end. It fails the test when the engine or the test image is
// missing.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := TestImage(ctx)
	if err != nil {
		t.Fatalf("emulatortest: %v", err)
	}
	cfg := config.Config{
		Addr:      "127.0.0.1:0",
		SSHAddr:   "127.0.0.1:0",
		DataDir:   t.TempDir(),
		Templates: []sandbox.Template{{Name: "base-ubuntu", Image: img}, {Name: "desktop-ubuntu", Image: img}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	for i := range cfg.Templates {
		if cfg.Templates[i].Image == "" {
			cfg.Templates[i].Image = img
		}
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.Start(ctx, cfg, "test", log)
	if err != nil {
		t.Fatalf("emulatortest: start rtemu: %v", err)
	}
	srv.RemoveContainersOnClose()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("emulatortest: stop rtemu: %v", err)
		}
	})
	key := APIKey
	if len(cfg.APIKeys) > 0 {
		key = cfg.APIKeys[0]
	}
	return &Server{Server: srv, APIKey: key}
}
