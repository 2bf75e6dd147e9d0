package docker

import (
	"sync"
	"time"
)

// execGates keep the start of a Docker exec and a pause of the same
// container apart. A pause that freezes an exec's `runc init` halfway
// through its start leaves it frozen for good: the engine's shim for that
// container (Docker 20.10 with containerd here) then answers nothing, not
// the unpause, not a removal, and the engine's stats of every container
// stall behind it (seen in this machine's CI: a dashboard test paused a
// sandbox while one of its agents was being started). So every exec the
// driver starts holds its container's gate shared until its process runs,
// and Pause holds it alone.
type execGates struct {
	mu sync.Mutex
	of map[string]*sync.RWMutex
}

func (g *execGates) get(name string) *sync.RWMutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.of == nil {
		g.of = map[string]*sync.RWMutex{}
	}
	m := g.of[name]
	if m == nil {
		m = &sync.RWMutex{}
		g.of[name] = m
	}
	return m
}

func (g *execGates) forget(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.of, name)
}

// execStarting holds the container's gate shared; the returned function
// lets it go (once).
func (d *Driver) execStarting(name string) (started func()) {
	g := d.gates.get(name)
	g.RLock()
	var once sync.Once
	return func() { once.Do(g.RUnlock) }
}

// startedPollLimit bounds the wait for a Docker exec's process to run.
const startedPollLimit = 10 * time.Second
