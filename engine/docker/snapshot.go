package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/engine"
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

// SaveImages streams docker save of the images to w. With opts.Without,
// the layers the images share with those (a prefix of theirs: the image
// they were made from) are left out: docker load skips a layer whose chain
// it has and reads no file for it. docker save writes its manifest.json
// after the layers, so the save goes to a file in opts.Dir first, and is
// copied from there without those layers.
func (d *Driver) SaveImages(ctx context.Context, refs []string, opts engine.SaveOptions, w io.Writer) error {
	if len(opts.Without) > 0 {
		return d.saveWithout(ctx, refs, opts, w)
	}
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

func (d *Driver) saveWithout(ctx context.Context, refs []string, opts engine.SaveOptions, w io.Writer) error {
	var bases [][]string
	for _, ref := range opts.Without {
		img, err := d.cli.ImageInspect(ctx, ref)
		if err != nil {
			return wrap(err, "inspect image "+ref)
		}
		bases = append(bases, img.RootFS.Layers)
	}
	spool, err := os.CreateTemp(opts.Dir, "images-*.tar")
	if err != nil {
		return fmt.Errorf("save images: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	rc, err := d.cli.ImageSave(ctx, refs)
	if err != nil {
		return wrap(err, "save images")
	}
	// Copied to the file whole, reading the manifest and the images'
	// configs on the way.
	var manifest []struct {
		Config string
		Layers []string
	}
	configs := map[string][]byte{}
	tr := tar.NewReader(io.TeeReader(rc, spool))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rc.Close()
			return wrap(err, "save images")
		}
		switch {
		case h.Name == "manifest.json":
			err = json.NewDecoder(tr).Decode(&manifest)
		case !strings.Contains(h.Name, "/") && strings.HasSuffix(h.Name, ".json"):
			configs[h.Name], err = io.ReadAll(io.LimitReader(tr, 16<<20))
		}
		if err != nil {
			rc.Close()
			return fmt.Errorf("save images: the engine's %s: %w", h.Name, err)
		}
	}
	_, err = io.Copy(io.Discard, rc) // the tar's end: a reader of the file needs none
	rc.Close()
	if err != nil {
		return wrap(err, "save images")
	}
	skip := map[string]bool{}
	for _, m := range manifest {
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(configs[m.Config], &cfg); err != nil || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			return fmt.Errorf("save images: the engine's image config %s does not list its %d layers", m.Config, len(m.Layers))
		}
		for i := range m.Layers {
			if builtOn(cfg.RootFS.DiffIDs[:i+1], bases) {
				skip[m.Layers[i]] = true
			}
		}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("save images: %w", err)
	}
	tr, tw := tar.NewReader(bufio.NewReaderSize(spool, 1<<16)), tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("save images: %w", err)
		}
		if skip[h.Name] {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// builtOn says whether chain (an image's first layers) is the start of one
// of bases' layers.
func builtOn(chain []string, bases [][]string) bool {
	for _, b := range bases {
		if len(b) >= len(chain) && slices.Equal(b[:len(chain)], chain) {
			return true
		}
	}
	return false
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
