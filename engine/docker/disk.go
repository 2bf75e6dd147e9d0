package docker

import (
	"context"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/engine"
)

// DiskLimits says whether the engine enforces a container's disk size.
type DiskLimits = engine.DiskLimits

// sizeDrivers are the storage drivers whose containers take a size
// (--storage-opt size): overlay2 only on xfs mounted with pquota, which
// the engine checks at create.
var sizeDrivers = map[string]bool{"overlay2": true, "btrfs": true, "zfs": true, "devicemapper": true, "windowsfilter": true}

// decideDiskLimits is the rule: enforced when the storage driver has a size
// option and the engine accepted one at create (overlay2 refuses it off
// xfs with project quotas).
func decideDiskLimits(storageDriver string, createErr error) DiskLimits {
	l := DiskLimits{StorageDriver: storageDriver}
	switch {
	case !sizeDrivers[storageDriver]:
		l.Why = "the engine's storage driver (" + storageDriver + ") has no per-container size"
	case createErr != nil:
		msg := createErr.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[i:], "storage") {
			msg = msg[i+2:]
		}
		l.Why = "the engine refused a container size: " + msg
	default:
		l.Enforced = true
	}
	return l
}

// DiskLimits asks the engine whether it enforces a disk size: it creates a
// container with one (never started, removed at once) from image.
func (d *Driver) DiskLimits(ctx context.Context, image string, labels map[string]string) (DiskLimits, error) {
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return DiskLimits{}, wrap(err, "engine info")
	}
	info := res.Info
	if !sizeDrivers[info.Driver] {
		return decideDiskLimits(info.Driver, nil), nil
	}
	_, remove, err := d.probeContainer(ctx, image, labels, &container.HostConfig{StorageOpt: map[string]string{"size": "1G"}})
	if err == nil {
		remove()
	} else if cerrdefs.IsNotFound(err) || client.IsErrConnectionFailed(err) {
		// No image yet, or no engine: nothing learnt.
		return DiskLimits{}, wrap(err, "probe disk limits")
	}
	return decideDiskLimits(info.Driver, err), nil
}

// storageOpt is the engine's option for a disk of n bytes.
func storageOpt(n int64) map[string]string {
	if n <= 0 {
		return nil
	}
	return map[string]string{"size": strconv.FormatInt(n, 10)}
}

// DiskUsed is the size of a container's files: its image and what was
// written (the engine walks the writable layer to tell).
func (d *Driver) DiskUsed(ctx context.Context, name string) (int64, error) {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{Size: true})
	if err != nil {
		return 0, wrap(err, "inspect "+name)
	}
	ins := res.Container
	if ins.SizeRootFs != nil {
		return *ins.SizeRootFs, nil
	}
	if ins.SizeRw != nil {
		return *ins.SizeRw, nil
	}
	return 0, nil
}
