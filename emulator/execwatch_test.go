package emulator_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"
)

// execWatch counts the Docker execs made in a container while it watches:
// every exec agent rtemu starts is one (a command run through an agent
// already started is none). It follows the engine's live events (its
// record of past events is short and loses them under load), and knows it
// has seen everything up to a moment by making an exec of its own (created,
// never started) and waiting for that one's event.
type execWatch struct {
	t         *testing.T
	cli       *dockerclient.Client
	container string
	cancel    context.CancelFunc
	mu        sync.Mutex
	seen      map[string]bool
	n         int
}

func watchExecs(t *testing.T, containerName string) *execWatch {
	t.Helper()
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &execWatch{t: t, cli: cli, container: containerName, cancel: cancel, seen: map[string]bool{}}
	t.Cleanup(func() { cancel(); cli.Close() })
	msgs, _ := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("container", containerName), filters.Arg("event", "exec_create"))})
	go func() {
		for m := range msgs {
			w.mu.Lock()
			w.seen[m.Actor.Attributes["execID"]] = true
			w.n++
			w.mu.Unlock()
		}
	}()
	w.sync() // the subscription is live from here
	w.count()
	return w
}

// sync makes a marker exec and waits until its event has come.
func (w *execWatch) sync() {
	w.t.Helper()
	ex, err := w.cli.ContainerExecCreate(context.Background(), w.container, container.ExecOptions{Cmd: []string{"true"}})
	if err != nil {
		w.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		ok := w.seen[ex.ID]
		w.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the engine's event for exec %s did not come", ex.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// count returns the execs made since the last count (its own markers not
// counted).
func (w *execWatch) count() int {
	w.t.Helper()
	w.sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n - 1 // the marker
	w.n = 0
	return n
}
