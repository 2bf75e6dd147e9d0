package docker

import (
	"context"
	"fmt"
	"sort"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Sandboxes are kept apart from each other and from other containers on
// the engine: they run on a bridge network of rtemu's own, made once per
// engine and found again by name (and checked by label) by every later
// rtemu. On the isolated network the bridge drops traffic between its
// containers (enable_icc=false), so one sandbox cannot reach another by
// address or by name; traffic to the outside (NAT through the host) and
// from the host to a sandbox (dev URLs, ssh -L) is not inter-container
// traffic and keeps working. WithSharedSandboxNetwork puts sandboxes on a
// second network where they reach each other.
const (
	// NetworkIsolated is the default network: no traffic between sandboxes.
	NetworkIsolated = "rtemu-isolated"
	// NetworkShared is the --sandbox-network shared network.
	NetworkShared = "rtemu-shared"
	// LabelNetwork marks the networks rtemu made.
	LabelNetwork = "rtemu.network"
	iccOption    = "com.docker.network.bridge.enable_icc"
)

// sandboxNetwork is which network sandboxes join, made at most once per
// Driver (a failure is tried again at the next create). The zero value is
// the isolated network.
type sandboxNetwork struct {
	shared bool
	mu     sync.Mutex
	id     string // "" until found or made
}

// WithSharedSandboxNetwork puts sandboxes on a network where they reach
// each other (by address, container name or sandbox id), for setups that
// need it; by default they cannot.
func WithSharedSandboxNetwork() Option { return func(o *options) { o.sharedNetwork = true } }

func (n *sandboxNetwork) name() string {
	if n.shared {
		return NetworkShared
	}
	return NetworkIsolated
}

// SandboxNetwork makes the sandboxes' network if the engine lacks it and
// returns its id. It is idempotent and safe when rtemus on one engine race
// to make it: the engine's duplicate check is not atomic (20.10 makes two
// networks of one name for two concurrent creates), so every rtemu takes
// the oldest network of the name and label, removes the younger ones it
// can (unused), and refers to its choice by id, never by the ambiguous name.
func (d *Driver) SandboxNetwork(ctx context.Context) (string, error) {
	n := &d.network
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.id != "" {
		return n.id, nil
	}
	name := n.name()
	icc := "true"
	if !n.shared {
		icc = "false"
	}
	ours, err := d.networksNamed(ctx, name)
	if err != nil {
		return "", err
	}
	if len(ours) == 0 {
		_, err := d.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver:  "bridge",
			Options: map[string]string{iccOption: icc},
			Labels:  map[string]string{LabelNetwork: name},
		})
		if err != nil && !cerrdefs.IsConflict(err) { // conflict: another rtemu's, found below
			return "", wrap(err, "create network "+name)
		}
		if ours, err = d.networksNamed(ctx, name); err != nil {
			return "", err
		}
		if len(ours) == 0 {
			return "", fmt.Errorf("a Docker network named %s exists that rtemu did not make; remove it (docker network rm %s)", name, name)
		}
	}
	sort.Slice(ours, func(i, j int) bool {
		if !ours[i].Created.Equal(ours[j].Created) {
			return ours[i].Created.Before(ours[j].Created)
		}
		return ours[i].ID < ours[j].ID
	})
	chosen := ours[0]
	for _, extra := range ours[1:] {
		// The engine refuses to remove one in use: it stays, harmless.
		_, _ = d.cli.NetworkRemove(ctx, extra.ID, client.NetworkRemoveOptions{})
	}
	if chosen.Options[iccOption] != icc {
		return "", fmt.Errorf("the Docker network %s has %s=%q, not %q; remove it (docker network rm %s) and rtemu makes it again", name, iccOption, chosen.Options[iccOption], icc, name)
	}
	n.id = chosen.ID
	return n.id, nil
}

// networksNamed lists rtemu's networks of exactly that name.
func (d *Driver) networksNamed(ctx context.Context, name string) ([]network.Summary, error) {
	// The client's NetworkList reads the API version before negotiating it
	// (a data race with a first request negotiating elsewhere): a request
	// that negotiates first, under the client's lock, comes before it.
	if _, err := d.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err != nil {
		return nil, wrap(err, "docker version")
	}
	res, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name).Add("label", LabelNetwork+"="+name)})
	if err != nil {
		return nil, wrap(err, "list networks")
	}
	list := res.Items
	var out []network.Summary
	for _, n := range list {
		if n.Name == name { // the name filter matches parts of names too
			out = append(out, n)
		}
	}
	return out, nil
}

// defaultReadonlyPaths are the engine's own read-only paths (moby's
// oci.DefaultLinuxSpec): giving ReadonlyPaths replaces them, so they are
// repeated here.
var defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// sandboxReadonlyPaths adds the cgroup file system: its controllers are
// mounted read-only in an unprivileged container, but on cgroup v1 the
// tmpfs holding them is writable (a sandbox could make files there).
var sandboxReadonlyPaths = append(append([]string(nil), defaultReadonlyPaths...), "/sys/fs/cgroup")

// droppedCaps are taken from Docker's default set: NET_RAW (raw and packet
// sockets: forged packets on the bridge, ARP spoofing of neighbours) and
// MKNOD (device nodes, which the workspace file API would otherwise have to
// meet in shared folders). The rest of the default set stays, because
// ordinary programs and package managers need them: CHOWN, DAC_OVERRIDE,
// FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE,
// SYS_CHROOT, AUDIT_WRITE, SETFCAP.
var droppedCaps = []string{"NET_RAW", "MKNOD"}
