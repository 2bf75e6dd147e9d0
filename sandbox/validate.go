package sandbox

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Limits and defaults of a sandbox request. Where the hosted API documents
// one, this matches it; the rest are written down in the README.
const (
	DefaultVCPUs       = 2
	MaxVCPUs           = 16
	DefaultMemory      = "4GB"
	DefaultDisk        = "10GB"
	DefaultIdleTimeout = 600
	MaxIdleTimeout     = 604800
	DefaultExecTimeout = 30 * time.Second
	MaxExecTimeout     = time.Hour
	MaxExecOutput      = 10 << 20
	WorkspacePath      = "/workspace"
	MaxListLimit       = 500

	minMemory     = 128 << 20
	maxMemory     = 256 << 30
	minDisk       = 1 << 30
	maxDisk       = 2048 << 30
	maxNameLen    = 63
	maxTags       = 50
	maxTagLen     = 64
	maxEnvVars    = 256
	maxEnvValue   = 32 << 10
	maxMetadata   = 16 << 10
	maxSSHKeys    = 50
	maxPassword   = 72 // bcrypt reads no further
	maxCommandLen = 256 << 10
	maxPathLen    = 1024
)

var (
	idPattern      = regexp.MustCompile(`^sandbox-[a-z0-9]{12}$`)
	namePattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	keyIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	uuidPattern    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	sizePattern    = regexp.MustCompile(`^([0-9]{1,7})\s*([MmGg])(i?)[Bb]$`)
)

// ParseSize reads "512MB", "4GB", "1024MiB" or "2GiB" as bytes. MB and GB
// mean MiB and GiB, as they do for the memory of the hosted sandboxes.
func ParseSize(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("must be a whole number with a unit MB, GB, MiB or GiB, like \"4GB\"")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if strings.EqualFold(m[2], "g") {
		return n << 30, nil
	}
	return n << 20, nil
}

func validName(v *invalid, field, name string) {
	switch {
	case name == "":
		v.add(field, "must not be empty")
	case len(name) > maxNameLen:
		v.add(field, "must be at most %d characters", maxNameLen)
	case !namePattern.MatchString(name):
		v.add(field, "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit")
	case idPattern.MatchString(name):
		v.add(field, "must not look like a sandbox id")
	}
}

func validText(v *invalid, field, s string, maxLen int) {
	switch {
	case s == "":
		v.add(field, "must not be empty")
	case len(s) > maxLen:
		v.add(field, "must be at most %d bytes", maxLen)
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		v.add(field, "must be valid UTF-8 without control characters")
	}
}

func validEnv(v *invalid, field string, env map[string]string) {
	if len(env) > maxEnvVars {
		v.add(field, "at most %d variables", maxEnvVars)
		return
	}
	for k, val := range env {
		f := field + "." + k
		switch {
		case !envNamePattern.MatchString(k) || len(k) > 256:
			v.add(f, "not a valid variable name (letters, digits and '_', not starting with a digit)")
		case strings.IndexByte(val, 0) >= 0:
			v.add(f, "must not contain NUL")
		case len(val) > maxEnvValue:
			v.add(f, "must be at most %d bytes", maxEnvValue)
		}
	}
}

func validSize(v *invalid, field, s string, lo, hi int64) {
	n, err := ParseSize(s)
	if err != nil {
		v.add(field, "%v", err)
		return
	}
	if n < lo || n > hi {
		v.add(field, "must be between %dMB and %dGB", lo>>20, hi>>30)
	}
}

// MountPath checks and cleans a mount path: /workspace or below it.
func MountPath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("must not be empty")
	case len(p) > maxPathLen:
		return "", fmt.Errorf("must be at most %d bytes", maxPathLen)
	case strings.IndexFunc(p, unicode.IsControl) >= 0 || !utf8.ValidString(p):
		return "", fmt.Errorf("must be valid UTF-8 without control characters")
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("must be absolute")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("must not contain '..'")
		}
	}
	c := path.Clean(p)
	if c != WorkspacePath && !strings.HasPrefix(c, WorkspacePath+"/") {
		return "", fmt.Errorf("must be %s or a folder below it", WorkspacePath)
	}
	return c, nil
}

// validSSHKey accepts an authorized_keys line or a registered key's id.
func validSSHKey(v *invalid, field, k string) {
	k = strings.TrimSpace(k)
	if strings.ContainsAny(k, " \t") {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			v.add(field, "not a valid SSH public key")
		}
		return
	}
	if !keyIDPattern.MatchString(k) {
		v.add(field, "must be an SSH public key (\"ssh-ed25519 AAAA…\") or a registered key id")
	}
}

// validateCreate checks a create request and fills in the defaults. The
// template and the workspaces are checked by the caller, which knows them.
func validateCreate(p *CreateParams) (Resources, int, error) {
	var v invalid
	res := Resources{VCPUs: DefaultVCPUs, Memory: DefaultMemory, Disk: DefaultDisk}
	if strings.TrimSpace(p.Template) == "" {
		v.add("template", "is required")
	}
	if p.Name != "" {
		validName(&v, "name", p.Name)
	}
	if len(p.Tags) > maxTags {
		v.add("tags", "at most %d tags", maxTags)
	}
	for i, t := range p.Tags {
		validText(&v, fmt.Sprintf("tags[%d]", i), t, maxTagLen)
	}
	if p.VCPUs != nil {
		res.VCPUs = *p.VCPUs
		if res.VCPUs < 1 || res.VCPUs > MaxVCPUs {
			v.add("resources.vcpus", "must be between 1 and %d", MaxVCPUs)
		}
	}
	if p.Memory != nil {
		res.Memory = strings.TrimSpace(*p.Memory)
		validSize(&v, "resources.memory", res.Memory, minMemory, maxMemory)
	}
	if p.Disk != nil {
		res.Disk = strings.TrimSpace(*p.Disk)
		validSize(&v, "resources.disk", res.Disk, minDisk, maxDisk)
	}
	validEnv(&v, "env", p.Env)
	idle := DefaultIdleTimeout
	if p.IdleTimeout != nil {
		idle = *p.IdleTimeout
		if idle < 0 || idle > MaxIdleTimeout {
			v.add("idleTimeout", "must be between 0 (never) and %d seconds", MaxIdleTimeout)
		}
	}
	seen := map[string]bool{}
	for i := range p.Mounts {
		m := &p.Mounts[i]
		f := fmt.Sprintf("mounts[%d]", i)
		if !uuidPattern.MatchString(m.WorkspaceID) {
			v.add(f+".workspaceId", "must be a workspace id (a UUID)")
		}
		clean, err := MountPath(m.Path)
		if err != nil {
			v.add(f+".path", "%v", err)
			continue
		}
		if seen[clean] {
			v.add(f+".path", "%s is mounted twice", clean)
		}
		seen[clean] = true
		m.Path = clean
	}
	if len(p.SSHKeys) > maxSSHKeys {
		v.add("sshKeys", "at most %d keys", maxSSHKeys)
	}
	for i, k := range p.SSHKeys {
		validSSHKey(&v, fmt.Sprintf("sshKeys[%d]", i), k)
	}
	if p.RootPassword != nil {
		switch pw := *p.RootPassword; {
		case pw == "":
			v.add("rootPassword", "must not be empty")
		case len(pw) > maxPassword:
			v.add("rootPassword", "must be at most %d bytes", maxPassword)
		case strings.IndexByte(pw, 0) >= 0:
			v.add("rootPassword", "must not contain NUL")
		}
	}
	if len(p.Metadata) > maxMetadata {
		v.add("metadata", "must be at most %d bytes of JSON", maxMetadata)
	}
	if p.ProjectID != nil && *p.ProjectID != "" && !uuidPattern.MatchString(*p.ProjectID) {
		v.add("projectId", "must be a UUID")
	}
	return res, idle, v.err()
}

func validateUpdate(p UpdateParams) error {
	var v invalid
	if p.Name != nil && *p.Name != "" {
		validName(&v, "name", *p.Name)
	}
	if p.ProjectID != nil && *p.ProjectID != "" && !uuidPattern.MatchString(*p.ProjectID) {
		v.add("projectId", "must be a UUID")
	}
	return v.err()
}

func validateExec(p *ExecParams) error {
	var v invalid
	switch {
	case strings.TrimSpace(p.Command) == "":
		v.add("command", "is required")
	case len(p.Command) > maxCommandLen:
		v.add("command", "must be at most %d bytes", maxCommandLen)
	case strings.IndexByte(p.Command, 0) >= 0:
		v.add("command", "must not contain NUL")
	}
	if p.Cwd == "" {
		p.Cwd = WorkspacePath
	} else if !strings.HasPrefix(p.Cwd, "/") || strings.IndexByte(p.Cwd, 0) >= 0 || len(p.Cwd) > maxPathLen {
		v.add("cwd", "must be an absolute path")
	}
	validEnv(&v, "env", p.Env)
	if p.Timeout == 0 {
		p.Timeout = DefaultExecTimeout
	} else if p.Timeout < time.Millisecond || p.Timeout > MaxExecTimeout {
		v.add("timeout", "must be between 1 and %d milliseconds", MaxExecTimeout.Milliseconds())
	}
	return v.err()
}

func validateList(f *ListFilter) error {
	var v invalid
	for _, s := range f.Statuses {
		if _, ok := transitions[s]; !ok && !slices.Contains(UpstreamOnlyStatuses, s) {
			v.add("status", "unknown status %q", s)
		}
	}
	if f.ProjectID != "" && !uuidPattern.MatchString(f.ProjectID) {
		v.add("projectId", "must be a UUID")
	}
	f.ProjectID = strings.ToLower(f.ProjectID)
	if f.Limit < 1 || f.Limit > MaxListLimit {
		v.add("limit", "must be between 1 and %d", MaxListLimit)
	}
	return v.err()
}
