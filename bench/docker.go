package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync/atomic"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// benchLabel marks the baseline's containers, so they are removed at the
// end whatever happened.
const benchLabel = "rtemu.bench"

// raw is the baseline: the Docker API used directly, as a program would.
type raw struct {
	cli   *client.Client
	image string
	seq   atomic.Int64
	run   string // this run's id, in every baseline container's name and label
}

// spec is the container rtemu makes for a default sandbox: same image,
// init, keep-alive command, limits, working dir.
func (r *raw) spec(nanoCPUs int64) (*container.Config, *container.HostConfig) {
	init := true
	pids := int64(4096)
	return &container.Config{
			Image: r.image, Labels: map[string]string{benchLabel: r.run}, WorkingDir: "/workspace",
			Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "while :; do sleep 86400; done"},
		}, &container.HostConfig{Init: &init, Resources: container.Resources{
			NanoCPUs: nanoCPUs, Memory: 4 << 30, PidsLimit: &pids,
		}}
}

func (r *raw) createStart(ctx context.Context, nanoCPUs int64) (string, error) {
	return r.createStartOn(ctx, nanoCPUs, "")
}

// createStartOn is createStart on the network named (rtemu's own, say); ""
// is the engine's default bridge.
func (r *raw) createStartOn(ctx context.Context, nanoCPUs int64, network string) (string, error) {
	cfg, host := r.spec(nanoCPUs)
	host.NetworkMode = container.NetworkMode(network)
	c, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: fmt.Sprintf("rtemu-bench-%s-%d", r.run, r.seq.Add(1))})
	if err != nil {
		return "", err
	}
	_, err = r.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
	return c.ID, err
}

func (r *raw) remove(ctx context.Context, id string) error {
	_, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	return err
}

// exec runs a command the way `docker exec` does: create, attach, start,
// drain, then read the exit code.
func (r *raw) exec(ctx context.Context, id string, cmd ...string) error {
	ex, err := r.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return err
	}
	hj, err := r.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return err
	}
	_, err = stdcopy.StdCopy(io.Discard, io.Discard, hj.Reader)
	hj.Close()
	if err != nil {
		return err
	}
	st, err := r.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		return fmt.Errorf("exec %v: exit %d", cmd, st.ExitCode)
	}
	return nil
}

func dockerCLI(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %v: %v: %s", args, err, out)
	}
	return nil
}

// cleanup removes every baseline container of this run.
func (r *raw) cleanup(ctx context.Context) {
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", benchLabel+"="+r.run)})
	if err != nil {
		return
	}
	cs := res.Items
	for _, c := range cs {
		_, _ = r.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}
