// Package server wires rtemu together: store, engine, lifecycle service and
// the listeners. main uses it to serve; tests use it to run rtemu in-process.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/emulator"
	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/netguard"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/sshgw"
	"github.com/rtemu-dev/rtemu/store"
	"github.com/rtemu-dev/rtemu/templates"
)

// Server is a running rtemu.
type Server struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:7070.
	URL string
	// DataDir is where the state lives.
	DataDir string
	// SSHAddr is the SSH gateway's address, the real port when
	// --ssh-addr asked for port 0.
	SSHAddr string

	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	driver  *docker.Driver
	svc     *sandbox.Service
	devURLs *emulator.DevURLs
	httpSrv *http.Server
	ssh     *sshgw.Gateway
	served  chan error
	// removeAll makes Close remove every container (--ephemeral, tests).
	removeAll bool
}

// RemoveContainersOnClose makes Close remove every container this rtemu
// made, as --ephemeral does, while keeping the data dir.
func (s *Server) RemoveContainersOnClose() { s.removeAll = true }

// Start opens the state, reconciles it with the engine and starts serving.
func Start(ctx context.Context, cfg config.Config, version string, log *slog.Logger) (*Server, error) {
	return start(ctx, cfg, version, log, nil)
}

// StartWithEngine is Start on another engine than Docker's (tests of the
// front doors on engine/fake): no Docker driver is made, and
// recipe templates cannot be built.
func StartWithEngine(ctx context.Context, cfg config.Config, version string, log *slog.Logger, eng engine.Engine) (*Server, error) {
	return start(ctx, cfg, version, log, eng)
}

func start(ctx context.Context, cfg config.Config, version string, log *slog.Logger, eng engine.Engine) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log, DataDir: cfg.DataDir, served: make(chan error, 1), removeAll: cfg.Ephemeral}
	defer func() {
		if err != nil {
			s.closeState()
		}
	}()
	if cfg.Ephemeral {
		if s.DataDir, err = os.MkdirTemp("", "rtemu-ephemeral-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.store, err = store.Open(ctx, filepath.Join(s.DataDir, "rtemu.db")); err != nil {
		return nil, err
	}
	engineHost := "injected engine"
	var build sandbox.TemplateBuilder
	if eng == nil {
		var driverOpts []docker.Option
		if cfg.ExecAgentOff {
			driverOpts = append(driverOpts, docker.WithoutExecAgent())
		}
		if cfg.SharedSandboxNetwork {
			driverOpts = append(driverOpts, docker.WithSharedSandboxNetwork())
		}
		if !cfg.ExecAgentStreamsOnly {
			driverOpts = append(driverOpts, docker.WithLinkDir(filepath.Join(s.DataDir, "link")))
		}
		if s.driver, err = docker.New(driverOpts...); err != nil {
			return nil, err
		}
		// Made at start where the engine answers; else at the first create.
		if _, err := s.driver.SandboxNetwork(ctx); err != nil && !errors.Is(err, docker.ErrUnavailable) {
			log.Warn("could not make the sandboxes' network; creates will fail until it can be made", "err", err)
		}
		eng, engineHost, build = s.driver.Engine(), s.driver.Host(), templates.NewBuilder(s.driver).BuildFunc()
	}
	s.svc = sandbox.New(sandbox.Config{
		Store: s.store, Engine: eng, InstanceID: s.store.InstanceID(),
		Templates: cfg.Templates, Logger: log, DataDir: s.DataDir, WarmPool: cfg.WarmPool, StrictLifecycle: cfg.StrictLifecycle,
		ExecOutputMemory: cfg.ExecOutputMemory, DiskWatch: cfg.DiskWatch,
		BuildTemplate: build,
	})
	if err := s.svc.Start(ctx); err != nil {
		return nil, err
	}
	// One bound for every connection rtemu serves (API, dev URLs, SSH),
	// under the file limit.
	conns := netguard.ForFileLimit(log)
	s.ssh, err = sshgw.New(sshgw.Config{
		Service: s.svc, HostKeyPath: filepath.Join(s.DataDir, "ssh_host_ed25519_key"), Logger: log,
		Conns: conns,
	})
	if err != nil {
		s.svc.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.svc.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	ln = conns.Listener(ln)
	s.URL = "http://" + ln.Addr().String()
	sshLn, err := net.Listen("tcp", cfg.SSHAddr)
	if err != nil {
		ln.Close()
		s.svc.Close()
		return nil, fmt.Errorf("SSH gateway: listen on %s: %w (choose another with --ssh-addr)", cfg.SSHAddr, err)
	}
	s.SSHAddr = sshLn.Addr().String()
	s.devURLs = emulator.NewDevURLs(s.svc, log, emulator.DevURLOptions{PublicAddr: cfg.PublicAddr, NoListeners: cfg.DevURLListenersOff})
	s.devURLs.LimitConnections(conns)
	if err := s.devURLs.Start(ctx, ln.Addr()); err != nil {
		ln.Close()
		sshLn.Close()
		s.devURLs.Close()
		s.svc.Close()
		return nil, err
	}
	// Long-lived answers (the dashboard's event stream) end at shutdown:
	// http.Server.Shutdown would otherwise wait for them.
	streams, stopStreams := context.WithCancel(context.Background())
	s.httpSrv = &http.Server{
		// Dev-URL requests (Host: N-<id>.localhost) are routed before the
		// API and its authentication.
		Handler: netguard.Bodies(netguard.DefaultBodyRule, s.devURLs.Front(emulator.New(emulator.Config{
			Service: s.svc, Version: version, APIKeys: cfg.APIKeys, AuthOff: cfg.AuthOff, Logger: log,
			DevURLs: s.devURLs, SSH: s.ssh, PortURLs: s.devURLs,
			DataDir: s.DataDir, SSHAddr: s.SSHAddr, PublicSSHAddr: cfg.PublicSSHAddr, StopStreams: streams.Done(),
		}))),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       netguard.IdleTimeout,
		ConnContext:       netguard.ConnContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.httpSrv.RegisterOnShutdown(stopStreams)
	go func() { s.served <- s.httpSrv.Serve(ln) }()
	go func() {
		if err := s.ssh.Serve(sshLn); err != nil {
			log.Error("SSH gateway stopped", "err", err)
		}
	}()
	if err := writeRunning(s.DataDir, Running{URL: s.URL, SSHAddr: s.SSHAddr, PID: os.Getpid(), Version: version}); err != nil {
		log.Warn("could not write the state file for `rtemu env`", "err", err)
	}
	log.Info("rtemu serving", "api", s.URL, "ssh", s.SSHAddr, "dataDir", s.DataDir, "docker", engineHost,
		"instance", s.store.InstanceID(), "ephemeral", cfg.Ephemeral)
	return s, nil
}

// Service is the lifecycle service (for tests and front doors).
func (s *Server) Service() *sandbox.Service { return s.svc }

// Done reports the HTTP server stopping on its own.
func (s *Server) Done() <-chan error { return s.served }

// Close stops serving, finishes background work and, with --ephemeral,
// removes every container and the state.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	if s.devURLs != nil {
		// First: proxied WebSockets and event streams never end by
		// themselves, and Shutdown would wait for them.
		s.devURLs.Close()
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if s.ssh != nil {
		// Before the service closes: SSH sessions use it until they end.
		errs = append(errs, s.ssh.Close())
	}
	if s.svc != nil {
		s.svc.Close()
		if s.removeAll {
			errs = append(errs, s.svc.DestroyAll(ctx))
		}
	}
	if s.DataDir != "" {
		_ = os.Remove(filepath.Join(s.DataDir, stateFile))
	}
	errs = append(errs, s.closeState())
	return errors.Join(errs...)
}

func (s *Server) closeState() error {
	var errs []error
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	if s.driver != nil {
		errs = append(errs, s.driver.Close())
	}
	if s.cfg.Ephemeral && s.DataDir != "" {
		errs = append(errs, os.RemoveAll(s.DataDir))
	}
	return errors.Join(errs...)
}
