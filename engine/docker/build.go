package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// LabelStart on an image names a program rtemu starts in the background
// when it starts a sandbox's container (a desktop's X and VNC servers). The
// container's own command stays rtemu's keep-alive loop, so a program that
// exits or fails never stops the sandbox.
const LabelStart = "rtemu.start"

// BuildSpec is an image build from a Dockerfile.
type BuildSpec struct {
	// Context is a tar stream holding the Dockerfile at its root.
	Context io.Reader
	Tag     string
	Args    map[string]string
	Labels  map[string]string
}

// Build builds an image with the engine's classic builder (the one every
// engine has, API 1.41 included), calling progress with each line of the
// build's output. It returns the image's id.
func (d *Driver) Build(ctx context.Context, spec BuildSpec, progress func(string)) (string, error) {
	args := make(map[string]*string, len(spec.Args))
	for k, v := range spec.Args {
		args[k] = &v
	}
	resp, err := d.cli.ImageBuild(ctx, spec.Context, client.ImageBuildOptions{
		Tags: []string{spec.Tag}, BuildArgs: args, Labels: spec.Labels,
		// A failed step leaves no intermediate containers behind.
		Remove: true, ForceRemove: true,
		Version: build.BuilderV1,
	})
	if err != nil {
		return "", wrap(err, "build "+spec.Tag)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var id, partial string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("build %s: reading progress: %w", spec.Tag, err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("build %s: %s", spec.Tag, strings.TrimSpace(m.Error.Message))
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		// The stream splits output anywhere; hand on whole lines.
		partial += m.Stream
		for {
			line, rest, ok := strings.Cut(partial, "\n")
			if !ok {
				break
			}
			partial = rest
			if progress != nil {
				progress(strings.TrimRight(line, "\r"))
			}
		}
	}
	if partial != "" && progress != nil {
		progress(partial)
	}
	if id == "" {
		// Old engines report no aux id: ask for the tag's.
		img, err := d.cli.ImageInspect(ctx, spec.Tag)
		if err != nil {
			return "", wrap(err, "build "+spec.Tag)
		}
		id = img.ID
	}
	return id, nil
}

// ImageLabels returns an image's labels; ErrNotFound when the engine lacks
// the image.
func (d *Driver) ImageLabels(ctx context.Context, ref string) (map[string]string, error) {
	img, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, wrap(err, "inspect image "+ref)
	}
	if img.Config == nil || img.Config.Labels == nil {
		return map[string]string{}, nil
	}
	return img.Config.Labels, nil
}

// keepAliveFor is the command a sandbox container runs: the keep-alive
// loop, with the image's rtemu.start program (if it names one) started in
// the background first. The program's path comes in as $0, never spliced
// into the script, so no label value can change what the shell runs.
func (d *Driver) keepAliveFor(ctx context.Context, image string) ([]string, error) {
	img, err := d.cli.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		// ContainerCreate says the same, in its own words.
		return keepAlive, nil
	}
	if err != nil {
		return nil, wrap(err, "inspect image "+image)
	}
	if img.Config == nil || img.Config.Labels[LabelStart] == "" {
		return keepAlive, nil
	}
	return []string{"/bin/sh", "-c", `"$0" & while :; do sleep 86400; done`, img.Config.Labels[LabelStart]}, nil
}
