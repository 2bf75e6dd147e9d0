// Package config reads rtemu's settings from flags and the environment. Every
// flag has an environment variable; a flag given on the command line wins.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/templates"
)

// Config is what rtemu serve runs with.
type Config struct {
	// Engine is the engine sandboxes run on: docker ("" too) or
	// kubernetes; server.newEngine makes it.
	Engine string
	// Kube is the Kubernetes engine's: where the cluster is and how pods
	// are made (--engine kubernetes).
	Kube      Kube
	Addr      string
	SSHAddr   string
	DataDir   string
	Ephemeral bool
	// Seed is a state archive to start from (docs/state.md): loaded into an
	// empty data dir, kept as the seed POST /_emulator/reset {"to":"seed"}
	// returns to.
	Seed      string
	Templates []sandbox.Template
	APIKeys   []string
	AuthOff   bool
	// ExecAgentOff runs every command by Docker exec (see the README's
	// "Exec agent").
	ExecAgentOff bool
	// ExecAgentStreamsOnly keeps the agent but never links it to rtemu by a
	// socket (docs/exec-agent.md): commands and ports go by the engine's
	// streams, as on Docker Desktop.
	ExecAgentStreamsOnly bool
	// WarmPool is template → started containers kept ready for creates.
	WarmPool map[string]int
	// PublicAddr and PublicSSHAddr are the API's and the SSH gateway's
	// addresses as clients reach them (rtemu in a container, behind
	// published ports); "" is the listener's own.
	PublicAddr    string
	PublicSSHAddr string
	// DevURLListenersOff gives dev URLs in the Host-routed form on the API's
	// address instead of a listener per sandbox port (for rtemu in a
	// container, where only the API and SSH ports are published).
	DevURLListenersOff bool
	// StrictLifecycle answers exec and GET …/ssh on a sandbox that is not
	// running with a 409 at once, instead of waiting or waking it.
	StrictLifecycle bool
	// SharedSandboxNetwork puts sandboxes on a network where they reach
	// each other (--sandbox-network shared); by default they cannot.
	SharedSandboxNetwork bool
	// ExecOutputMemory is the memory all commands' buffered output shares
	// before it spills to files (--exec-output-memory); 0 is the default.
	ExecOutputMemory int
	// DiskWatch is how often sandboxes' files are measured where the
	// engine cannot enforce disk; not a flag (tests shorten it), 0 is the
	// default.
	DiskWatch time.Duration
}

// DefaultTemplates are the templates known without any --template flag:
// the hosted ones, each mapped to the image rtemu builds from its recipe
// (built at the first create when missing, or ahead with
// `rtemu templates build`).
var DefaultTemplates = recipeTemplates()

// fallbacks are the images used while a recipe's image is not built:
// base-ubuntu is ubuntu:24.04 until `rtemu templates build base-ubuntu` has
// run (the contract's default), while desktop-ubuntu, which no public image
// stands in for, is built at its first create.
var fallbacks = map[string]string{"base-ubuntu": "ubuntu:24.04"}

func recipeTemplates() []sandbox.Template {
	var out []sandbox.Template
	for _, r := range templates.All() {
		out = append(out, sandbox.Template{Name: r.Name, Image: r.Image(), Recipe: r.Name, Fallback: fallbacks[r.Name]})
	}
	return out
}

// Setting pairs a flag with its environment variable.
type Setting struct{ Flag, Env string }

// Kube configures the Kubernetes engine.
type Kube struct {
	// Kubeconfig is the kubeconfig file; "" finds the cluster as kubectl
	// does (KUBECONFIG, ~/.kube/config's current context, in-cluster).
	Kubeconfig string
	// Namespace holds the sandboxes' pods.
	Namespace string
	// PullPolicy is the pods' image pull policy: IfNotPresent, Never
	// (only images the nodes have: an offline cluster) or Always.
	PullPolicy string
	// HostFolders: the cluster's one node sees rtemu's folders at the
	// same paths (a single-node cluster on rtemu's host), so workspace
	// mounts are hostPath volumes.
	HostFolders bool
	// WorkspaceClaim is a PersistentVolumeClaim holding rtemu's workspaces
	// folder, which rtemu mounts too: workspace mounts are the claim with
	// the workspace's folder as subPath ("": none).
	WorkspaceClaim string
}

// claimName is a Kubernetes object's name (a DNS subdomain).
var claimName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// Settings are every flag and its variable; a test keeps the README's
// configuration table in step with them.
var Settings = []Setting{
	{"--addr", "RTEMU_ADDR"},
	{"--ssh-addr", "RTEMU_SSH_ADDR"},
	{"--data-dir", "RTEMU_DATA_DIR"},
	{"--ephemeral", "RTEMU_EPHEMERAL"},
	{"--seed", "RTEMU_SEED"},
	{"--template", "RTEMU_TEMPLATES"},
	{"--api-key", "RTEMU_API_KEYS"},
	{"--auth", "RTEMU_AUTH"},
	{"--warm-pool", "RTEMU_WARM_POOL"},
	{"--exec-agent", "RTEMU_EXEC_AGENT"},
	{"--public-addr", "RTEMU_PUBLIC_ADDR"},
	{"--public-ssh-addr", "RTEMU_PUBLIC_SSH_ADDR"},
	{"--dev-url-listeners", "RTEMU_DEV_URL_LISTENERS"},
	{"--strict-lifecycle", "RTEMU_STRICT_LIFECYCLE"},
	{"--sandbox-network", "RTEMU_SANDBOX_NETWORK"},
	{"--exec-output-memory", "RTEMU_EXEC_OUTPUT_MEMORY"},
	{"--engine", "RTEMU_ENGINE"},
	{"--kubeconfig", "RTEMU_KUBECONFIG"},
	{"--kube-namespace", "RTEMU_KUBE_NAMESPACE"},
	{"--kube-pull-policy", "RTEMU_KUBE_PULL_POLICY"},
	{"--kube-host-folders", "RTEMU_KUBE_HOST_FOLDERS"},
	{"--kube-workspace-claim", "RTEMU_KUBE_WORKSPACE_CLAIM"},
}

// isOff reads an on/off setting.
func isOff(setting, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("%s: %q is not on or off", setting, v)
}

// Flags are the serve flags bound on a flag set; Config reads them, and
// the environment for every flag not given, once the set is parsed.
type Flags struct {
	fs                                                      *pflag.FlagSet
	addr, sshAddr, dataDir, publicAddr, publicSSHAddr, seed string
	auth, execAgent, devListeners, sandboxNet, outputMemory string
	engine, kubeconfig, kubeNamespace, kubePull, kubeClaim  string
	kubeHostFolders                                         bool
	ephemeral, strict                                       bool
	templates, keys, pools                                  []string
}

// AddFlags binds the serve flags (Settings) on fs.
func AddFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	env := func(flag string) string {
		for _, s := range Settings {
			if s.Flag == "--"+flag {
				return " (env " + s.Env + ")"
			}
		}
		return ""
	}
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, def, usage+env(name)) }
	str(&f.addr, "addr", "127.0.0.1:7070", "REST API address (127.0.0.1:0 picks a free port)")
	str(&f.engine, "engine", "", "docker or kubernetes: the engine sandboxes run on (default docker)")
	str(&f.kubeconfig, "kubeconfig", "", "with --engine kubernetes: the kubeconfig file (default: as kubectl finds the cluster)")
	str(&f.kubeNamespace, "kube-namespace", "default", "with --engine kubernetes: the namespace of the sandboxes' pods")
	str(&f.kubePull, "kube-pull-policy", "IfNotPresent", "with --engine kubernetes: IfNotPresent, Never (only images the nodes have) or Always")
	str(&f.kubeClaim, "kube-workspace-claim", "", "with --engine kubernetes: a PersistentVolumeClaim holding rtemu's workspaces folder (mounted there in rtemu too): workspace mounts from it")
	fs.BoolVar(&f.kubeHostFolders, "kube-host-folders", false, "with --engine kubernetes: the cluster's one node sees rtemu's folders (workspace mounts as hostPath)"+env("kube-host-folders"))
	str(&f.sshAddr, "ssh-addr", "127.0.0.1:2222", "SSH gateway address")
	str(&f.dataDir, "data-dir", "", "data directory (default $XDG_DATA_HOME/rtemu, else ~/.local/share/rtemu)")
	fs.BoolVar(&f.ephemeral, "ephemeral", false, "temporary state, containers removed at exit"+env("ephemeral"))
	str(&f.seed, "seed", "", "FILE: start from this saved state archive (rtemu state save); reset to it with POST /_emulator/reset {\"to\":\"seed\"}")
	fs.StringArrayVar(&f.templates, "template", nil, "NAME=IMAGE, laid over the default templates (repeatable)"+env("template"))
	fs.StringArrayVar(&f.keys, "api-key", nil, "accept only this key (repeatable)"+env("api-key"))
	str(&f.auth, "auth", "on", "on or off: off accepts requests with any key or none")
	fs.StringArrayVar(&f.pools, "warm-pool", nil, "TEMPLATE=N started containers kept ready (repeatable)"+env("warm-pool"))
	str(&f.execAgent, "exec-agent", "on", "on, streams or off: run commands through an agent in each sandbox (streams: never over a socket of rtemu's, only the engine's streams)")
	str(&f.publicAddr, "public-addr", "", "HOST:PORT at which clients reach the API (default: the listener's)")
	str(&f.publicSSHAddr, "public-ssh-addr", "", "HOST:PORT at which clients reach the SSH gateway (default: the listener's)")
	str(&f.devListeners, "dev-url-listeners", "on", "on or off: a loopback listener per sandbox port for dev URLs")
	fs.BoolVar(&f.strict, "strict-lifecycle", false, "409 for exec on a sandbox not running, instead of waiting"+env("strict-lifecycle"))
	str(&f.sandboxNet, "sandbox-network", "isolated", "isolated or shared: whether sandboxes reach each other")
	str(&f.outputMemory, "exec-output-memory", "32MB", "memory all commands' buffered output shares before spilling to files")
	return f
}

// Parse reads flags from args (without the program and subcommand names)
// and the environment through getenv; usage goes to stderr on -h.
func Parse(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := pflag.NewFlagSet("rtemu serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	f := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f.Config(getenv)
}

// Config is the configuration the parsed flags and, for every flag not
// given, its environment variable make.
func (f *Flags) Config(getenv func(string) string) (Config, error) {
	for _, s := range Settings {
		name := strings.TrimPrefix(s.Flag, "--")
		v := getenv(s.Env)
		if v == "" || f.fs.Changed(name) {
			continue
		}
		vals := []string{v}
		if f.fs.Lookup(name).Value.Type() == "stringArray" {
			vals = splitList(v)
		}
		for _, v := range vals {
			if err := f.fs.Set(name, v); err != nil {
				if f.fs.Lookup(name).Value.Type() == "bool" {
					return Config{}, fmt.Errorf("%s: %q is not true or false", s.Env, v)
				}
				return Config{}, fmt.Errorf("%s: %q: %w", s.Env, v, err)
			}
		}
	}
	cfg := Config{Addr: f.addr, SSHAddr: f.sshAddr, DataDir: f.dataDir, Ephemeral: f.ephemeral, Seed: f.seed, StrictLifecycle: f.strict,
		PublicAddr: f.publicAddr, PublicSSHAddr: f.publicSSHAddr, APIKeys: f.keys}
	var err error
	if cfg.AuthOff, err = isOff("--auth / RTEMU_AUTH", f.auth); err != nil {
		return cfg, err
	}
	if strings.EqualFold(f.execAgent, "streams") {
		cfg.ExecAgentStreamsOnly = true
	} else if cfg.ExecAgentOff, err = isOff("--exec-agent / RTEMU_EXEC_AGENT", f.execAgent); err != nil {
		return cfg, fmt.Errorf("%w (or streams)", err)
	}
	if cfg.DevURLListenersOff, err = isOff("--dev-url-listeners / RTEMU_DEV_URL_LISTENERS", f.devListeners); err != nil {
		return cfg, err
	}
	for _, a := range []struct{ name, v string }{{"--public-addr / RTEMU_PUBLIC_ADDR", cfg.PublicAddr}, {"--public-ssh-addr / RTEMU_PUBLIC_SSH_ADDR", cfg.PublicSSHAddr}} {
		if a.v == "" {
			continue
		}
		if h, p, err := net.SplitHostPort(a.v); err != nil || h == "" || p == "" {
			return cfg, fmt.Errorf("%s: %q is not HOST:PORT", a.name, a.v)
		}
	}
	if f.fs.Changed("exec-output-memory") {
		n, err := sandbox.ParseSize(f.outputMemory)
		if err != nil || n < 1<<20 || n > 16<<30 {
			return cfg, fmt.Errorf("--exec-output-memory / RTEMU_EXEC_OUTPUT_MEMORY: %q is not a size from 1MB to 16GB, e.g. 64MB", f.outputMemory)
		}
		cfg.ExecOutputMemory = int(n)
	}
	if cfg.Engine = strings.ToLower(f.engine); cfg.Engine != "" && cfg.Engine != "docker" && cfg.Engine != "kubernetes" {
		return cfg, fmt.Errorf("--engine / RTEMU_ENGINE: %q is not docker or kubernetes", cfg.Engine)
	}
	cfg.Kube = Kube{Kubeconfig: f.kubeconfig, Namespace: f.kubeNamespace, HostFolders: f.kubeHostFolders, WorkspaceClaim: f.kubeClaim}
	if c := cfg.Kube.WorkspaceClaim; c != "" && !claimName.MatchString(c) {
		return cfg, fmt.Errorf("--kube-workspace-claim / RTEMU_KUBE_WORKSPACE_CLAIM: %q is not a PersistentVolumeClaim's name (lowercase letters, digits, '-' and '.')", c)
	}
	switch strings.ToLower(f.kubePull) {
	case "ifnotpresent":
		cfg.Kube.PullPolicy = "IfNotPresent"
	case "never":
		cfg.Kube.PullPolicy = "Never"
	case "always":
		cfg.Kube.PullPolicy = "Always"
	default:
		return cfg, fmt.Errorf("--kube-pull-policy / RTEMU_KUBE_PULL_POLICY: %q is not IfNotPresent, Never or Always", f.kubePull)
	}
	switch strings.ToLower(f.sandboxNet) {
	case "isolated":
	case "shared":
		cfg.SharedSandboxNetwork = true
	default:
		return cfg, fmt.Errorf("--sandbox-network / RTEMU_SANDBOX_NETWORK: %q is not isolated or shared", f.sandboxNet)
	}
	if cfg.Templates, err = parseTemplates(f.templates); err != nil {
		return cfg, err
	}
	if cfg.WarmPool, err = parseWarmPool(f.pools, cfg.Templates); err != nil {
		return cfg, err
	}
	if cfg.DataDir == "" && !cfg.Ephemeral {
		cfg.DataDir, err = defaultDataDir(getenv)
	}
	return cfg, err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseTemplates lays NAME=IMAGE pairs over the defaults.
func parseTemplates(pairs []string) ([]sandbox.Template, error) {
	out := append([]sandbox.Template(nil), DefaultTemplates...)
	for _, p := range pairs {
		name, image, ok := strings.Cut(p, "=")
		name, image = strings.TrimSpace(name), strings.TrimSpace(image)
		if !ok || name == "" || image == "" || strings.ContainsAny(name, " /") {
			return nil, fmt.Errorf("--template / RTEMU_TEMPLATES %q: want NAME=IMAGE, e.g. base-ubuntu=ubuntu:24.04", p)
		}
		replaced := false
		for i := range out {
			if out[i].Name == name {
				// An image of the user's own: never built from a recipe.
				out[i].Image, out[i].Recipe, out[i].Fallback, replaced = image, "", "", true
			}
		}
		if !replaced {
			out = append(out, sandbox.Template{Name: name, Image: image})
		}
	}
	return out, nil
}

func defaultDataDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "rtemu"), nil
	}
	home := getenv("HOME")
	var err error
	if home == "" {
		home, err = os.UserHomeDir()
	}
	if err != nil || home == "" {
		return "", errors.New("no --data-dir given and no home directory to default to")
	}
	return filepath.Join(home, ".local", "share", "rtemu"), nil
}

// maxWarmPool bounds one template's pool: each is a running container.
const maxWarmPool = 64

// parseWarmPool reads TEMPLATE=N pairs; the template must be configured.
func parseWarmPool(pairs []string, templates []sandbox.Template) (map[string]int, error) {
	var out map[string]int
	for _, p := range pairs {
		if out == nil {
			out = map[string]int{}
		}
		name, count, ok := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if !ok || name == "" || err != nil || n < 0 || n > maxWarmPool {
			return nil, fmt.Errorf("--warm-pool / RTEMU_WARM_POOL %q: want TEMPLATE=N with N from 0 to %d, e.g. base-ubuntu=4", p, maxWarmPool)
		}
		known := false
		for _, t := range templates {
			known = known || t.Name == name
		}
		if !known {
			return nil, fmt.Errorf("--warm-pool / RTEMU_WARM_POOL %q: unknown template %q (add it with --template %s=IMAGE)", p, name, name)
		}
		out[name] = n
	}
	return out, nil
}

// Changed says whether a flag was given on the command line.
func (f *Flags) Changed(name string) bool { return f.fs.Changed(name) }
