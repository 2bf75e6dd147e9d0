// Package cli is rtemu's command line: serve (the default), doctor, env,
// gc, templates and version, and the client commands (sandbox, workspace,
// ssh-key) that speak the REST API at RUNTOOLS_API_URL, rtemu's or the
// hosted service's.
package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/rtemu-dev/rtemu/internal/buildinfo"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/config"
)

// Env is what a run of the command line sees of its process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Version is rtemu's version (buildinfo.Info.Version).
	Version string
	// Build is what `rtemu version` prints: the version and the commit.
	Build buildinfo.Info
	// Terminal tells whether Stderr is a terminal (a spinner, not lines).
	Terminal bool
}

// OSEnv is the process's own.
func OSEnv(build buildinfo.Info) Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: build.Version,
		Build: build, Terminal: isTerminal(os.Stderr)}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitError ends a run with a status and no message of its own (a
// command's exit code, a doctor that found a fault).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a command line that cannot be run as written: status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the command line args (without the program name) and returns
// the process's exit status: 0, 1 for a failure, 2 for a command line that
// cannot be run, or the exit code of `sandbox exec`'s command.
func Main(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(dashDash(args))
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	fmt.Fprintln(env.Stderr, "rtemu:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// dashDash lets the serve flags be written with one dash, as rtemu's
// first command line took them (-addr 127.0.0.1:0).
func dashDash(args []string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			for _, s := range config.Settings {
				if s.Flag == "--"+name {
					out[i] = "-" + a
				}
			}
		}
	}
	return out
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "rtemu",
		Short: "A local emulator of the Runtools sandbox API",
		Long: `rtemu serves the Runtools sandbox REST API on 127.0.0.1, backed by containers.
With no command it serves (rtemu serve); the flags are serve's.

The client commands (sandbox, workspace, ssh-key) speak the REST API at
RUNTOOLS_API_URL (default: the rtemu running on this machine) with
RUNTOOLS_API_KEY, so they work against the hosted service too.`,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       env.Version,
	}
	root.SetVersionTemplate("rtemu {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	serveFlags := config.AddFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), env, serveFlags) }
	root.AddGroup(&cobra.Group{ID: "server", Title: "Running rtemu:"}, &cobra.Group{ID: "client", Title: "Client commands (the REST API at RUNTOOLS_API_URL):"})
	for _, c := range []*cobra.Command{serveCmd(env), doctorCmd(env), envCmd(env), gcCmd(env), stateCmd(env), templatesCmd(env), versionCmd(env)} {
		c.GroupID = "server"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{sandboxCmd(env), workspaceCmd(env), sshKeyCmd(env)} {
		c.GroupID = "client"
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("server")
	root.SetCompletionCommandGroupID("server")
	return root
}

// noArgs refuses any argument as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

// exactArgs wants n arguments, named in the command's Use.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}

// rangeArgs wants from min to max arguments.
func rangeArgs(minN, maxN int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < minN || len(args) > maxN {
			return usageError{fmt.Errorf("%s takes %d to %d arguments, got %d: %s", cmd.CommandPath(), minN, maxN, len(args), cmd.UseLine())}
		}
		return nil
	}
}
