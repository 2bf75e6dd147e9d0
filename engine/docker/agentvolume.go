package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// agentExe is the agent's file name in its directory of the volume.
const agentExe = "rtemu-agent"

// argv starts the agent kept in directory dir of the volume.
func (f *agentFiles) argv(dir string) []string {
	base := AgentMount + "/" + dir
	if f.interp == "" {
		return []string{base + "/" + agentExe}
	}
	return []string{base + "/lib/" + filepath.Base(f.interp), "--library-path", base + "/lib", base + "/" + agentExe}
}

// tarball streams the files into directory dir, then the file "current":
// the JSON command line that starts the agent from dir. Extracting replaces
// files in place, so two rtemus filling the volume at once each write a
// directory of their own; "current", written last, only ever names a whole
// one. Any rtemu can start the agent of a container from "current" alone.
func (f *agentFiles) tarball(dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		add := func(name, src string) error {
			r, err := os.Open(src)
			if err != nil {
				return err
			}
			defer r.Close()
			fi, err := r.Stat()
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
			_, err = io.Copy(tw, r)
			return err
		}
		err := add(dir+"/"+agentExe, f.exe)
		for _, l := range f.libs {
			if err == nil {
				err = add(dir+"/lib/"+filepath.Base(l), l)
			}
		}
		launch, _ := json.Marshal(agentLaunch{Argv: f.argv(dir)})
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "current", Mode: 0o644, Size: int64(len(launch))})
		}
		if err == nil {
			_, err = tw.Write(launch)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// agentMount returns the mount a new container gets, filling the volume the
// first time (with a helper container of the same image, which the volume
// outlives). It returns nil when the volume cannot be made: the container
// then does without.
func (d *Driver) agentMount(ctx context.Context, spec ContainerSpec) []mount.Mount {
	a := d.agents
	if a == nil {
		return nil
	}
	name := spec.Name
	files, _ := a.resolve(d)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgetLocked(name)
	if files == nil {
		a.ofLocked(name).without = true
		return nil
	}
	if a.argv == nil && time.Now().After(a.retryAt) {
		if argv, err := d.fillAgentVolume(ctx, spec.Image, spec.HelperLabels); err != nil {
			// A missing image fails this container's create too; the
			// next create, of another image, tries again at once.
			if !errors.Is(err, ErrNotFound) {
				a.retryAt = time.Now().Add(time.Minute)
			}
		} else {
			a.argv = argv
			d.pruneAgentVolumes(ctx)
		}
	}
	if a.argv == nil {
		a.ofLocked(name).without = true
		return nil
	}
	a.ofLocked(name).own = true
	return []mount.Mount{{Type: mount.TypeVolume, Source: files.volume, Target: AgentMount, ReadOnly: true,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}
}

func (d *Driver) fillAgentVolume(ctx context.Context, image string, labels map[string]string) ([]string, error) {
	f := d.agents.files // resolved by the caller
	if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: f.volume, Labels: map[string]string{LabelAgent: f.exe}}); err != nil {
		return nil, wrap(err, "create volume "+f.volume)
	}
	helperLabels := map[string]string{labelAgentHelper: "1"}
	for k, v := range labels {
		helperLabels[k] = v
	}
	helper, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Entrypoint: []string{AgentMount + "/none"}, Labels: helperLabels},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: f.volume, Target: AgentMount}}},
	})
	if err != nil {
		return nil, wrap(err, "create agent helper")
	}
	defer func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.cli.ContainerRemove(rm, helper.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if argv, err := d.agentArgv(ctx, helper.ID); err == nil {
		return argv, nil
	}
	dir := newTag()[:12]
	tb := f.tarball(dir)
	defer tb.Close()
	if _, err := d.cli.CopyToContainer(ctx, helper.ID, client.CopyToContainerOptions{
		DestinationPath: AgentMount, Content: tb,
	}); err != nil {
		return nil, wrap(err, "fill "+f.volume)
	}
	return f.argv(dir), nil
}

// agentLaunch is the content of the volume's "current" file.
type agentLaunch struct {
	Argv []string `json:"argv"`
}

// agentArgv reads the command line that starts a container's agent from
// its volume; errNoAgent when it has none (or it is being rewritten).
func (d *Driver) agentArgv(ctx context.Context, name string) ([]string, error) {
	res, err := d.cli.CopyFromContainer(ctx, name, client.CopyFromContainerOptions{SourcePath: AgentMount + "/current"})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s has no %s/current", errNoAgent, name, AgentMount)
		}
		return nil, wrap(err, "read the agent's command line in "+name)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	var l agentLaunch
	if _, err := tr.Next(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoAgent, err)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 4096)).Decode(&l); err != nil || len(l.Argv) == 0 || !strings.HasPrefix(l.Argv[0], AgentMount+"/") {
		return nil, fmt.Errorf("%w: unreadable %s/current in %s", errNoAgent, AgentMount, name)
	}
	return l.Argv, nil
}

// pruneAgentVolumes removes agent volumes whose executable is gone (a test
// binary, a `go run` build) and that no container uses, and helpers a killed
// rtemu left.
func (d *Driver) pruneAgentVolumes(ctx context.Context) {
	vols, err := d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", LabelAgent)})
	if err == nil {
		for _, v := range vols.Items {
			if v.Name == d.agents.files.volume {
				continue
			}
			if _, err := os.Stat(v.Labels[LabelAgent]); err != nil {
				_, _ = d.cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}) // refused while in use
			}
		}
	}
	helpers, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", labelAgentHelper)})
	if err == nil {
		for _, h := range helpers.Items {
			if time.Since(time.Unix(h.Created, 0)) > 5*time.Minute {
				_, _ = d.cli.ContainerRemove(ctx, h.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
	}
}
