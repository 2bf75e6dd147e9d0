package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Snapshot commits the container (docker commit): its image plus its
// writable layer become the image ref. Docker pauses a running container for
// the commit and leaves a paused one paused.
//
// A commit copies the container's labels onto the image, and a container
// made from an image inherits the image's labels: a snapshot would carry the
// old container's rtemu labels (its sandbox, instance, agent link folder)
// into every container made from it. Docker merges the container's labels
// under the commit's, so each one the container's image did not have is
// blanked here (the image's own, like rtemu.start, stay); a container made
// later sets its own.
func (d *Driver) Snapshot(ctx context.Context, name, ref string, labels map[string]string) error {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return wrap(err, "inspect "+name)
	}
	var imageLabels map[string]string
	if img, err := d.cli.ImageInspect(ctx, res.Container.Image); err == nil && img.Config != nil {
		imageLabels = img.Config.Labels
	}
	cfg := &container.Config{Labels: map[string]string{}}
	if res.Container.Config != nil {
		for k, v := range res.Container.Config.Labels {
			if iv, ok := imageLabels[k]; !ok || iv != v {
				cfg.Labels[k] = ""
			}
		}
	}
	maps.Copy(cfg.Labels, labels)
	_, err = d.cli.ContainerCommit(ctx, name, client.ContainerCommitOptions{Reference: ref, Config: cfg})
	return wrap(err, "commit "+name)
}

// SaveImages streams docker save of the images to w.
func (d *Driver) SaveImages(ctx context.Context, refs []string, w io.Writer) error {
	rc, err := d.cli.ImageSave(ctx, refs)
	if err != nil {
		return wrap(err, "save images")
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return wrap(err, "save images")
	}
	return nil
}

// LoadImages feeds an archive of SaveImages to docker load. The engine
// answers 200 and reports a bad archive inside its progress stream, so the
// stream is read to its end for an error.
func (d *Driver) LoadImages(ctx context.Context, r io.Reader) error {
	res, err := d.cli.ImageLoad(ctx, r, client.ImageLoadWithQuiet(true))
	if err != nil {
		return wrap(err, "load images")
	}
	defer res.Close()
	dec := json.NewDecoder(res)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("load images: reading the engine's answer: %w", err)
		}
		if m.Error != nil {
			return fmt.Errorf("load images: %s", m.Error.Message)
		}
	}
}

// RemoveImage removes an image by its ref (the image goes when no other
// ref or container holds it).
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	_, err := d.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	return wrap(err, "remove image "+ref)
}
