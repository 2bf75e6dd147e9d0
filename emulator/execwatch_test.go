package emulator_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	dockerclient "github.com/moby/moby/client"
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
	seen      []string        // exec ids in the order their events came
	markers   map[string]bool // this watch's own execs
	counted   int             // seen[:counted] have been counted
}

func watchExecs(t *testing.T, containerName string) *execWatch {
	t.Helper()
	cli, err := dockerclient.New(dockerclient.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &execWatch{t: t, cli: cli, container: containerName, cancel: cancel, markers: map[string]bool{}}
	t.Cleanup(func() { cancel(); cli.Close() })
	msgs := cli.Events(ctx, dockerclient.EventsListOptions{Filters: make(dockerclient.Filters).Add("type", "container").Add("container", containerName).Add("event", "exec_create")}).Messages
	go func() {
		for m := range msgs {
			w.mu.Lock()
			w.seen = append(w.seen, m.Actor.Attributes["execID"])
			w.mu.Unlock()
		}
	}()
	w.sync() // the subscription is live from here
	w.count()
	return w
}

// sync makes marker execs until the event of one has come: everything the
// engine did before that marker has been seen. The first markers may be
// made before the subscription is live, so their events never come.
func (w *execWatch) sync() {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ex, err := w.cli.ExecCreate(context.Background(), w.container, dockerclient.ExecCreateOptions{Cmd: []string{"true"}})
		if err != nil {
			w.t.Fatal(err)
		}
		w.mu.Lock()
		w.markers[ex.ID] = true
		w.mu.Unlock()
		for again := time.Now().Add(time.Second); time.Now().Before(again); time.Sleep(10 * time.Millisecond) {
			w.mu.Lock()
			ok := slices.Contains(w.seen[w.counted:], ex.ID)
			w.mu.Unlock()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the engine's events for the execs made in %s did not come", w.container)
		}
	}
}

// count returns the execs made since the last count (its own markers not
// counted).
func (w *execWatch) count() int {
	w.t.Helper()
	w.sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range w.seen[w.counted:] {
		if !w.markers[id] {
			n++
		}
	}
	w.counted = len(w.seen)
	return n
}
