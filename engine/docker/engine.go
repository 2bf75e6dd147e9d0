package docker

import (
	"archive/tar"
	"context"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// SharesFolder reports whether the engine sees the host folder dir at the
// same path, as a bind mount needs: true for a local engine and for Docker
// Desktop's shared folders, false for a remote engine or a VM whose file
// system is not the host's. It writes a marker file of random content into
// dir and reads it back through a bind mount of dir into a container of
// image that is created (never started) and removed.
func (d *Driver) SharesFolder(ctx context.Context, dir, image string, labels map[string]string) (bool, error) {
	token := newTag()
	marker := ".rtemu-engine-sees-" + token
	if err := os.WriteFile(filepath.Join(dir, marker), []byte(token), 0o644); err != nil {
		return false, err
	}
	defer os.Remove(filepath.Join(dir, marker))
	id, remove, err := d.probeContainer(ctx, image, labels,
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/rtemu-probe", ReadOnly: true}}})
	if err != nil {
		if strings.Contains(err.Error(), "bind source path does not exist") {
			return false, nil
		}
		return false, wrap(err, "probe whether the engine sees "+dir)
	}
	defer remove()
	res, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: "/rtemu-probe/" + marker})
	if err != nil {
		// The folder the engine mounted is another one of the same path.
		return false, nil
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		return false, nil
	}
	b, _ := io.ReadAll(io.LimitReader(tr, 64))
	return string(b) == token, nil
}

// ProbeImagePrefix names the empty images SharesFolderWithoutImage imports
// for a moment (a tag of random hex follows).
const ProbeImagePrefix = "rtemu-probe-empty:"

// SharesFolderWithoutImage is SharesFolder when no image is at hand (rtemu
// doctor before any template image is here): it imports an empty image of
// its own, offline, for the probe container and removes it afterwards.
func (d *Driver) SharesFolderWithoutImage(ctx context.Context, dir string) (bool, error) {
	ref := ProbeImagePrefix + newTag()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "rtemu-probe/", Mode: 0o755})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	rc, err := d.cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		pr.Close()
		return false, wrap(err, "import an empty image to probe with")
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	defer func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.cli.ImageRemove(rm, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}()
	return d.SharesFolder(ctx, dir, ref, nil)
}

// probeContainer creates, never to start, a container of image with host's
// settings, labelled a helper (reconcile removes one a kill left behind),
// for a question only the engine can answer. It returns the container's id
// and what removes it; an error is the engine's own, unwrapped: what the
// engine refused may be the answer.
func (d *Driver) probeContainer(ctx context.Context, image string, labels map[string]string, host *container.HostConfig) (string, func(), error) {
	helperLabels := map[string]string{labelAgentHelper: "1"}
	maps.Copy(helperLabels, labels)
	c, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Entrypoint: []string{"/rtemu-probe-never-started"}, Labels: helperLabels},
		HostConfig: host,
	})
	if err != nil {
		return "", nil, err
	}
	return c.ID, func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.cli.ContainerRemove(rm, c.ID, client.ContainerRemoveOptions{Force: true})
	}, nil
}

// Setup describes the engine and how rtemu reaches it, for `rtemu doctor`.
type Setup struct {
	// Kind is Docker Engine, Docker Desktop, Podman, Colima, OrbStack, …
	Kind     string
	Rootless bool
	// Remote: the engine is reached over TCP or SSH, not a local socket.
	Remote bool
	// Routable: this host has the engine's bridge address, so container
	// addresses would be reachable from here (rtemu does not need them).
	Routable bool
	Name     string
}

// Setup asks the engine what it is.
func (d *Driver) Setup(ctx context.Context) (Setup, error) {
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Setup{}, wrap(err, "engine info")
	}
	info := res.Info
	s := Setup{Kind: "Docker Engine", Name: info.Name}
	osName := strings.ToLower(info.OperatingSystem)
	switch {
	case strings.Contains(osName, "docker desktop"):
		s.Kind = "Docker Desktop"
	case strings.Contains(osName, "orbstack"):
		s.Kind = "OrbStack"
	case strings.Contains(strings.ToLower(info.Name), "colima"):
		s.Kind = "Colima"
	case strings.Contains(strings.ToLower(info.Name), "lima"):
		s.Kind = "Lima"
	}
	if v, err := d.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		for _, c := range v.Components {
			if strings.Contains(strings.ToLower(c.Name), "podman") {
				s.Kind = "Podman"
			}
		}
	}
	for _, o := range info.SecurityOptions {
		if strings.Contains(o, "rootless") {
			s.Rootless = true
		}
	}
	if u, err := url.Parse(d.host); err == nil {
		s.Remote = u.Scheme == "tcp" || u.Scheme == "ssh" || u.Scheme == "http" || u.Scheme == "https"
	}
	if nw, err := d.cli.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{}); err == nil {
		for _, c := range nw.Network.IPAM.Config {
			if _, subnet, err := net.ParseCIDR(c.Subnet.String()); err == nil && hostHasAddressIn(subnet) {
				s.Routable = true
			}
		}
	}
	return s, nil
}

// hostHasAddressIn: this host has an address on the subnet (the bridge's
// own), so it routes to the containers on it.
func hostHasAddressIn(subnet *net.IPNet) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
			return true
		}
	}
	return false
}
