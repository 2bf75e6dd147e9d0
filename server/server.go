// Package server wires rtemu together: store, engine, lifecycle service and
// the listeners. main uses it to serve; tests use it to run rtemu in-process.
package server

import (
	corev1 "k8s.io/api/core/v1"

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
	"github.com/rtemu-dev/rtemu/engine/kubernetes"
	"github.com/rtemu-dev/rtemu/internal/buildinfo"
	"github.com/rtemu-dev/rtemu/internal/logring"
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

	cfg   config.Config
	log   *slog.Logger
	logs  *logring.Ring
	store *store.Store
	// closeEngine closes the engine newEngine made (nil: none, or one
	// given to StartWithEngine).
	closeEngine func() error
	svc         *sandbox.Service
	devURLs     *emulator.DevURLs
	httpSrv     *http.Server
	ssh         *sshgw.Gateway
	// apiLn and sshLn are the listeners until serve hands them over.
	apiLn, sshLn net.Listener
	served       chan error
	// removeAll makes Close remove every container (--ephemeral, tests).
	removeAll bool
	// lock is the data dir's, held while this rtemu runs (instance.go).
	lock *dirLock
}

// RemoveContainersOnClose makes Close remove every container this rtemu
// made, as --ephemeral does, while keeping the data dir.
// A process that dies before Close leaves them to the next sweep (a
// marker in the temporary folder names them; instance.go).
func (s *Server) RemoveContainersOnClose() { s.removeAll = true; s.markDisposable() }

// Start opens the state, reconciles it with the engine and starts serving.
func Start(ctx context.Context, cfg config.Config, version string, log *slog.Logger) (*Server, error) {
	return start(ctx, cfg, version, log, nil)
}

// StartWithEngine is Start on an engine made elsewhere (tests of the front
// doors on engine/fake): --engine is not read, and recipe templates cannot
// be built.
func StartWithEngine(ctx context.Context, cfg config.Config, version string, log *slog.Logger, eng engine.Engine) (*Server, error) {
	return start(ctx, cfg, version, log, eng)
}

// start runs the steps in order; when one fails, abort undoes the ones
// done, whichever they were (Close's path, on what is there).
func start(ctx context.Context, cfg config.Config, version string, log *slog.Logger, eng engine.Engine) (_ *Server, err error) {
	// The dashboard's log panel: the newest lines, kept as they are logged.
	logs := logring.New(1000, slog.LevelInfo)
	log = slog.New(logs.Handler(log.Handler()))
	s := &Server{cfg: cfg, log: log, logs: logs, DataDir: cfg.DataDir, served: make(chan error, 1), removeAll: cfg.Ephemeral}
	defer func() {
		if err != nil {
			s.abort()
		}
	}()
	if err := s.openState(ctx); err != nil {
		return nil, err
	}
	made := madeEngine{Engine: eng, host: "injected engine"}
	if eng == nil {
		if made, err = newEngine(ctx, cfg, s.DataDir, log); err != nil {
			return nil, err
		}
		s.closeEngine = made.close
	}
	s.claim(ctx, made.Engine, made.host)
	if err := s.startService(ctx, made); err != nil {
		return nil, err
	}
	if err := s.loadSeed(ctx); err != nil {
		return nil, err
	}
	// One bound for every connection rtemu serves (API, dev URLs, SSH),
	// under the file limit.
	conns := netguard.ForFileLimit(log)
	if err := s.listen(ctx, conns); err != nil {
		return nil, err
	}
	s.serve(version)
	_ = s.lock.update(func(h *Holder) { h.URL, h.SSHAddr = s.URL, s.SSHAddr })
	if err := writeRunning(s.DataDir, Running{URL: s.URL, SSHAddr: s.SSHAddr, PID: os.Getpid(), Version: version}); err != nil {
		log.Warn("could not write the state file for `rtemu env`", "err", err)
	}
	log.Info("rtemu serving", "api", s.URL, "ssh", s.SSHAddr, "dataDir", s.DataDir,
		"engine", made.Capabilities().Name, "engineHost", made.host,
		"instance", s.store.InstanceID(), "ephemeral", cfg.Ephemeral)
	return s, nil
}

// openState makes the data dir (a temporary one with --ephemeral) and opens
// the store in it.
func (s *Server) openState(ctx context.Context) error {
	var err error
	if s.cfg.Ephemeral {
		if s.DataDir, err = os.MkdirTemp("", "rtemu-ephemeral-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// One rtemu per data dir: a second one fails here, naming the first.
	if s.lock, err = lockDir(s.DataDir); err != nil {
		return err
	}
	s.store, err = store.Open(ctx, filepath.Join(s.DataDir, "rtemu.db"))
	return err
}

// madeEngine is an engine as newEngine made it, with what the wiring needs
// besides the contract.
type madeEngine struct {
	engine.Engine
	host  string                  // where it is, for the log
	build sandbox.TemplateBuilder // nil: recipe templates cannot be built
	close func() error
}

// newEngine makes the engine --engine names: the one place an engine is
// chosen (each engine's options in its own case).
func newEngine(ctx context.Context, cfg config.Config, dataDir string, log *slog.Logger) (madeEngine, error) {
	switch cfg.Engine {
	case "", "docker":
		var opts []docker.Option
		if cfg.ExecAgentOff {
			opts = append(opts, docker.WithoutExecAgent())
		}
		if cfg.SharedSandboxNetwork {
			opts = append(opts, docker.WithSharedSandboxNetwork())
		}
		if !cfg.ExecAgentStreamsOnly {
			opts = append(opts, docker.WithLinkDir(filepath.Join(dataDir, "link")))
		}
		d, err := docker.New(opts...)
		if err != nil {
			return madeEngine{}, err
		}
		// Made at start where the engine answers; else at the first create.
		if _, err := d.SandboxNetwork(ctx); err != nil && !errors.Is(err, docker.ErrUnavailable) {
			log.Warn("could not make the sandboxes' network; creates will fail until it can be made", "err", err)
		}
		return madeEngine{Engine: d.Engine(), host: d.Host(), build: templates.NewBuilder(d).BuildFunc(), close: d.Close}, nil
	case "kubernetes":
		rc, err := kubernetes.LoadConfig(cfg.Kube.Kubeconfig)
		if err != nil {
			return madeEngine{}, err
		}
		k, err := kubernetes.New(kubernetes.Config{REST: rc, Namespace: cfg.Kube.Namespace,
			PullPolicy: corev1.PullPolicy(cfg.Kube.PullPolicy), HostFolders: cfg.Kube.HostFolders,
			WorkspaceClaim: cfg.Kube.WorkspaceClaim, WorkspaceRoot: sandbox.WorkspacesDir(dataDir), Logger: log})
		if err != nil {
			return madeEngine{}, err
		}
		// Closing ends its streams to the agents in pods; rtemu made it:
		// the start-up sweep and the disposable marker apply as on Docker.
		return madeEngine{Engine: k, host: rc.Host + " namespace " + k.Namespace(), close: k.Close}, nil
	}
	return madeEngine{}, fmt.Errorf("--engine %q: not docker or kubernetes", cfg.Engine)
}

// startService makes the lifecycle service on the engine and starts it
// (reconcile, watchers, warm pool).
func (s *Server) startService(ctx context.Context, eng madeEngine) error {
	cfg := s.cfg
	svc := sandbox.New(sandbox.Config{
		Store: s.store, Engine: eng.Engine, InstanceID: s.store.InstanceID(),
		Templates: cfg.Templates, Logger: s.log, DataDir: s.DataDir, WarmPool: cfg.WarmPool, StrictLifecycle: cfg.StrictLifecycle,
		ExecOutputMemory: cfg.ExecOutputMemory, DiskWatch: cfg.DiskWatch,
		BuildTemplate: eng.build,
	})
	if err := svc.Start(ctx); err != nil {
		svc.Close()
		return err
	}
	s.svc = svc
	return nil
}

// listen makes the SSH gateway and the dev URLs and opens the API's and
// the gateway's listeners; nothing is served yet.
func (s *Server) listen(ctx context.Context, conns *netguard.Budget) error {
	cfg := s.cfg
	var err error
	if s.ssh, err = sshgw.New(sshgw.Config{
		Service: s.svc, HostKeyPath: filepath.Join(s.DataDir, "ssh_host_ed25519_key"), Logger: s.log,
		Conns: conns,
	}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s.apiLn = conns.Listener(ln)
	s.URL = "http://" + ln.Addr().String()
	if s.sshLn, err = net.Listen("tcp", cfg.SSHAddr); err != nil {
		return fmt.Errorf("SSH gateway: listen on %s: %w (choose another with --ssh-addr)", cfg.SSHAddr, err)
	}
	s.SSHAddr = s.sshLn.Addr().String()
	s.devURLs = emulator.NewDevURLs(s.svc, s.log, emulator.DevURLOptions{PublicAddr: cfg.PublicAddr, NoListeners: cfg.DevURLListenersOff})
	s.devURLs.LimitConnections(conns)
	return s.devURLs.Start(ctx, ln.Addr())
}

// serve starts answering on the listeners.
func (s *Server) serve(version string) {
	cfg := s.cfg
	// Long-lived answers (the dashboard's event stream) end at shutdown:
	// http.Server.Shutdown would otherwise wait for them.
	streams, stopStreams := context.WithCancel(context.Background())
	s.httpSrv = &http.Server{
		// Dev-URL requests (Host: N-<id>.localhost) are routed before the
		// API and its authentication.
		Handler: netguard.Bodies(netguard.DefaultBodyRule, s.devURLs.Front(emulator.New(emulator.Config{
			Service: s.svc, Version: version, Commit: buildinfo.Get().Commit, APIKeys: cfg.APIKeys, AuthOff: cfg.AuthOff, Logger: s.log,
			DevURLs: s.devURLs, SSH: s.ssh, PortURLs: s.devURLs,
			DataDir: s.DataDir, SSHAddr: s.SSHAddr, PublicSSHAddr: cfg.PublicSSHAddr, StopStreams: streams.Done(),
			Logs: s.logs,
		}))),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       netguard.IdleTimeout,
		ConnContext:       netguard.ConnContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.httpSrv.RegisterOnShutdown(stopStreams)
	apiLn, sshLn := s.apiLn, s.sshLn
	s.apiLn, s.sshLn = nil, nil // the servers own them now
	go func() { s.served <- s.httpSrv.Serve(apiLn) }()
	go func() {
		if err := s.ssh.Serve(sshLn); err != nil {
			s.log.Error("SSH gateway stopped", "err", err)
		}
	}()
}

// abort undoes a start that failed part way: whatever was made is closed,
// in Close's order; the containers stay (as at any Close without
// --ephemeral).
func (s *Server) abort() {
	for _, ln := range []net.Listener{s.apiLn, s.sshLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if s.devURLs != nil {
		s.devURLs.Close()
	}
	if s.ssh != nil {
		_ = s.ssh.Close()
	}
	if s.svc != nil {
		s.svc.Close()
	}
	_ = s.closeState()
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
			err := s.svc.DestroyAll(ctx)
			// The seed's images are this rtemu's too; its folder goes with
			// the data dir (or stays with it, for a later start).
			s.svc.RemoveSeedImages(ctx)
			if err == nil {
				s.unmarkDisposable()
			}
			errs = append(errs, err)
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
	if s.closeEngine != nil {
		errs = append(errs, s.closeEngine())
	}
	errs = append(errs, s.lock.release())
	if s.cfg.Ephemeral && s.DataDir != "" {
		errs = append(errs, os.RemoveAll(s.DataDir))
	}
	return errors.Join(errs...)
}
