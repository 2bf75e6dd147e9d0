package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/rtemu-dev/rtemu/engine"
)

// Store errors the service understands.
var (
	ErrNoRecord  = errors.New("no such record")
	ErrNameTaken = errors.New("name taken")
)

// Store keeps sandbox records durably. *store.Store implements it.
type Store interface {
	InsertSandbox(ctx context.Context, sb *Sandbox) error
	GetSandbox(ctx context.Context, id string) (*Sandbox, error)
	SandboxByName(ctx context.Context, name string) (*Sandbox, error)
	// UpdateSandbox applies fn to the record and writes it back in one
	// transaction; an error from fn aborts it and is returned as is.
	UpdateSandbox(ctx context.Context, id string, fn func(*Sandbox) error) (*Sandbox, error)
	ListSandboxes(ctx context.Context, f ListFilter, afterSeq int64) ([]*Sandbox, bool, error)
	// LiveSandboxes returns every sandbox not destroyed.
	LiveSandboxes(ctx context.Context) ([]*Sandbox, error)
	AddEvent(ctx context.Context, ev Event) error
	// AddEvents appends events in one transaction.
	AddEvents(ctx context.Context, evs []Event) error
	// Reset deletes every record of every resource.
	Reset(ctx context.Context) error
	// ListEvents returns up to limit events of a sandbox older than
	// afterSeq (0: from the newest), newest first, and whether more follow.
	ListEvents(ctx context.Context, sandboxID string, limit int, afterSeq int64) ([]Event, bool, error)
	DevURLStore
	WorkspaceStore
	SSHKeyStore
	ProjectStore
	SecretStore
	FeedStore
	StateStore
}

// Labels rtemu puts on every container it makes.
const (
	LabelSandbox  = "rtemu.sandbox"
	LabelInstance = "rtemu.instance"
	LabelTemplate = "rtemu.template"
)

// Config wires a Service.
type Config struct {
	Store  Store
	Engine engine.Engine
	// InstanceID tells this rtemu's containers (same data dir) from others'.
	InstanceID string
	Templates  []Template
	Logger     *slog.Logger
	// PidsLimit caps the processes of one sandbox.
	PidsLimit int64
	// DataDir holds the workspaces' folders (in DataDir/workspaces); ""
	// leaves workspaces unavailable.
	DataDir string
	// BuildTemplate builds the images of templates with a Recipe.
	BuildTemplate TemplateBuilder
	// WarmPool keeps this many started containers per template, handed
	// out by Create (see pool.go).
	WarmPool map[string]int
	// StrictLifecycle makes exec and GET …/ssh on a sandbox that is not
	// running a conflict at once, as before rtemu waited for creating,
	// resuming and pausing sandboxes and woke idle-paused ones for exec.
	StrictLifecycle bool
	// ExecOutputMemory is the memory the buffered output of all commands
	// shares (DefaultExecOutputMemory when 0); beyond it output spills to
	// files under DataDir (or the system's temporary folder).
	ExecOutputMemory int
	// DiskWatch is how often sandboxes' files are measured where the
	// engine cannot enforce disk (DefaultDiskWatch when 0).
	DiskWatch time.Duration
}

// Service owns sandboxes: their records, their containers and every
// transition between their states.
type Service struct {
	store     Store
	engine    engine.Engine
	caps      engine.Capabilities // what the engine can do (capabilities.go)
	instance  string
	process   string // this process's random id (helpers.go)
	templates map[string]Template
	order     []string
	log       *slog.Logger
	pidsLimit int64
	build     TemplateBuilder
	// strictLifecycle: see Config.StrictLifecycle.
	strictLifecycle bool
	output          *outputBudget // the memory buffered exec output shares
	disk            diskState     // disk.go

	hostCPUs atomic.Int64 // the engine's CPUs, to clamp vcpus to (CPUsCappedToHost)
	engineUp atomic.Bool  // the last reconcile worked and the event stream is connected
	outage   outage       // the engine's last disappearance (outage.go)

	ctx    context.Context // the service's lifetime; background work stops with it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pulls  singleflight.Group
	// imageWork tells creates waiting on a pull or build how far it is (progress.go).
	imageWork imageWork
	act       activity
	events    eventLog
	// execSlots paces concurrent execs in one sandbox (execslots.go).
	execSlots execSlots
	provSlots provSlots // bounds concurrent cold creates (provslots.go)
	changes   changes
	faults    faults
	urls      urlTraffic
	ws        workspaces
	keys      sshKeyState
	pool      warmPool
	projs     projects
	terms     terminalSessions
	desks     desktops
	secKey    secretKey // secrets.go
	dataDir   string
	// defaultProject caches DefaultProjectID (hosted.go).
	defaultProject atomic.Value

	resetMu    sync.Mutex
	resetHooks []ResetHook

	reconcileMu  sync.Mutex      // one reconcile at a time
	provMu       sync.Mutex      // guards provisioning
	provisioning map[string]bool // sandboxes whose container is being made now
	now          func() time.Time
}

// New makes a Service. Start begins its background work.
func New(cfg Config) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		store: cfg.Store, engine: cfg.Engine, instance: cfg.InstanceID, log: cfg.Logger,
		templates: map[string]Template{}, pidsLimit: cfg.PidsLimit, build: cfg.BuildTemplate, strictLifecycle: cfg.StrictLifecycle,
		ctx: ctx, cancel: cancel, now: func() time.Time { return time.Now().UTC() },
		act:          activity{open: map[string]int{}, last: map[string]time.Time{}, written: map[string]time.Time{}},
		provisioning: map[string]bool{}, dataDir: cfg.DataDir, process: newID(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Engine != nil {
		s.caps = cfg.Engine.Capabilities()
	}
	s.execSlots.per, s.provSlots.n = s.caps.ExecSlots, s.caps.ProvisionSlots
	if !s.caps.DiskQuota {
		l := noDiskQuota(s.caps)
		s.disk.limits = &l
	}
	if len(cfg.WarmPool) > 0 && !s.caps.UpdateLimits {
		s.log.Warn("no warm pool: "+s.theEngine()+" cannot fit a pooled container to a create (no limits update)", "warmPool", cfg.WarmPool)
		cfg.WarmPool = nil
	}
	if s.pidsLimit == 0 {
		s.pidsLimit = 4096
	}
	s.pool.init(cfg.WarmPool)
	s.disk.over, s.disk.every = map[string]bool{}, cfg.DiskWatch
	if s.disk.every <= 0 {
		s.disk.every = DefaultDiskWatch
	}
	s.output = newOutputBudget(cfg.ExecOutputMemory, spillDir(cfg.DataDir))
	if err := s.output.clearSpills(); err != nil {
		s.log.Warn("could not clear the exec output spill folder", "err", err)
	}
	if cfg.DataDir != "" {
		s.ws.dir = WorkspacesDir(cfg.DataDir)
	}
	for _, t := range cfg.Templates {
		if _, dup := s.templates[t.Name]; !dup {
			s.order = append(s.order, t.Name)
		}
		s.templates[t.Name] = t
	}
	return s
}

// Start reconciles the records with the engine, then watches the engine's
// events in the background. When the engine does not answer yet, rtemu
// still starts (/health says why) and reconciles once it does.
func (s *Service) Start(ctx context.Context) error {
	if err := s.startWorkspaces(); err != nil {
		return err
	}
	swap, err := s.finishSwap(ctx)
	if err != nil {
		return fmt.Errorf("finishing a swap to the seed that was cut short: %w", err)
	}
	s.clearStateLeftovers(ctx)
	reconciled := false
	if err := s.reconcile(ctx); err == nil {
		reconciled = true
		s.dropSwapped(ctx, swap)
	} else if !errors.Is(err, ErrUnavailable) {
		return err
	} else {
		s.log.Warn(s.theEngine()+" does not answer; rtemu will reconcile once it does", "err", err)
	}
	s.goBackground(func(ctx context.Context) { s.watch(ctx, reconciled) })
	if s.caps.Pause {
		// No idle pause where the engine cannot pause: it would only fail.
		s.goBackground(s.sweepIdle)
	}
	s.goBackground(s.watchDesktops)
	s.goBackground(s.watchDisk)
	s.goBackground(s.sweepHelpers)
	return s.startPool()
}

// Close stops the background work and waits for it. Containers are left
// running: a restart of rtemu finds them again.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
	s.flushEvents()
}

// everyTick calls round every d until ctx ends: the loop of the service's
// watchers (idle sweep, desktop probes, disk watch).
func everyTick(ctx context.Context, d time.Duration, round func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		round()
	}
}

func (s *Service) goBackground(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Instance is the id this rtemu labels its containers with.
func (s *Service) Instance() string { return s.instance }

// Templates lists the configured templates in the order they were given.
func (s *Service) Templates() []Template {
	out := make([]Template, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.templates[n])
	}
	return out
}

// EngineInfo reports on the container engine.
func (s *Service) EngineInfo(ctx context.Context) (engine.Info, error) {
	info, err := s.engine.Ping(ctx)
	if err != nil {
		return info, s.unavailable(err)
	}
	return info, nil
}

// ImagePresent says whether a template's image is in the engine.
func (s *Service) ImagePresent(ctx context.Context, image string) (bool, error) {
	ok, err := s.engine.ImagePresent(ctx, image)
	return ok, s.engineErr(err)
}

func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "sandbox-" + string(b)
}

// Create records a new sandbox as creating and makes its container in the
// background.
func (s *Service) Create(ctx context.Context, p CreateParams) (*Sandbox, error) {
	res, idle, err := validateCreate(&p)
	if err != nil {
		return nil, err
	}
	if !s.engineUp.Load() {
		// Known down: ask once more, and refuse rather than accept a
		// sandbox that can only fail.
		if err := s.reconcile(ctx); err != nil {
			return nil, s.engineErr(err)
		}
	}
	tpl, ok := s.templates[p.Template]
	if !ok {
		names := append([]string(nil), s.order...)
		sort.Strings(names)
		return nil, &Error{Kind: KindInvalid, Message: "invalid request", Details: []FieldError{{
			Field: "template", Message: fmt.Sprintf("unknown template %q; configured: %v (map more with --template NAME=IMAGE)", p.Template, names)}}}
	}
	if err := s.checkSSHKeyRefs(ctx, p.SSHKeys); err != nil {
		return nil, err
	}
	if p.ProjectID != nil && *p.ProjectID != "" {
		// Held until the sandbox is recorded, so a project delete sees it.
		s.projs.mu.RLock()
		defer s.projs.mu.RUnlock()
		if err := s.checkProject(ctx, *p.ProjectID); err != nil {
			return nil, err
		}
	}
	if len(p.Mounts) > 0 {
		// Held until the sandbox is recorded, so a workspace delete sees it.
		s.ws.mu.Lock()
		defer s.ws.mu.Unlock()
		if err := s.checkMounts(ctx, p.Mounts); err != nil {
			return nil, err
		}
	}
	image := s.templateImage(ctx, tpl)
	if len(p.Mounts) > 0 {
		if err := s.checkEngineSeesWorkspaces(ctx, image); err != nil {
			return nil, err
		}
	}
	now := s.now()
	sb := &Sandbox{
		Name: p.Name, Template: tpl.Name, Image: image, Status: StatusCreating,
		Tags: nonNil(p.Tags), Resources: res, Env: p.Env, Mounts: p.Mounts, Metadata: p.Metadata,
		IdleTimeout: idle, SSHKeys: p.SSHKeys, SSHKeysSet: p.SSHKeysSet,
		CreatedAt: now, UpdatedAt: now,
	}
	if sb.Env == nil {
		sb.Env = map[string]string{}
	}
	if p.ProjectID != nil {
		sb.ProjectID = strings.ToLower(*p.ProjectID)
	}
	if sb.ProjectID == "" { // every sandbox is in a project
		if sb.ProjectID, err = s.DefaultProjectID(ctx); err != nil {
			return nil, err
		}
	}
	if p.RootPassword != nil {
		h, err := bcrypt.GenerateFromPassword([]byte(*p.RootPassword), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("hash root password: %w", err)
		}
		sb.RootPasswordHash = string(h)
	}
	// A sandbox with mounts cannot come from the pool: binds are fixed when
	// a container is created.
	pooled := false
	if len(p.Mounts) == 0 {
		sb.ID, pooled = s.takePooled(ctx, tpl.Name, res)
	}
	if !pooled {
		sb.ID = newID()
	}
	err = s.insert(ctx, sb)
	if pooled {
		s.pool.handedOver(sb.ContainerName(), err == nil)
		if err != nil {
			s.discardPooled(sb.ContainerName())
		}
	}
	if err != nil {
		if errors.Is(err, ErrNameTaken) {
			return nil, conflict("a sandbox named %q already exists", p.Name)
		}
		return nil, err
	}
	s.event(ctx, sb.ID, "created", "info", "Sandbox created", map[string]any{"template": sb.Template})
	s.startProvision(sb)
	return sb, nil
}

// templateImage is the image a template's sandboxes are made from now: its
// own, or its fallback while a recipe's image is not built.
func (s *Service) templateImage(ctx context.Context, tpl Template) string {
	if tpl.Fallback != "" {
		if built, err := s.engine.ImagePresent(ctx, tpl.Image); err == nil && !built {
			return tpl.Fallback
		}
	}
	return tpl.Image
}

// startProvision makes a sandbox's container in the background, unless that
// is already under way.
func (s *Service) startProvision(sb *Sandbox) {
	s.provMu.Lock()
	defer s.provMu.Unlock()
	if s.provisioning[sb.ID] {
		return
	}
	s.provisioning[sb.ID] = true
	s.goBackground(func(ctx context.Context) {
		defer func() {
			s.provMu.Lock()
			delete(s.provisioning, sb.ID)
			s.provMu.Unlock()
		}()
		s.provision(ctx, sb)
	})
}

func (s *Service) isProvisioning(id string) bool {
	s.provMu.Lock()
	defer s.provMu.Unlock()
	return s.provisioning[id]
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// provision makes and starts a sandbox's container, then marks it running
// (or failed). It runs in the background and again, for sandboxes caught in
// creating, at start.
func (s *Service) provision(ctx context.Context, sb *Sandbox) {
	log := s.log.With("sandbox", sb.ID)
	err := s.makeContainer(ctx, sb, log)
	if ctx.Err() != nil {
		// rtemu is stopping: whatever was made of the container goes with
		// it (nothing outlives rtemu); a sandbox still creating is made
		// anew at the next start, one destroyed meanwhile is done.
		s.removeLeftover(ctx, sb.ContainerName(), log)
		return
	}
	if err != nil {
		err = s.outageFailure(err)
		log.Warn("sandbox failed", "err", err)
		s.removeLeftover(ctx, sb.ContainerName(), log)
		if _, terr := s.transition(ctx, sb.ID, StatusFailed, func(x *Sandbox) { x.Error = err.Error() }); terr == nil {
			s.event(ctx, sb.ID, "failed", "error", "Sandbox failed to start", map[string]any{"error": err.Error()})
		}
		return
	}
	// The address is read once here, so showing a sandbox never asks the
	// engine.
	ip, known := s.pool.address(sb.ID) // a pool container's, read when it was made
	if !known {
		if st, err := s.engine.Inspect(ctx, sb.ContainerName()); err == nil {
			ip = st.IP
		}
	}
	if _, err := s.transition(ctx, sb.ID, StatusRunning, func(x *Sandbox) { x.IP = ip }); err != nil {
		// Destroyed while it was being made: the container is ours to remove.
		log.Info("sandbox changed while starting; removing its container", "err", err)
		s.removeLeftover(ctx, sb.ContainerName(), log)
		return
	}
	s.event(ctx, sb.ID, "running", "info", "Sandbox running", nil)
	log.Info("sandbox running")
	if sb.PausedAt != nil && s.caps.Pause {
		// Only a sandbox of a state archive, saved paused, is made with a
		// pause time: it is paused again once made (LoadState).
		op := s.pauseOp()
		if by := sb.PausedBy; by != "" { // paused for idleness: so again
			op.stamp = func(x *Sandbox, t time.Time) { x.PausedAt, x.PausedBy = &t, by }
		}
		if _, _, err := s.freeze(ctx, sb.ID, op); err != nil {
			log.Warn("a sandbox saved paused could not be paused again", "err", err)
		}
	}
}

func (s *Service) makeContainer(ctx context.Context, sb *Sandbox, log *slog.Logger) error {
	pooled := s.pool.fromPool(sb.ID)
	if f, ok := s.TakeFault("sandbox.create", FaultFailAsync); ok {
		msg := f.Message
		if msg == "" {
			msg = "injected fault (fail-async)"
		}
		return fmt.Errorf("%s: %s", f.ID, msg)
	}
	if pooled {
		return nil // made, started and fitted to its limits by Create
	}
	// When each step ended, for the debug log: where a create's time goes
	// (BENCHMARKS.md, round six: the engine's start, nearly all of it).
	queued := time.Now()
	release, err := s.provSlots.acquire(ctx)
	defer release()
	if err != nil {
		return err
	}
	slotted := time.Now()
	if err := s.ensureImage(ctx, sb, log); err != nil {
		return err
	}
	imaged := time.Now()
	cpus, mem := s.limits(sb.Resources)
	env := envList(sb.Env, nil)
	mounts, err := s.containerMounts(sb)
	if err != nil {
		return err
	}
	spec := engine.ContainerSpec{
		Name:  sb.ContainerName(),
		Image: sb.Image,
		// The hostname is the id: a sandbox's shell prompt says which one it is.
		Hostname: sb.ID[len("sandbox-"):],
		Aliases:  s.aliases(sb.ID),
		Labels: map[string]string{
			LabelSandbox: sb.ID, LabelInstance: s.instance, LabelTemplate: sb.Template,
		},
		Env:         env,
		NanoCPUs:    cpus,
		MemoryBytes: mem,
		PidsLimit:   s.pidsLimit,
		WorkingDir:  WorkspacePath,
		Mounts:      mounts,
		DiskBytes:   s.diskBytes(ctx, sb.Image, sb.Resources.Disk),
		// A helper the driver makes is this instance's: reconcile removes
		// one a kill left behind, sweepHelpers one made after it.
		HelperLabels: s.helperLabels(),
	}
	err = s.engineCreate(ctx, spec)
	// The name holds this sandbox's id, so a container already there is a
	// stale one of its own: an rtemu killed while the engine was still
	// creating (or removing) it, which no list showed at the restart.
	// Replace it; a removal still under way needs a moment.
	for deadline := time.Now().Add(10 * time.Second); errors.Is(err, engine.ErrNameInUse) && time.Now().Before(deadline); {
		if rerr := s.engine.Remove(ctx, spec.Name); rerr != nil {
			return fmt.Errorf("remove a stale container: %w", rerr)
		}
		if err = s.engineCreate(ctx, spec); errors.Is(err, engine.ErrNameInUse) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	created := time.Now()
	if err := s.engine.Start(ctx, spec.Name); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	log.Debug("container made", "slot_wait", slotted.Sub(queued), "image", imaged.Sub(slotted),
		"create", created.Sub(imaged), "start", time.Since(created))
	return nil
}

// createTimeout bounds an engine's create that rtemu's stop does not cut
// short (engineCreate).
const createTimeout = 30 * time.Second

// engineCreate creates a container, to the end even when ctx ends meanwhile
// (rtemu stopping): the engine finishes a create it has begun whether its
// caller waits or not, and a container it made after the caller gave up
// (and after the list of an ephemeral rtemu's exit) would be nobody's to
// remove. The caller runs in the service's background work, which Close
// waits for.
func (s *Service) engineCreate(ctx context.Context, spec engine.ContainerSpec) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	return s.engine.Create(cctx, spec)
}

// ensureImage pulls the sandbox's image when the engine lacks it. Creates
// that need the same image share one pull.
func (s *Service) ensureImage(ctx context.Context, sb *Sandbox, log *slog.Logger) error {
	present, err := s.engine.ImagePresent(ctx, sb.Image)
	if err != nil {
		return err
	}
	if present {
		return nil
	}
	// The record shows how far the pull or build is while it is creating.
	defer s.followImage(ctx, sb.Image, sb.ID)()
	if tpl := s.templates[sb.Template]; tpl.Recipe != "" && tpl.Image == sb.Image {
		return s.buildTemplateImage(ctx, tpl, log)
	}
	_, err, _ = s.pulls.Do(sb.Image, func() (any, error) {
		log.Info("pulling template image", "template", sb.Template, "image", sb.Image)
		last := time.Time{}
		summary := pullProgress{image: sb.Image}
		s.imageProgress(sb.Image, summary.line(""))
		err := s.engine.Pull(ctx, sb.Image, func(line string) {
			s.imageProgress(sb.Image, summary.line(line))
			if time.Since(last) > time.Second {
				last = time.Now()
				log.Info("pull progress", "image", sb.Image, "status", line)
			}
		})
		if err == nil {
			log.Info("pulled template image", "image", sb.Image)
		}
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("image %s for template %s is not present and could not be pulled (%v); "+
			"load or build it, or map the template to a local image with --template %s=IMAGE",
			sb.Image, sb.Template, err, sb.Template)
	}
	return nil
}

// insert, update and transition write a sandbox record and tell watchers
// about it. All of the service's writes of sandboxes go through them, and
// only transition changes a status.
func (s *Service) insert(ctx context.Context, sb *Sandbox) error {
	if err := s.store.InsertSandbox(ctx, sb); err != nil {
		return err
	}
	s.Publish(Change{Kind: "sandbox", ID: sb.ID, Status: sb.Status})
	return nil
}

// errStatusWrite: a write other than transition changed a status (a bug;
// the write is refused).
var errStatusWrite = errors.New("a sandbox's status is changed only by Service.transition")

// update writes anything of a record but its status.
func (s *Service) update(ctx context.Context, id string, fn func(*Sandbox) error) (*Sandbox, error) {
	return s.write(ctx, id, func(sb *Sandbox) error {
		was := sb.Status
		if err := fn(sb); err != nil {
			return err
		}
		if sb.Status != was {
			return fmt.Errorf("sandbox %s: %s → %s: %w", sb.ID, was, sb.Status, errStatusWrite)
		}
		return nil
	})
}

func (s *Service) write(ctx context.Context, id string, fn func(*Sandbox) error) (*Sandbox, error) {
	sb, err := s.store.UpdateSandbox(ctx, id, fn)
	if err == nil {
		s.Publish(Change{Kind: "sandbox", ID: sb.ID, Status: sb.Status})
	}
	return sb, err
}

// transition moves a sandbox to a new status if the state machine allows it
// from the status it has now, applying mutate in the same write.
func (s *Service) transition(ctx context.Context, id string, to Status, mutate func(*Sandbox)) (*Sandbox, error) {
	return s.transitionIf(ctx, id, to, nil, mutate)
}

// errStay, from a transition's guard, leaves the record as it is and is not
// an error (a repeat that has nothing to do).
var errStay = errors.New("stay")

// transitionIf is transition with a guard run on the record first: an
// error from it refuses the transition with that error (its own wording of
// the refusal), errStay leaves the record as it is. Every status change of
// the service is made here.
func (s *Service) transitionIf(ctx context.Context, id string, to Status, guard func(*Sandbox) error, mutate func(*Sandbox)) (*Sandbox, error) {
	return s.write(ctx, id, func(sb *Sandbox) error {
		if guard != nil {
			if err := guard(sb); errors.Is(err, errStay) {
				return nil
			} else if err != nil {
				return err
			}
		}
		if !canTransition(sb.Status, to) {
			return conflict("sandbox %s is %s and cannot become %s", sb.ID, sb.Status, to)
		}
		sb.Status = to
		sb.UpdatedAt = s.now()
		sb.Progress = "" // shown only while creating
		if mutate != nil {
			mutate(sb)
		}
		return nil
	})
}

// Get finds a sandbox by id or by name.
func (s *Service) Get(ctx context.Context, ref string) (*Sandbox, error) {
	if idPattern.MatchString(ref) {
		sb, err := s.store.GetSandbox(ctx, ref)
		if err == nil {
			return sb, nil
		}
		if !errors.Is(err, ErrNoRecord) {
			return nil, err
		}
	}
	sb, err := s.store.SandboxByName(ctx, ref)
	if errors.Is(err, ErrNoRecord) {
		return nil, notFound("Sandbox")
	}
	return sb, err
}

// List returns one page of sandboxes, newest first.
func (s *Service) List(ctx context.Context, f ListFilter) (Page[*Sandbox], error) {
	if err := validateList(&f); err != nil {
		return Page[*Sandbox]{}, err
	}
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return Page[*Sandbox]{}, err
	}
	items, more, err := s.store.ListSandboxes(ctx, f, after)
	if err != nil {
		return Page[*Sandbox]{}, err
	}
	p := Page[*Sandbox]{Items: items, HasMore: more}
	if more && len(items) > 0 {
		p.NextCursor = makeCursor(items[len(items)-1].Seq)
	}
	return p, nil
}

// Update renames a sandbox or moves it to another project.
func (s *Service) Update(ctx context.Context, ref string, p UpdateParams) (*Sandbox, error) {
	if err := validateUpdate(p); err != nil {
		return nil, err
	}
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if p.ProjectID != nil && *p.ProjectID != "" {
		s.projs.mu.RLock()
		defer s.projs.mu.RUnlock()
		if err := s.checkProject(ctx, *p.ProjectID); err != nil {
			return nil, err
		}
		lower := strings.ToLower(*p.ProjectID)
		p.ProjectID = &lower
	} else if p.ProjectID != nil { // null: back to the default project
		def, err := s.DefaultProjectID(ctx)
		if err != nil {
			return nil, err
		}
		p.ProjectID = &def
	}
	sb, err = s.update(ctx, sb.ID, func(x *Sandbox) error {
		if x.Status == StatusDestroyed || x.Status == StatusDestroying {
			return conflict("sandbox %s is %s", x.ID, x.Status)
		}
		if p.Name != nil {
			x.Name = *p.Name
		}
		if p.ProjectID != nil {
			x.ProjectID = *p.ProjectID
		}
		x.UpdatedAt = s.now()
		return nil
	})
	if errors.Is(err, ErrNameTaken) {
		return nil, conflict("a sandbox named %q already exists", *p.Name)
	}
	return sb, err
}

// Delete destroys a sandbox: its container is removed, its record stays as
// destroyed. With async the removal happens in the background and the
// sandbox is returned as destroying.
func (s *Service) Delete(ctx context.Context, ref string, async bool) (*Sandbox, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch sb.Status {
	case StatusDestroyed:
		// Deleted already: gone, as the hosted API answers (the SDK
		// takes a 404 for "already gone").
		return nil, notFound("Sandbox")
	case StatusDestroying:
		if async {
			return sb, nil
		}
	default:
		if !s.engineUp.Load() {
			// Known down: refuse (503) rather than leave the sandbox
			// destroying until the engine is back.
			if err := s.reconcile(ctx); err != nil {
				return nil, s.engineErr(err)
			}
		}
		sb, err = s.transition(ctx, sb.ID, StatusDestroying, nil)
		if err != nil {
			return nil, err
		}
	}
	if async {
		s.goBackground(func(ctx context.Context) {
			if _, err := s.destroy(ctx, sb); err != nil {
				s.log.Warn("background destroy failed; it is retried at the next start", "sandbox", sb.ID, "err", err)
			}
		})
		return sb, nil
	}
	return s.destroy(ctx, sb)
}

func (s *Service) destroy(ctx context.Context, sb *Sandbox) (*Sandbox, error) {
	if err := s.removeContainer(ctx, sb.ContainerName()); err != nil {
		return nil, s.engineErr(err)
	}
	out, err := s.transitionIf(ctx, sb.ID, StatusDestroyed, func(x *Sandbox) error {
		if x.Status == StatusDestroyed {
			return errStay
		}
		if !canTransition(x.Status, StatusDestroyed) {
			return conflict("sandbox %s is %s", x.ID, x.Status)
		}
		return nil
	}, func(x *Sandbox) { t := x.UpdatedAt; x.DestroyedAt = &t })
	if err == nil {
		s.event(ctx, sb.ID, "destroyed", "info", "Sandbox destroyed", nil)
	}
	return out, err
}

// Pause freezes a running sandbox. The engine has frozen it by the time Pause
// returns; the status it returns is the hosted API's ("pausing", or "paused"
// when it already was).
func (s *Service) Pause(ctx context.Context, ref string) (Status, *Sandbox, error) {
	return s.freeze(ctx, ref, s.pauseOp())
}

func (s *Service) pauseOp() freezeOp {
	return freezeOp{
		from: StatusRunning, via: StatusPausing, to: StatusPaused, verb: "paused",
		do: s.engine.Pause, undo: StatusRunning,
		stamp: func(x *Sandbox, t time.Time) { x.PausedAt, x.PausedBy = &t, "" },
	}
}

// Resume thaws a paused sandbox; its processes continue where they were.
func (s *Service) Resume(ctx context.Context, ref string) (Status, *Sandbox, error) {
	return s.freeze(ctx, ref, s.resumeOp())
}

func (s *Service) resumeOp() freezeOp {
	return freezeOp{
		from: StatusPaused, via: StatusResuming, to: StatusRunning, verb: "resumed",
		do: s.engine.Unpause, undo: StatusPaused,
		stamp: func(x *Sandbox, t time.Time) { x.ResumedAt, x.PausedBy = &t, "" },
	}
}

type freezeOp struct {
	from, via, to, undo Status
	verb                string
	quiet               bool // the caller records the event (idle-paused)
	do                  func(context.Context, string) error
	stamp               func(*Sandbox, time.Time)
}

// freeze runs pause or resume: from → via (written first), the engine call,
// then via → to. A failed engine call goes back to where it was.
func (s *Service) freeze(ctx context.Context, ref string, op freezeOp) (Status, *Sandbox, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return "", nil, err
	}
	switch sb.Status {
	case op.to, op.via:
		// Already there (or on the way): repeats are harmless.
		return sb.Status, sb, nil
	case op.from:
	default:
		return "", nil, conflict("sandbox %s is %s; only a %s sandbox can be %s", sb.ID, sb.Status, op.from, op.verb)
	}
	if !s.caps.Pause {
		return "", nil, s.cannotPause(sb, op.verb)
	}
	if _, err := s.transitionIf(ctx, sb.ID, op.via, func(x *Sandbox) error {
		if x.Status != op.from {
			return conflict("sandbox %s is %s; only a %s sandbox can be %s", x.ID, x.Status, op.from, op.verb)
		}
		return nil
	}, nil); err != nil {
		return "", nil, err
	}
	if err := op.do(ctx, sb.ContainerName()); err != nil {
		_, _ = s.transition(context.WithoutCancel(ctx), sb.ID, op.undo, nil)
		if errors.Is(err, engine.ErrNotFound) {
			s.markError(context.WithoutCancel(ctx), sb.ID, "the sandbox's container is gone")
			return "", nil, conflict("sandbox %s has lost its container", sb.ID)
		}
		return "", nil, s.engineErr(err)
	}
	out, err := s.transition(ctx, sb.ID, op.to, func(x *Sandbox) { op.stamp(x, x.UpdatedAt) })
	if err != nil {
		return "", nil, err
	}
	if !op.quiet {
		s.event(ctx, sb.ID, op.verb, "info", "Sandbox "+op.verb, nil)
	}
	return op.via, out, nil
}

// Exec runs a shell command in a running sandbox and waits for it.
func (s *Service) Exec(ctx context.Context, ref string, p ExecParams) (ExecResult, error) {
	sb, err := s.Get(ctx, ref)
	if err != nil {
		return ExecResult{}, err
	}
	if err := validateExec(&p); err != nil {
		return ExecResult{}, err
	}
	secrets, err := s.secretEnv(ctx, p.Secrets)
	if err != nil {
		return ExecResult{}, err
	}
	// A sandbox still starting is waited for (as long as the command may
	// run), one paused for idleness is woken; a user's pause stays.
	if sb, err = s.usable(ctx, sb.ID, use{by: "exec", wait: p.Timeout, strictable: true, got: sb}); err != nil {
		return ExecResult{}, err
	}
	// The sandbox's env is given to every exec, not only to the container:
	// a container from the warm pool was started before its sandbox's env
	// was known (see pool.go).
	env := envList(sb.Env, p.Env, secrets)
	stdout, stderr := newOutput(s.output, MaxExecOutput), newOutput(s.output, MaxExecOutput)
	kept := false
	defer func() {
		if !kept {
			_, _ = stdout.Close(), stderr.Close()
		}
	}()
	defer s.BeginActivity(ctx, sb.ID)()
	runCtx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	// Beyond a few commands at once in one sandbox, wait a moment for one
	// to end rather than have the engine start another exec agent by a
	// Docker exec (execslots.go).
	defer s.execSlots.acquire(runCtx, sb.ID)()
	if p.Started != nil {
		p.Started()
	}
	start := time.Now()
	code, err := s.engine.Exec(runCtx, sb.ContainerName(), engine.ExecSpec{
		// cd in the shell rather than through the engine's WorkingDir, so a
		// missing cwd is the command's failure (exit 2 and a message on
		// stderr), as it is on a real machine, not an engine error. The
		// command then runs in that same shell (eval, with no positional
		// parameters and the shell's own variable unset), not in a second
		// /bin/sh started by exec: one process start fewer, 0.7 to 1.5 ms
		// of an exec of `true` (BENCHMARKS.md).
		Cmd:    []string{"/bin/sh", "-c", execWrapper, "sh", p.Cwd, p.Command},
		Env:    env,
		Stdout: outputTo(stdout, p.Stdout),
		Stderr: outputTo(stderr, p.Stderr),
	})
	res := ExecResult{Stdout: stdout, Stderr: stderr, ExitCode: code, Duration: time.Since(start)}
	switch {
	case err == nil:
		if werr := s.killedByContainerEnd(ctx, sb, code); werr != nil {
			return ExecResult{}, werr
		}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		res.ExitCode, res.TimedOut = 124, true
	case ctx.Err() != nil:
		// The caller went away (a streaming client disconnected): the
		// engine has killed the command.
		s.event(ctx, sb.ID, "exec", "warning", "Command cancelled", map[string]any{
			"command": truncate(p.Command, 200), "durationMs": res.Duration.Milliseconds(), "cancelled": true,
		})
		return ExecResult{}, ctx.Err()
	case errors.Is(err, engine.ErrNotRunning):
		if cur, gerr := s.store.GetSandbox(ctx, sb.ID); gerr == nil {
			sb = cur
		}
		if rerr := runnable(sb); rerr != nil {
			return ExecResult{}, rerr
		}
		return ExecResult{}, conflict("sandbox %s is not running", sb.ID)
	default:
		return ExecResult{}, s.engineErr(err)
	}
	attrs := map[string]any{
		"command": truncate(p.Command, 200), "exitCode": res.ExitCode, "durationMs": res.Duration.Milliseconds(), "timedOut": res.TimedOut,
	}
	if len(secrets) > 0 {
		attrs["secrets"] = secretNames(secrets) // names only
	}
	s.event(ctx, sb.ID, "exec", "info", "Command executed", attrs)
	kept = true
	return res, nil
}

// execWrapper runs an exec's command ($2) in the directory $1.
const execWrapper = `cd -- "$1" && __rtemu_cmd=$2 && shift 2 && eval "unset __rtemu_cmd
$__rtemu_cmd"`

// runnable says why a sandbox cannot run a command now, if it cannot.
func runnable(sb *Sandbox) error {
	switch sb.Status {
	case StatusRunning:
		return nil
	case StatusPaused, StatusPausing:
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("sandbox %s is %s; resume it first", sb.ID, sb.Status),
			Remedy: RemedyResume, Subject: sb.ID}
	case StatusFailed, StatusError:
		return conflict("sandbox %s is %s, not running: %s", sb.ID, sb.Status, sb.Error)
	}
	return conflict("sandbox %s is %s, not running", sb.ID, sb.Status)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// engineErr turns an engine failure into the service's terms.
func (s *Service) engineErr(err error) error {
	if err == nil {
		return nil
	}
	return s.Explain(err)
}

func (s *Service) markError(ctx context.Context, id, why string) {
	if _, err := s.transition(ctx, id, StatusError, func(x *Sandbox) { x.Error = why }); err == nil {
		s.log.Warn("sandbox in error", "sandbox", id, "reason", why)
		s.event(ctx, id, "error", "error", "Sandbox error", map[string]any{"error": why})
	}
}

// event appends to a sandbox's activity feed and returns once it is in the
// store, so an answer that follows never says what a kill -9 could lose.
// Events recorded at once share one write (eventlog.go); a failure to write
// is logged, never returned: the feed is informational.
func (s *Service) event(_ context.Context, sandboxID, typ, severity, title string, attrs map[string]any) {
	if attrs == nil {
		attrs = map[string]any{}
	}
	s.waitEvent(s.enqueueEvent(Event{ID: "evt_" + newID()[len("sandbox-"):], SandboxID: sandboxID, Type: typ, Severity: severity,
		Title: title, Attributes: attrs, CreatedAt: s.now()}))
}

// WorkspacesDir is the folder of a data dir that holds the workspaces' files
// (one folder per workspace, named by its id).
func WorkspacesDir(dataDir string) string { return filepath.Join(dataDir, "workspaces") }
