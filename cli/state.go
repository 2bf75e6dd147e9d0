package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/server"
)

func stateCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Save the whole state to a file, or load one",
		Long: `Save rtemu's whole state (records, workspaces' files, each sandbox's file system) to one
archive file, or load one (docs/state.md). Both speak to the rtemu serving --data-dir (or
RUNTOOLS_API_URL / --api-url); with none running, they work on the data dir directly.
rtemu serve --seed FILE starts from an archive, and POST /_emulator/reset {"to":"seed"}
returns to it.`,
		Args: noArgs,
	}
	c.AddCommand(stateSaveCmd(env), stateLoadCmd(env))
	return c
}

// stateTarget is where a state command works: a running rtemu's API, or
// (nil client) the data dir of cfg.
func stateTarget(ctx context.Context, env Env, f *config.Flags, apiURL string) (*client.Client, config.Config, error) {
	cfg, err := f.Config(env.Getenv)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	if apiURL == "" {
		apiURL = env.Getenv("RUNTOOLS_API_URL")
	}
	if apiURL == "" {
		if r, err := server.FindRunning(ctx, cfg.DataDir); err == nil {
			apiURL = r.URL
		}
	}
	if apiURL == "" {
		return nil, cfg, nil
	}
	apiKey := env.Getenv("RUNTOOLS_API_KEY")
	if len(cfg.APIKeys) > 0 && f.Changed("api-key") {
		apiKey = cfg.APIKeys[0]
	}
	if apiKey == "" {
		apiKey = localKey
	}
	// No bound on the call: an archive of many sandboxes takes minutes.
	return client.New(apiURL, apiKey, &http.Client{}), cfg, nil
}

// stateRun gives c the flags of a state command (rtemu's, and --api-url)
// and runs do on the rtemu they name: cl is the running one's client, or
// nil for a stopped data dir (cfg).
func stateRun(c *cobra.Command, env Env, do func(ctx context.Context, cl *client.Client, cfg config.Config, args []string) error) func(*cobra.Command, []string) error {
	f := config.AddFlags(c.Flags())
	var apiURL string
	c.Flags().StringVar(&apiURL, "api-url", "", "the running rtemu's origin (env RUNTOOLS_API_URL; default: the one serving --data-dir); its key: --api-key or RUNTOOLS_API_KEY")
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, cfg, err := stateTarget(ctx, env, f, apiURL)
		if err != nil {
			return err
		}
		return do(ctx, cl, cfg, args)
	}
}

func stateSaveCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "save FILE",
		Short: "Write the whole state to FILE",
		Args:  exactArgs(1),
	}
	var reference bool
	c.Flags().BoolVar(&reference, "reference-images", false, "refer to the sandboxes' base images by name instead of putting them in FILE (smaller; a load needs those images in its engine)")
	c.RunE = stateRun(c, env, func(ctx context.Context, cl *client.Client, cfg config.Config, args []string) error {
		// Into a file beside FILE, renamed at the end: FILE is a whole
		// archive or is not touched.
		tmp, err := os.CreateTemp(filepath.Dir(args[0]), "."+filepath.Base(args[0])+".partial-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if cl != nil {
			err = cl.SaveStateWith(ctx, tmp, client.SaveStateOptions{ReferenceImages: reference})
		} else {
			err = server.SaveStopped(ctx, cfg, env.Version, quietLog(env), sandbox.SaveOptions{ReferenceImages: reference}, tmp)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if err := os.Rename(tmp.Name(), args[0]); err != nil {
			return err
		}
		st, _ := os.Stat(args[0])
		fmt.Fprintf(env.Stdout, "saved the state to %s (%d MB)\n", args[0], st.Size()>>20)
		return nil
	})
	return c
}

func stateLoadCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "load FILE",
		Short: "Replace the whole state with FILE's (it becomes the seed to reset to)",
		Args:  exactArgs(1),
	}
	c.RunE = stateRun(c, env, func(ctx context.Context, cl *client.Client, cfg config.Config, args []string) error {
		in, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer in.Close()
		var n int
		if cl != nil {
			res, err := cl.LoadState(ctx, in)
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			n = res.Sandboxes
		} else {
			res, err := server.LoadStopped(ctx, cfg, env.Version, quietLog(env), in)
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			n = res.Sandboxes
		}
		fmt.Fprintf(env.Stdout, "loaded %s: %d sandboxes\n", args[0], n)
		return nil
	})
	return c
}

// quietLog is the log of an rtemu a state command starts on a data dir:
// warnings only.
func quietLog(env Env) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
