package docker_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

// The rule: a disk size is enforced where the storage driver has a size
// option and the engine took one; overlay2 refuses it off xfs with project
// quotas, and drivers without one never get asked.
func TestDecideDiskLimits(t *testing.T) {
	t.Parallel()
	overlayOffXFS := errors.New("Error response from daemon: --storage-opt is supported only for overlay over xfs with 'pquota' mount option")
	cases := []struct {
		driver   string
		err      error
		enforced bool
		why      string
	}{
		{"overlay2", nil, true, ""}, // on xfs with pquota
		{"overlay2", overlayOffXFS, false, "supported only for overlay over xfs"},
		{"btrfs", nil, true, ""},
		{"zfs", nil, true, ""},
		{"devicemapper", nil, true, ""},
		{"windowsfilter", nil, true, ""},
		{"fuse-overlayfs", nil, false, "fuse-overlayfs) has no per-container size"},
		{"vfs", nil, false, "vfs) has no per-container size"},
		{"overlay", nil, false, "no per-container size"},
	}
	for _, c := range cases {
		l := docker.DecideDiskLimits(c.driver, c.err)
		if l.Enforced != c.enforced || !strings.Contains(l.Why, c.why) || l.StorageDriver != c.driver {
			t.Errorf("%s, %v: %+v; want enforced %v, why containing %q", c.driver, c.err, l, c.enforced, c.why)
		}
	}
	if got := docker.StorageOpt(1 << 30); !reflect.DeepEqual(got, map[string]string{"size": "1073741824"}) {
		t.Errorf("StorageOpt(1 GiB) = %v", got)
	}
	if got := docker.StorageOpt(0); got != nil {
		t.Errorf("StorageOpt(0) = %v, want none", got)
	}
}

// This engine's answer, asked for real: it matches the rule for its
// storage driver, gives a reason when not enforced, and leaves no probe
// container.
func TestDiskLimitsOfThisEngine(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := context.Background()
	img := testImage(t)
	l, err := d.DiskLimits(ctx, img, map[string]string{"rtemu.drivertest": "disk"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("storage driver %s: enforced %v (%s)", l.StorageDriver, l.Enforced, l.Why)
	if l.StorageDriver == "fuse-overlayfs" && l.Enforced {
		t.Error("fuse-overlayfs has no container size, but the probe says enforced")
	}
	if !l.Enforced && l.Why == "" {
		t.Error("not enforced, and no reason")
	}
	if left, err := d.List(ctx, map[string]string{"rtemu.drivertest": "disk"}); err != nil || len(left) != 0 {
		t.Errorf("probe containers left: %v %v", left, err)
	}
}

// Create applies the disk size it is given: where the storage driver takes
// one, the suite's DiskEnforced case writes past it; where it does not
// (this machine's fuse-overlayfs, overlay2 off xfs), the engine refuses a
// create with a size, which shows the size reached it. (A create that
// dropped the size was the regression: the disk was never enforced.)
func TestCreateAppliesDiskSize(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := context.Background()
	img := testImage(t)
	l, err := d.DiskLimits(ctx, img, map[string]string{"rtemu.drivertest": "disk"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Enforced {
		t.Skip("this engine enforces disk sizes: engine/enginetest's DiskEnforced case proves it")
	}
	name := "rtemu-drivertest-disk-" + t.Name()[len("TestCreate"):]
	err = d.Create(ctx, docker.ContainerSpec{Name: name, Image: img, Labels: map[string]string{"rtemu.drivertest": "disk"},
		PidsLimit: 100, DiskBytes: 64 << 20})
	if err == nil {
		_ = d.Remove(ctx, name)
		t.Fatalf("a create with a disk size succeeded on %s, which takes none: the size was not passed", l.StorageDriver)
	}
	if !strings.Contains(err.Error(), "storage-opt") {
		t.Fatalf("create with a disk size: %v; want the engine's refusal of --storage-opt", err)
	}
}
