package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/engine/docker"
	"github.com/rtemu-dev/rtemu/templates"
)

func templatesCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "templates",
		Short: "Build and list the template images made from rtemu's recipes",
		Args:  noArgs,
	}
	var base, eng string
	build := &cobra.Command{
		Use:   "build NAME [--base IMAGE]",
		Short: "Build a template's image from rtemu's recipe",
		Long: `Build a template's image from rtemu's recipe (base-ubuntu, desktop-ubuntu), from
--base: any Debian or Ubuntu image, local ones too (offline). Images are built with
Docker; with --engine kubernetes it says how to get the image to the cluster instead.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("engine") {
				eng = env.Getenv("RTEMU_ENGINE")
			}
			switch strings.ToLower(eng) {
			case "", "docker":
			case "kubernetes":
				return exit(noBuildOnKubernetes(args[0], env.Stderr))
			default:
				return usageError{fmt.Errorf("--engine / RTEMU_ENGINE: %q is not docker or kubernetes", eng)}
			}
			return exit(buildTemplate(cmd.Context(), args[0], base, env))
		},
	}
	build.Flags().StringVar(&base, "base", "", "image to build from: any Debian or Ubuntu image (default "+templates.DefaultBase+")")
	build.Flags().StringVar(&eng, "engine", "", "docker or kubernetes: the engine sandboxes run on (env RTEMU_ENGINE; kubernetes builds nothing)")
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

func buildTemplate(ctx context.Context, name, base string, env Env) int {
	stdout, stderr := env.Stdout, env.Stderr
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
	// The build's own output, as docker build shows it; on a terminal a
	// bar of its steps.
	show := func(line string) { fmt.Fprintln(stdout, line) }
	var bar *stepBar
	if env.Terminal {
		bar = &stepBar{w: stderr}
		show = bar.line
	}
	res, err := templates.NewBuilder(d).Build(ctx, name, base, show)
	bar.end(err != nil, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		if errors.Is(err, docker.ErrUnavailable) {
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

// noBuildOnKubernetes is templates build with the Kubernetes engine, which
// builds no images (its nodes pull them or have them): it says what to do
// instead, naming the image the template maps to, and fails.
func noBuildOnKubernetes(name string, stderr io.Writer) int {
	r, err := templates.Lookup(name)
	if err != nil {
		fmt.Fprintln(stderr, "rtemu:", err)
		return 2
	}
	img := r.Image()
	fmt.Fprintf(stderr, `rtemu: the Kubernetes engine builds no images: a template there is an image name the cluster's nodes have or pull.
Template %[1]s maps to %[2]s. Build it with Docker, then bring it to the nodes:
  rtemu templates build %[1]s --engine docker
  a registry the nodes pull from:  docker tag %[2]s REGISTRY/%[3]s && docker push REGISTRY/%[3]s
                                   and serve with --template %[1]s=REGISTRY/%[3]s
  or load it into the nodes:       kind load docker-image %[2]s  |  k3d image import %[2]s  |  docker save %[2]s | ctr -n k8s.io images import -
`, name, img, strings.TrimPrefix(img, "rtemu/"))
	return 1
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

// stepBar draws a build's progress as one line redrawn in place, from
// docker build's "Step N/M : …" lines; it keeps the last lines to show
// when the build fails.
type stepBar struct {
	w    io.Writer
	tail []string
	drew bool
}

var stepLine = regexp.MustCompile(`^Step (\d+)/(\d+) : (.*)$`)

const barWidth = 24

func (b *stepBar) line(l string) {
	if b.tail = append(b.tail, l); len(b.tail) > 40 {
		b.tail = b.tail[1:]
	}
	m := stepLine.FindStringSubmatch(l)
	if m == nil {
		if strings.HasPrefix(l, "building ") || strings.Contains(l, " is up to date (") {
			b.clear()
			fmt.Fprintln(b.w, l)
		}
		return
	}
	n, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	if total < 1 || n > total {
		return
	}
	done := barWidth * (n - 1) / total
	what := m[3]
	if len(what) > 50 {
		what = what[:47] + "..."
	}
	fmt.Fprintf(b.w, "\r\033[K[%s%s] %d/%d %s", strings.Repeat("#", done), strings.Repeat("-", barWidth-done), n, total, what)
	b.drew = true
}

func (b *stepBar) clear() {
	if b.drew {
		fmt.Fprint(b.w, "\r\033[K")
		b.drew = false
	}
}

// end clears the bar and, when the build failed, prints its last lines.
func (b *stepBar) end(failed bool, out io.Writer) {
	if b == nil {
		return
	}
	b.clear()
	if failed {
		for _, l := range b.tail {
			fmt.Fprintln(out, l)
		}
	}
}
