package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/server"
)

func serveCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve the API and the SSH gateway (the default command)",
		Long: `Serve the Runtools sandbox API, the dev-URL proxy and the dashboard on --addr, and the
SSH gateway on --ssh-addr, keeping state in --data-dir. Every flag has an environment
variable (named in its help); a flag on the command line wins. One rtemu serves a data dir
at a time. Ctrl-C stops it; its sandboxes keep running, unless --ephemeral.`,
		Args: noArgs,
	}
	f := config.AddFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), env, f) }
	return c
}

func serve(ctx context.Context, env Env, f *config.Flags) error {
	cfg, err := f.Config(env.Getenv)
	if err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	log.Info("rtemu starting", "version", env.Version, "commit", env.Build.ShortCommit())
	srv, err := server.Start(ctx, cfg, env.Version, log)
	if err != nil {
		return fmt.Errorf("could not start: %w", err)
	}
	fmt.Fprintf(env.Stdout, "rtemu %s: API %s, SSH %s, data dir %s\n", env.Version, srv.URL, srv.SSHAddr, srv.DataDir)
	var served error
	select {
	case <-ctx.Done():
	case served = <-srv.Done():
		log.Error("API server stopped", "err", served)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	left := srv.Leftovers(shutdown)
	if err := srv.Close(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if left != "" {
		fmt.Fprint(env.Stderr, left)
	}
	if served != nil {
		return exitError{1}
	}
	return nil
}

func doctorCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "doctor [flags]",
		Short: "Check that rtemu can run here",
		Long: `Check what rtemu needs, one line a check: is the container engine reachable, what kind
of engine and setup it is, which exec agent is used, whether the engine sees the data dir,
is each template's image present, are the addresses free. It takes serve's flags, to check
the configuration serve would run with. Exit status 1 when something is wrong.`,
		Args: noArgs,
	}
	f := config.AddFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.Config(env.Getenv)
		if err != nil {
			return usageError{err}
		}
		if !server.Doctor(cmd.Context(), cfg, env.Stdout) {
			return exitError{1}
		}
		return nil
	}
	return c
}

// localKey is the key `rtemu env` hands out when any well-formed key works.
const localKey = "rt_test_rtemu000000000000000000000000000"

func envCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "env [flags]",
		Short: "Print the SDK's environment for the running rtemu",
		Long: `Print the shell lines that point the SDK (and rtemu's client commands) at the rtemu
serving --data-dir:

  eval "$(rtemu env)"`,
		Args: noArgs,
	}
	f := config.AddFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.Config(env.Getenv)
		if err != nil {
			return usageError{err}
		}
		r, err := server.FindRunning(cmd.Context(), cfg.DataDir)
		if err != nil {
			return err
		}
		key := localKey
		if len(cfg.APIKeys) > 0 {
			key = cfg.APIKeys[0]
		}
		fmt.Fprintf(env.Stdout, "export RUNTOOLS_API_URL=%s RUNTOOLS_API_KEY=%s\n", r.URL, key)
		return nil
	}
	return c
}

func gcCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Remove what --ephemeral rtemus that died left behind",
		Long: `Remove the containers and temporary folders of --ephemeral rtemus whose process died
(kill -9, a crash, a test binary's timeout), as every rtemu serve does at start. A folder whose
rtemu still runs is never touched, nor any container of a data dir that is not ephemeral.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.GC(cmd.Context(), env.Stdout)
		},
	}
}

func versionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rtemu's version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if env.Build.Version == "" {
				env.Build.Version = env.Version
			}
			fmt.Fprintln(env.Stdout, env.Build)
			return nil
		},
	}
}
