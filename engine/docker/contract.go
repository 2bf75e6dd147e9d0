package docker

import (
	"context"

	"github.com/rtemu-dev/rtemu/engine"
)

// Engine is the Driver as the lifecycle service sees it (engine.Engine):
// the same calls, with Docker's container states and event actions mapped
// onto the contract's (package engine). The Driver's own Inspect, List and
// Watch keep Docker's words for the tests and tools that want them.
type Engine struct{ *Driver }

// Engine adapts the driver to the service's contract.
func (d *Driver) Engine() Engine { return Engine{d} }

// status maps a Docker container state onto the contract's.
func status(docker string) engine.Status {
	switch docker {
	case "created":
		return engine.Created
	case "running", "restarting":
		return engine.Running
	case "paused":
		return engine.Paused
	}
	return engine.Exited // exited, dead, removing
}

// eventKinds maps the Docker event actions the service cares about; the
// others (create, attach, exec_start, kill, …) are not passed on.
var eventKinds = map[string]engine.EventKind{
	"start":   engine.EventStarted,
	"die":     engine.EventDied,
	"destroy": engine.EventRemoved,
	"oom":     engine.EventOOM,
	"pause":   engine.EventPaused,
	"unpause": engine.EventUnpaused,
}

// Inspect returns the container's state; engine.ErrNotFound when it does
// not exist.
func (e Engine) Inspect(ctx context.Context, name string) (engine.State, error) {
	st, err := e.Driver.Inspect(ctx, name)
	if err != nil {
		return engine.State{}, err
	}
	s := status(st.Status)
	if st.Paused {
		s = engine.Paused
	}
	return engine.State{Status: s, ExitCode: st.ExitCode, IP: st.IP, Labels: st.Labels}, nil
}

// List returns every container (running or not) carrying all the labels.
func (e Engine) List(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	cs, err := e.Driver.List(ctx, labels)
	if err != nil {
		return nil, err
	}
	out := make([]engine.Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, engine.Container{Name: c.Name, Labels: c.Labels, Status: status(c.State)})
	}
	return out, nil
}

// Watch streams the events of containers carrying all the labels until ctx
// ends or the connection breaks; the error channel says which.
func (e Engine) Watch(ctx context.Context, labels map[string]string) (<-chan engine.Event, <-chan error) {
	evs, errs := e.Driver.Watch(ctx, labels)
	out := make(chan engine.Event)
	go func() {
		defer close(out)
		for ev := range evs {
			kind, ok := eventKinds[ev.Action]
			if !ok {
				continue
			}
			select {
			case out <- engine.Event{Kind: kind, Name: ev.Name, Labels: ev.Labels, ExitCode: ev.ExitCode}:
			case <-ctx.Done():
				// The driver's goroutine reports ctx's end on errs.
				for range evs {
				}
				return
			}
		}
	}()
	return out, errs
}

// provisionSlots bounds the containers made and started at once: Docker
// goes no faster with more (on the 2-core machine of BENCHMARKS.md, 4 and 8
// parallel creates both reach about 4/s), but every call waiting inside it
// waits longer: with 60 creates in flight, a delete or the Docker exec that
// starts an exec agent took seconds.
const provisionSlots = 4

// Capabilities: Docker pauses with the cgroup freezer (memory kept),
// bind-mounts host folders it sees, sizes disks where its storage driver
// can, gives network aliases, updates limits in place, builds images and
// refuses a CPU limit above the host's, commits containers to images and
// saves and loads them (Snapshot); it stops its containers before it
// stops answering. Commands run on exec agents kept per container
// (agent.go), by the link where the engine shares rtemu's folders.
func (d *Driver) Capabilities() engine.Capabilities {
	return engine.Capabilities{
		Name:  "Docker",
		Pause: true, SharedFolders: true, DiskQuota: true, PeerNames: true, UpdateLimits: true, ImageBuild: true,
		AgentLink:        d.agents != nil && d.linkDir != "" && LinksSupported && !d.linkOff.Load(),
		CPUsCappedToHost: true, StopsContainersWhenDown: true, Snapshot: true,
		ExecSlots: agentsKept, ProvisionSlots: provisionSlots, AgentIdleLimit: agentIdleFor,
	}
}
