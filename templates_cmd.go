package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/templates"
)

const templatesUsage = `usage: rtemu templates build NAME [--base IMAGE]   build a template's image from rtemu's recipe
       rtemu templates list                          the recipes, their images and whether they are built`

// templatesCommand runs `rtemu templates …`.
func templatesCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, templatesUsage)
		return 2
	}
	switch args[0] {
	case "build":
		return buildTemplate(ctx, args[1:], stdout, stderr)
	case "list":
		return listTemplates(ctx, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, templatesUsage)
		return 0
	}
	fmt.Fprintf(stderr, "rtemu templates: unknown command %q\n%s\n", args[0], templatesUsage)
	return 2
}

func buildTemplate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtemu templates build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "", "image to build from: any Debian or Ubuntu image (default "+templates.DefaultBase+")")
	// The name may come before or after the flags.
	var name string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	if name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, templatesUsage)
		return 2
	}
	if _, err := templates.Lookup(name); err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 2
	}
	d, err := docker.New()
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 1
	}
	defer d.Close()
	// The build's own output, as docker build shows it.
	res, err := templates.NewBuilder(d).Build(ctx, name, *base, func(line string) { fmt.Fprintln(stdout, line) })
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		if errors.Is(err, docker.ErrUnavailable) {
			fmt.Fprintln(stderr, "rtemu: is the Docker engine running? (rtemu doctor checks)")
		} else if *base == "" {
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
	d, err := docker.New()
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
		case errors.Is(err, docker.ErrNotFound):
			fmt.Fprintf(stdout, "%-16s %s  not built (%s)\n", r.Name, r.Image(), r.BuildCommand())
		default:
			fmt.Fprintln(stderr, "rtemu:", err)
			return 1
		}
	}
	return 0
}
