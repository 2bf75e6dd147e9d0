package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/dockerdriver"
	"github.com/rtemu-dev/rtemu/templates"
)

func templatesCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "templates",
		Short: "Build and list the template images made from rtemu's recipes",
		Args:  noArgs,
	}
	var base string
	build := &cobra.Command{
		Use:   "build NAME [--base IMAGE]",
		Short: "Build a template's image from rtemu's recipe",
		Long: `Build a template's image from rtemu's recipe (base-ubuntu, desktop-ubuntu), from
--base: any Debian or Ubuntu image, local ones too (offline).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exit(buildTemplate(cmd.Context(), args[0], base, env.Stdout, env.Stderr))
		},
	}
	build.Flags().StringVar(&base, "base", "", "image to build from: any Debian or Ubuntu image (default "+templates.DefaultBase+")")
	list := &cobra.Command{
		Use:   "list",
		Short: "The recipes, their images and whether they are built",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(listTemplates(cmd.Context(), env.Stdout, env.Stderr))
		},
	}
	c.AddCommand(build, list)
	return c
}

// exit turns an exit status into a run's error.
func exit(code int) error {
	if code == 0 {
		return nil
	}
	return exitError{code}
}

func buildTemplate(ctx context.Context, name, base string, stdout, stderr io.Writer) int {
	if _, err := templates.Lookup(name); err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 2
	}
	d, err := dockerdriver.New()
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 1
	}
	defer d.Close()
	// The build's own output, as docker build shows it.
	res, err := templates.NewBuilder(d).Build(ctx, name, base, func(line string) { fmt.Fprintln(stdout, line) })
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		if errors.Is(err, dockerdriver.ErrUnavailable) {
			fmt.Fprintln(stderr, "rtemu: is the Docker engine running? (rtemu doctor checks)")
		} else if base == "" {
			fmt.Fprintf(stderr, "rtemu: offline, build from a local Debian or Ubuntu image: rtemu templates build %s --base IMAGE\n", name)
		}
		return 1
	}
	if res.Built {
		fmt.Fprintf(stdout, "built %s: %s (from %s)\n", name, res.Image, res.Base)
	}
	return 0
}

func listTemplates(ctx context.Context, stdout, stderr io.Writer) int {
	d, err := dockerdriver.New()
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 1
	}
	defer d.Close()
	for _, r := range templates.All() {
		labels, err := d.ImageLabels(ctx, r.Image())
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "%-16s %s  built from %s\n", r.Name, r.Image(), labels[templates.LabelBase])
		case errors.Is(err, dockerdriver.ErrNotFound):
			fmt.Fprintf(stdout, "%-16s %s  not built (%s)\n", r.Name, r.Image(), r.BuildCommand())
		default:
			fmt.Fprintln(stderr, "rtemu:", err)
			return 1
		}
	}
	return 0
}
