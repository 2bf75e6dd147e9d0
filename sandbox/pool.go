package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/engine"
)

// The warm pool keeps started containers per template so a create hands one
// out instead of waiting for Docker to create and start one.
//
// A pooled sandbox must not be told from a cold one, and a started
// container's name, hostname, labels, env and binds cannot change. So:
//   - the sandbox id is chosen when the pool container is made: the
//     container is already rtemu-<id> with hostname and rtemu.sandbox label
//     of that id, and Create gives the sandbox that id;
//   - limits are set with a live update (UpdateLimits) when the request's
//     differ from the defaults the pool containers are made with;
//   - the sandbox's env is given to every exec and attach (for every
//     sandbox, so both kinds behave the same), since the container's own env
//     was fixed before the sandbox existed;
//   - a sandbox with workspace mounts is always made cold.
//
// Pool containers also carry rtemu.pool=TEMPLATE. Reconcile leaves the ones
// this process holds alone and removes any other container with no record
// (a previous run's pool), and DestroyAll (--ephemeral exit, reset) removes
// them with every container of the instance.

// LabelPool marks a container made ahead for a template's warm pool.
const LabelPool = "rtemu.pool"

type warmPool struct {
	mu     sync.Mutex
	size   map[string]int      // template → containers to keep ready
	idle   map[string][]string // template → ready sandbox ids, oldest first
	making map[string]int      // template → containers being made now
	owned  map[string]bool     // container names the pool holds (idle or being handed over)
	handed map[string]bool     // sandbox ids handed out whose provision has not run yet
	gen    int                 // bumped by reset: containers of an older generation are dropped
	// Of idle containers: when their exec agent was last used (started,
	// or kept from going idle), and their address.
	warmed map[string]time.Time
	ips    map[string]string
	// refreshing: a refresh of agents is under way.
	refreshing bool
	paused     bool
	wake       chan struct{}
}

func (p *warmPool) init(sizes map[string]int) {
	p.size, p.idle, p.making = map[string]int{}, map[string][]string{}, map[string]int{}
	p.owned, p.handed = map[string]bool{}, map[string]bool{}
	p.warmed, p.ips = map[string]time.Time{}, map[string]string{}
	p.wake = make(chan struct{}, 1)
	for t, n := range sizes {
		if n > 0 {
			p.size[t] = n
		}
	}
}

func (p *warmPool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// owns says whether a container is the pool's (so not an orphan).
func (p *warmPool) owns(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.owned[name]
}

// fromPool says (once) whether a sandbox's container came from the pool.
func (p *warmPool) fromPool(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok := p.handed[id]
	delete(p.handed, id)
	return ok
}

// address returns (once) the address read when a handed-out container was
// made, so its provision need not ask the engine.
func (p *warmPool) address(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ip, ok := p.ips[id]
	delete(p.ips, id)
	return ip, ok
}

// handedOver ends a hand-out: the container is now its record's (ok) or is
// about to be removed.
func (p *warmPool) handedOver(name string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.owned, name)
	id := strings.TrimPrefix(name, "rtemu-")
	delete(p.warmed, id)
	if !ok {
		delete(p.handed, id)
		delete(p.ips, id)
	}
}

// forget drops a container that went away behind the pool's back.
func (p *warmPool) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.owned[name] {
		return
	}
	delete(p.owned, name)
	id := strings.TrimPrefix(name, "rtemu-")
	delete(p.warmed, id)
	delete(p.ips, id)
	for t, ids := range p.idle {
		for i, x := range ids {
			if x == id {
				p.idle[t] = append(ids[:i:i], ids[i+1:]...)
			}
		}
	}
	p.poke()
}

// WarmPoolReady reports how many started containers wait in a template's
// pool now.
func (s *Service) WarmPoolReady(template string) int {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	return len(s.pool.idle[template])
}

// startPool checks the pool's templates and starts filling it.
func (s *Service) startPool() error {
	if len(s.pool.size) == 0 {
		return nil
	}
	for t := range s.pool.size {
		if _, ok := s.templates[t]; !ok {
			return fmt.Errorf("--warm-pool %s: unknown template %q (configured: %v)", t, t, s.order)
		}
	}
	s.goBackground(s.fillPool)
	return nil
}

// fillPool keeps every template's pool full, making up to two containers
// of a template at a time.
func (s *Service) fillPool(ctx context.Context) {
	const perTemplate = 2
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		s.pool.mu.Lock()
		if !s.pool.paused && s.engineUp.Load() {
			for t, n := range s.pool.size {
				for len(s.pool.idle[t])+s.pool.making[t] < n && s.pool.making[t] < perTemplate {
					s.pool.making[t]++
					gen := s.pool.gen
					tpl := s.templates[t]
					s.goBackground(func(ctx context.Context) { s.makePooled(ctx, tpl, gen) })
				}
			}
		}
		s.pool.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.pool.wake:
		case <-tick.C:
			s.refreshPoolAgents()
		}
	}
}

// warmAgent starts (or keeps) a pool container's exec agent by running
// `true` through it.
func (s *Service) warmAgent(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.engine.Exec(ctx, name, engine.ExecSpec{Cmd: []string{"true"}})
	return err
}

// refreshPoolAgents runs a command on every idle pool container whose agent
// has not been used for poolAgentRefresh, one at a time, in the background.
func (s *Service) refreshPoolAgents() {
	every := s.poolAgentRefresh()
	if every <= 0 {
		return // the engine keeps no agents to keep warm
	}
	s.pool.mu.Lock()
	if s.pool.refreshing {
		s.pool.mu.Unlock()
		return
	}
	var due []string
	for _, ids := range s.pool.idle {
		for _, id := range ids {
			if time.Since(s.pool.warmed[id]) >= every {
				due = append(due, id)
			}
		}
	}
	if len(due) == 0 {
		s.pool.mu.Unlock()
		return
	}
	s.pool.refreshing = true
	s.pool.mu.Unlock()
	s.goBackground(func(ctx context.Context) {
		defer func() {
			s.pool.mu.Lock()
			s.pool.refreshing = false
			s.pool.mu.Unlock()
		}()
		for _, id := range due {
			if err := s.warmAgent(ctx, "rtemu-"+id); err != nil {
				continue // claimed or gone meanwhile; its first exec starts one
			}
			s.pool.mu.Lock()
			if s.pool.owned["rtemu-"+id] {
				s.pool.warmed[id] = time.Now()
			}
			s.pool.mu.Unlock()
		}
	})
}

// makePooled makes and starts one pool container with the default limits.
func (s *Service) makePooled(ctx context.Context, tpl Template, gen int) {
	id := newID()
	name := "rtemu-" + id
	ip, err := s.makePooledContainer(ctx, tpl, id)
	s.pool.mu.Lock()
	s.pool.making[tpl.Name]--
	keep := err == nil && ctx.Err() == nil && gen == s.pool.gen && !s.pool.paused
	if keep {
		s.pool.idle[tpl.Name] = append(s.pool.idle[tpl.Name], id)
		s.pool.owned[name] = true
		s.pool.warmed[id], s.pool.ips[id] = time.Now(), ip
	}
	s.pool.mu.Unlock()
	if !keep {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("warm pool: could not make a container", "template", tpl.Name, "err", err)
		}
		_ = s.engine.Remove(context.WithoutCancel(ctx), name)
		if err != nil {
			// Not at once again: the engine or the image is the problem.
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
	s.pool.poke()
}

// makePooledContainer makes and starts a pool container, starts its exec
// agent (so the sandbox's first command does not wait for the Docker exec
// that starts it) and returns its address.
func (s *Service) makePooledContainer(ctx context.Context, tpl Template, id string) (string, error) {
	sb := &Sandbox{ID: id, Template: tpl.Name, Image: s.templateImage(ctx, tpl)}
	if err := s.ensureImage(ctx, sb, s.log); err != nil {
		return "", err
	}
	cpus, mem := s.limits(Resources{VCPUs: DefaultVCPUs, Memory: DefaultMemory})
	spec := engine.ContainerSpec{
		Name:     sb.ContainerName(),
		Image:    sb.Image,
		Hostname: id[len("sandbox-"):],
		Aliases:  s.aliases(id),
		Labels: map[string]string{
			LabelSandbox: id, LabelInstance: s.instance, LabelTemplate: tpl.Name, LabelPool: tpl.Name,
		},
		NanoCPUs:     cpus,
		MemoryBytes:  mem,
		HelperLabels: s.helperLabels(),
		PidsLimit:    s.pidsLimit,
		WorkingDir:   WorkspacePath,
		DiskBytes:    s.diskBytes(ctx, sb.Image, DefaultDisk),
	}
	if err := s.engineCreate(ctx, spec); err != nil {
		return "", err
	}
	if err := s.engine.Start(ctx, spec.Name); err != nil {
		return "", err
	}
	st, err := s.engine.Inspect(ctx, spec.Name)
	if err != nil {
		return "", err
	}
	if err := s.warmAgent(ctx, spec.Name); err != nil {
		return "", fmt.Errorf("start the exec agent: %w", err)
	}
	return st.IP, nil
}

// limits turns a sandbox's resources into the engine's CPU and memory limits.
func (s *Service) limits(res Resources) (nanoCPUs, memoryBytes int64) {
	mem, _ := ParseSize(res.Memory)
	return int64(s.clampCPUs(res.VCPUs)) * 1e9, mem
}

// takePooled hands out a started container of the template's pool fitted to
// res, and the sandbox id it was made for; false when the pool has none.
// The container stays the pool's until handedOver.
func (s *Service) takePooled(ctx context.Context, template string, res Resources) (string, bool) {
	if !s.poolFitsDisk(res.Disk) {
		return "", false
	}
	for {
		s.pool.mu.Lock()
		ids := s.pool.idle[template]
		if len(ids) == 0 {
			s.pool.mu.Unlock()
			return "", false
		}
		id := ids[0]
		s.pool.idle[template] = ids[1:]
		s.pool.handed[id] = true
		s.pool.mu.Unlock()
		s.pool.poke()
		name := "rtemu-" + id
		wantCPU, wantMem := s.limits(res)
		defCPU, defMem := s.limits(Resources{VCPUs: DefaultVCPUs, Memory: DefaultMemory})
		if wantCPU == defCPU && wantMem == defMem {
			return id, true
		}
		err := s.engine.UpdateLimits(ctx, name, wantCPU, wantMem)
		if err == nil {
			return id, true
		}
		s.log.Warn("warm pool: could not fit a container's limits; trying the next", "container", name, "err", err)
		s.pool.handedOver(name, false)
		s.discardPooled(name)
		if errors.Is(err, engine.ErrUnavailable) || ctx.Err() != nil {
			return "", false
		}
	}
}

// discardPooled removes a pool container in the background.
func (s *Service) discardPooled(name string) {
	s.goBackground(func(ctx context.Context) { _ = s.removeContainer(ctx, name) })
}

// suspendPool empties the pool and stops refills (reset removes the
// containers); resumePool lets it fill again.
func (s *Service) suspendPool() {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	s.pool.gen++
	s.pool.paused = true
	s.pool.idle = map[string][]string{}
	s.pool.owned = map[string]bool{}
	s.pool.warmed, s.pool.ips = map[string]time.Time{}, map[string]string{}
}

func (s *Service) resumePool() {
	s.pool.mu.Lock()
	s.pool.paused = false
	s.pool.mu.Unlock()
	s.pool.poke()
}

// envList is a sandbox's env with an exec's own env (and then its secrets)
// over it, as KEY=VALUE lines in a stable order: a later layer wins.
func envList(layers ...map[string]string) []string {
	merged := map[string]string{}
	for _, l := range layers {
		for k, v := range l {
			merged[k] = v
		}
	}
	out := make([]string, 0, len(merged))
	for k, v := range merged {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// withSandboxEnv puts a sandbox's env under a process's KEY=VALUE lines.
func withSandboxEnv(base map[string]string, lines []string) []string {
	over := make(map[string]bool, len(lines))
	for _, l := range lines {
		k, _, _ := strings.Cut(l, "=")
		over[k] = true
	}
	out := make([]string, 0, len(base)+len(lines))
	for _, l := range envList(base, nil) {
		k, _, _ := strings.Cut(l, "=")
		if !over[k] {
			out = append(out, l)
		}
	}
	return append(out, lines...)
}
