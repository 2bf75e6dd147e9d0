package config

import (
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/sandbox"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"defaults", nil, map[string]string{"HOME": "/home/u"}, func(c *Config) {}},
		{"xdg data home", nil, map[string]string{"XDG_DATA_HOME": "/xdg"}, func(c *Config) { c.DataDir = "/xdg/rtemu" }},
		{"env", nil, map[string]string{"HOME": "/home/u", "RTEMU_ADDR": "127.0.0.1:9", "RTEMU_SSH_ADDR": "127.0.0.1:10",
			"RTEMU_DATA_DIR": "/d", "RTEMU_TEMPLATES": "base-ubuntu=busybox, desktop-ubuntu=desk:1", "RTEMU_API_KEYS": "k1,k2", "RTEMU_AUTH": "off", "RTEMU_EXEC_AGENT": "off"},
			func(c *Config) {
				c.Addr, c.SSHAddr, c.DataDir, c.AuthOff, c.APIKeys = "127.0.0.1:9", "127.0.0.1:10", "/d", true, []string{"k1", "k2"}
				c.ExecAgentOff = true
				c.Templates = []sandbox.Template{{Name: "base-ubuntu", Image: "busybox"}, {Name: "desktop-ubuntu", Image: "desk:1"}}
			}},
		{"flags win over env", []string{"--addr", "127.0.0.1:1", "--template", "x=img", "--api-key", "k3", "--auth", "on", "--data-dir", "/f"},
			map[string]string{"HOME": "/home/u", "RTEMU_ADDR": "127.0.0.1:9", "RTEMU_TEMPLATES": "y=z", "RTEMU_API_KEYS": "k1", "RTEMU_AUTH": "off"},
			func(c *Config) {
				c.Addr, c.APIKeys, c.DataDir = "127.0.0.1:1", []string{"k3"}, "/f"
				c.Templates = append(c.Templates, sandbox.Template{Name: "x", Image: "img"})
			}},
		{"ephemeral bare flag", []string{"--ephemeral"}, map[string]string{"HOME": "/home/u"}, func(c *Config) { c.Ephemeral, c.DataDir = true, "" }},
		{"warm pool flag", []string{"--warm-pool", "base-ubuntu=3", "--warm-pool", "x=0", "--template", "x=img"}, map[string]string{"HOME": "/home/u"},
			func(c *Config) {
				c.WarmPool = map[string]int{"base-ubuntu": 3, "x": 0}
				c.Templates = append(c.Templates, sandbox.Template{Name: "x", Image: "img"})
			}},
		{"warm pool env", nil, map[string]string{"HOME": "/home/u", "RTEMU_WARM_POOL": "base-ubuntu=2"},
			func(c *Config) { c.WarmPool = map[string]int{"base-ubuntu": 2} }},
		{"strict lifecycle bare flag", []string{"--strict-lifecycle"}, map[string]string{"HOME": "/home/u"}, func(c *Config) { c.StrictLifecycle = true }},
		{"public addresses and no dev URL listeners", []string{"--public-addr", "localhost:17070", "--dev-url-listeners", "off"},
			map[string]string{"HOME": "/home/u", "RTEMU_PUBLIC_SSH_ADDR": "localhost:12222"},
			func(c *Config) {
				c.PublicAddr, c.PublicSSHAddr, c.DevURLListenersOff = "localhost:17070", "localhost:12222", true
			}},
		{"strict lifecycle env", nil, map[string]string{"HOME": "/home/u", "RTEMU_STRICT_LIFECYCLE": "true"}, func(c *Config) { c.StrictLifecycle = true }},
		{"shared sandbox network flag", []string{"--sandbox-network", "shared"}, map[string]string{"HOME": "/home/u", "RTEMU_SANDBOX_NETWORK": "isolated"},
			func(c *Config) { c.SharedSandboxNetwork = true }},
		{"shared sandbox network env", nil, map[string]string{"HOME": "/home/u", "RTEMU_SANDBOX_NETWORK": "shared"},
			func(c *Config) { c.SharedSandboxNetwork = true }},
		{"isolated sandbox network", []string{"--sandbox-network", "isolated"}, map[string]string{"HOME": "/home/u", "RTEMU_SANDBOX_NETWORK": "shared"},
			func(c *Config) {}},
		{"exec output memory", []string{"--exec-output-memory", "64MB"}, map[string]string{"HOME": "/home/u", "RTEMU_EXEC_OUTPUT_MEMORY": "8MB"},
			func(c *Config) { c.ExecOutputMemory = 64 << 20 }},
		{"exec output memory env", nil, map[string]string{"HOME": "/home/u", "RTEMU_EXEC_OUTPUT_MEMORY": "1GiB"},
			func(c *Config) { c.ExecOutputMemory = 1 << 30 }},
		{"kubernetes engine", []string{"--engine", "Kubernetes", "--kube-namespace", "sandboxes", "--kube-pull-policy", "never", "--kube-host-folders"},
			map[string]string{"HOME": "/home/u", "RTEMU_KUBECONFIG": "/k/config"},
			func(c *Config) {
				c.Engine, c.Kube = "kubernetes", Kube{Kubeconfig: "/k/config", Namespace: "sandboxes", PullPolicy: "Never", HostFolders: true}
			}},
		{"kubernetes engine env", nil,
			map[string]string{"HOME": "/home/u", "RTEMU_ENGINE": "kubernetes", "RTEMU_KUBE_NAMESPACE": "ns", "RTEMU_KUBE_PULL_POLICY": "Always", "RTEMU_KUBE_HOST_FOLDERS": "true"},
			func(c *Config) {
				c.Engine, c.Kube = "kubernetes", Kube{Namespace: "ns", PullPolicy: "Always", HostFolders: true}
			}},
		{"kubernetes workspace claim", []string{"--engine", "kubernetes", "--kube-workspace-claim", "rtemu-workspaces"},
			map[string]string{"HOME": "/home/u", "RTEMU_KUBE_WORKSPACE_CLAIM": "other"},
			func(c *Config) {
				c.Engine, c.Kube = "kubernetes", Kube{Namespace: "default", PullPolicy: "IfNotPresent", WorkspaceClaim: "rtemu-workspaces"}
			}},
		{"ephemeral env", nil, map[string]string{"HOME": "/home/u", "RTEMU_EPHEMERAL": "true"}, func(c *Config) { c.Ephemeral, c.DataDir = true, "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Config{Addr: "127.0.0.1:7070", SSHAddr: "127.0.0.1:2222", DataDir: "/home/u/.local/share/rtemu",
				Templates: DefaultTemplates, Kube: Kube{Namespace: "default", PullPolicy: "IfNotPresent"}}
			tt.want(&want)
			got, err := Parse(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--template", "noequals"}, {"--template", "=img"}, {"--template", "a b=img"}, {"--auth", "maybe"}, {"--exec-agent", "sometimes"}, {"--sandbox-network", "open"},
		{"--ephemeral=perhaps"}, {"--ephemeral", "--auth"}, {"--strict-lifecycle=maybe"}, {"--no-such-flag"}, {"stray"},
		{"--warm-pool", "base-ubuntu"}, {"--warm-pool", "base-ubuntu=-1"}, {"--warm-pool", "base-ubuntu=65"},
		{"--warm-pool", "nosuch=2"}, {"--warm-pool", "base-ubuntu=two"},
		{"--public-addr", "nocolon"}, {"--public-ssh-addr", ":22"}, {"--dev-url-listeners", "perhaps"},
		{"--exec-output-memory", "lots"}, {"--exec-output-memory", "512KiB"}, {"--exec-output-memory", "0MB"}, {"--exec-output-memory", "64GB"},
		{"--engine", "podman"}, {"--kube-pull-policy", "sometimes"}, {"--kube-host-folders=maybe"},
		{"--kube-workspace-claim", "Not_A_Name"},
	} {
		if _, err := Parse(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestParseRejectsEnv: a variable's bad value is refused, naming it.
func TestParseRejectsEnv(t *testing.T) {
	t.Parallel()
	for _, kv := range [][2]string{
		{"RTEMU_EPHEMERAL", "perhaps"}, {"RTEMU_STRICT_LIFECYCLE", "2"}, {"RTEMU_AUTH", "maybe"},
		{"RTEMU_WARM_POOL", "base-ubuntu=x"}, {"RTEMU_TEMPLATES", "noequals"}, {"RTEMU_EXEC_OUTPUT_MEMORY", "lots"},
		{"RTEMU_ENGINE", "podman"}, {"RTEMU_KUBE_PULL_POLICY", "sometimes"}, {"RTEMU_KUBE_HOST_FOLDERS", "maybe"},
		{"RTEMU_KUBE_WORKSPACE_CLAIM", "-bad"},
	} {
		_, err := Parse(nil, func(k string) string { return map[string]string{kv[0]: kv[1], "HOME": "/h"}[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

// TestBooleansAreBooleans: --ephemeral and --strict-lifecycle are bare
// flags that also take =true/=false, and say so in the usage.
func TestBooleansAreBooleans(t *testing.T) {
	t.Parallel()
	env := func(k string) string { return map[string]string{"HOME": "/h", "RTEMU_EPHEMERAL": "true"}[k] }
	cfg, err := Parse([]string{"--ephemeral=false", "--strict-lifecycle"}, env, io.Discard)
	if err != nil || cfg.Ephemeral || !cfg.StrictLifecycle {
		t.Fatalf("--ephemeral=false over RTEMU_EPHEMERAL=true, --strict-lifecycle: %+v, %v", cfg, err)
	}
	var usage strings.Builder
	_, _ = Parse([]string{"-h"}, env, &usage)
	for _, l := range strings.Split(usage.String(), "\n") {
		if strings.Contains(l, "--ephemeral") && strings.Contains(l, "string") {
			t.Errorf("usage: %q", l)
		}
	}
}

// TestREADMEConfigurationTable: the README's table has a row for each flag,
// naming its variable, and no other rows.
func TestREADMEConfigurationTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Configuration")
	end := strings.Index(readme[start:], "\n## ")
	var rows []string
	for _, line := range strings.Split(readme[start:start+end], "\n") {
		if strings.HasPrefix(line, "| `--") {
			rows = append(rows, line)
		}
	}
	if len(rows) != len(Settings) {
		t.Fatalf("README has %d flag rows, rtemu has %d flags", len(rows), len(Settings))
	}
	for i, s := range Settings {
		cells := strings.Split(rows[i], "|")
		if !strings.HasPrefix(strings.TrimSpace(cells[1]), "`"+s.Flag) || !strings.HasPrefix(strings.TrimSpace(cells[2]), "`"+s.Env) {
			t.Errorf("README row %d is %q; want %s and %s", i, rows[i], s.Flag, s.Env)
		}
	}
	// Every flag the parser knows is in the list.
	fs := flagNames(t)
	for _, s := range Settings {
		delete(fs, strings.TrimPrefix(s.Flag, "--"))
	}
	if len(fs) != 0 {
		t.Errorf("flags missing from Settings: %v", fs)
	}
}

// flagNames reads the flags from the parser's own usage text.
func flagNames(t *testing.T) map[string]bool {
	t.Helper()
	var usage strings.Builder
	if _, err := Parse([]string{"-h"}, func(string) string { return "" }, &usage); err == nil {
		t.Fatal("-h parsed as a configuration")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("no flags in the usage text %q", usage.String())
	}
	return names
}
