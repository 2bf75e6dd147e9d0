package fake

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rtemu-dev/rtemu/engine"
)

// imageEntry is the name of one image in the fake's image archives: a tar
// with an empty file per image, named by its ref.
const imageEntry = "fake-image/"

// Snapshot makes an image of a container. The fake keeps no files, so the
// image is its name; a container made from it is like any other.
func (e *Engine) Snapshot(ctx context.Context, name, ref string, labels map[string]string) error {
	if err := e.cannot("snapshot a container", func(c engine.Capabilities) bool { return c.Snapshot }); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnsupported, err)
	}
	if err := e.before(ctx, "Snapshot", name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[name]; !ok {
		return fmt.Errorf("snapshot %s: %w", name, engine.ErrNotFound)
	}
	e.images[ref] = true
	return nil
}

// SaveImages writes the images as a tar of one empty file per image (the
// fake's images have no layers: opts.Without leaves nothing out).
func (e *Engine) SaveImages(ctx context.Context, refs []string, opts engine.SaveOptions, w io.Writer) error {
	if err := e.cannot("save images", func(c engine.Capabilities) bool { return c.Snapshot }); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnsupported, err)
	}
	if err := e.before(ctx, "SaveImages", ""); err != nil {
		return err
	}
	e.mu.Lock()
	for _, r := range refs {
		if !e.images[r] {
			e.mu.Unlock()
			return fmt.Errorf("save image %s: %w", r, engine.ErrNotFound)
		}
	}
	e.mu.Unlock()
	tw := tar.NewWriter(w)
	for _, r := range refs {
		if err := tw.WriteHeader(&tar.Header{Name: imageEntry + r, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
	}
	return tw.Close()
}

// LoadImages reads an archive SaveImages wrote; anything else is refused
// and loads nothing.
func (e *Engine) LoadImages(ctx context.Context, r io.Reader) error {
	if err := e.cannot("load images", func(c engine.Capabilities) bool { return c.Snapshot }); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnsupported, err)
	}
	if err := e.before(ctx, "LoadImages", ""); err != nil {
		return err
	}
	var refs []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("load images: %w", err)
		}
		ref, ok := strings.CutPrefix(h.Name, imageEntry)
		if !ok {
			return fmt.Errorf("load images: %s is not an image of the fake", h.Name)
		}
		refs = append(refs, ref)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ref := range refs {
		e.images[ref] = true
	}
	return nil
}

// RemoveImage forgets an image.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	if err := e.cannot("remove images", func(c engine.Capabilities) bool { return c.Snapshot }); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnsupported, err)
	}
	if err := e.before(ctx, "RemoveImage", ref); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.images, ref)
	return nil
}
