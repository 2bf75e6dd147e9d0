package kubernetes

import (
	"context"
	"fmt"
	"io"

	"github.com/rtemu-dev/rtemu/engine"
)

// The Kubernetes API has no commit of a pod's container to an image, nor
// an image save or load: nodes pull from registries. So the engine says
// Snapshot: false, and a state archive refuses sandboxes on it rather than
// saving a file system it cannot bring back.
var errNoSnapshot = fmt.Errorf("the Kubernetes engine cannot capture a pod's file system (no commit of a container in the Kubernetes API): %w", engine.ErrUnsupported)

// Snapshot is unsupported (errNoSnapshot).
func (e *Engine) Snapshot(ctx context.Context, name, ref string, labels map[string]string) error {
	return errNoSnapshot
}

// SaveImages is unsupported (errNoSnapshot).
func (e *Engine) SaveImages(ctx context.Context, refs []string, opts engine.SaveOptions, w io.Writer) error {
	return errNoSnapshot
}

// LoadImages is unsupported (errNoSnapshot).
func (e *Engine) LoadImages(ctx context.Context, r io.Reader) error { return errNoSnapshot }

// RemoveImage is unsupported (errNoSnapshot).
func (e *Engine) RemoveImage(ctx context.Context, ref string) error { return errNoSnapshot }
