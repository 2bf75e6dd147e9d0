// Command rtemu is a local emulator of the Runtools sandbox API, backed by
// Docker containers and SQLite.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/internal/buildinfo"
	"github.com/rtemu-dev/rtemu/server"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Println(buildinfo.Get())
		return 0
	case "serve", "doctor", "env":
	case "templates":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return templatesCommand(ctx, args, os.Stdout, os.Stderr)
	case "help":
		fmt.Println("usage: rtemu [serve|doctor|env|templates|version] [flags]; rtemu serve -h lists the flags")
		return 0
	default:
		fmt.Fprintf(os.Stderr, "rtemu: unknown command %q (serve, doctor, env, templates, version)\n", cmd)
		return 2
	}
	cfg, err := config.Parse(args, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtemu:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "env" {
		return printEnv(ctx, cfg)
	}
	if cmd == "doctor" {
		if !server.Doctor(ctx, cfg, os.Stdout) {
			return 1
		}
		return 0
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	build := buildinfo.Get()
	log.Info("rtemu starting", "version", build.Version, "commit", build.ShortCommit())
	srv, err := server.Start(ctx, cfg, build.Version, log)
	if err != nil {
		log.Error("rtemu could not start", "err", err)
		return 1
	}
	fmt.Printf("rtemu %s: API %s, SSH %s, data dir %s\n", build.Version, srv.URL, srv.SSHAddr, srv.DataDir)
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		log.Error("API server stopped", "err", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Close(shutdown); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// localKey is the key `rtemu env` hands out when any well-formed key works.
const localKey = "rt_test_rtemu000000000000000000000000000"

// printEnv prints the shell lines that point the SDK at the rtemu running on
// the configured data dir: eval "$(rtemu env)".
func printEnv(ctx context.Context, cfg config.Config) int {
	r, err := server.FindRunning(ctx, cfg.DataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtemu:", err)
		return 1
	}
	key := localKey
	if len(cfg.APIKeys) > 0 {
		key = cfg.APIKeys[0]
	}
	fmt.Printf("export RUNTOOLS_API_URL=%s RUNTOOLS_API_KEY=%s\n", r.URL, key)
	return 0
}
