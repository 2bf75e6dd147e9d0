package fake

import (
	"context"
	"fmt"

	"github.com/rtemu-dev/rtemu/engine"
)

// diskFake is what the fake says of disks: not enforced unless
// SetDiskLimits says otherwise, and each container's files at their
// image's 4 MiB plus what SetDiskUsed added.
type diskFake struct {
	limits *engine.DiskLimits
	used   map[string]int64
}

// baseDisk is a fake container's files before anything is written.
const baseDisk = 4 << 20

// SetDiskLimits sets what DiskLimits answers.
func (e *Engine) SetDiskLimits(l engine.DiskLimits) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disk.limits = &l
}

// SetDiskUsed sets the size of a container's files, as if the sandbox had
// written them.
func (e *Engine) SetDiskUsed(name string, bytes int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.disk.used == nil {
		e.disk.used = map[string]int64{}
	}
	e.disk.used[name] = bytes
}

// chargeDisk adds n bytes to a container's files, as a write does; false,
// adding nothing, where the fake enforces disk (SetDiskLimits) and they
// would pass the container's size (ContainerSpec.DiskBytes, on top of its
// image's files, as an engine's quota holds the writable layer).
func (e *Engine) chargeDisk(name string, n int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return false
	}
	used, ok := e.disk.used[name]
	if !ok {
		used = baseDisk
	}
	if l := e.disk.limits; l != nil && l.Enforced && c.spec.DiskBytes > 0 && used-baseDisk+n > c.spec.DiskBytes {
		return false
	}
	if e.disk.used == nil {
		e.disk.used = map[string]int64{}
	}
	e.disk.used[name] = used + n
	return true
}

// DiskLimits answers as SetDiskLimits said: by default, not enforced.
func (e *Engine) DiskLimits(ctx context.Context, image string, labels map[string]string) (engine.DiskLimits, error) {
	if err := e.before(ctx, "DiskLimits", ""); err != nil {
		return engine.DiskLimits{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.images[image] {
		return engine.DiskLimits{}, fmt.Errorf("probe disk limits with %s: %w", image, engine.ErrNotFound)
	}
	if e.disk.limits != nil {
		return *e.disk.limits, nil
	}
	return engine.DiskLimits{StorageDriver: "fake", Why: "the fake engine keeps no files"}, nil
}

// DiskUsed is the size of a container's files.
func (e *Engine) DiskUsed(ctx context.Context, name string) (int64, error) {
	if err := e.before(ctx, "DiskUsed", name); err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[name]; !ok {
		return 0, fmt.Errorf("disk used by %s: %w", name, engine.ErrNotFound)
	}
	if n, ok := e.disk.used[name]; ok {
		return n, nil
	}
	return baseDisk, nil
}
