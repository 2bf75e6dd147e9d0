package docker

import "time"

// WithHostAgentUnusable makes the driver act as if rtemu's own executable
// could not run in the engine's containers (rtemu on macOS or Windows, or an
// engine of another architecture), keeping built agents in cacheDir.
func WithHostAgentUnusable(cacheDir string) Option {
	return func(o *options) { o.agent = agentSourcing{hostUnusable: true, cacheDir: cacheDir} }
}

// WithHostAgentFirst makes the driver put rtemu's own executable into
// containers, as it does when it has neither an embedded agent nor a Go
// toolchain to build one.
func WithHostAgentFirst() Option {
	return func(o *options) { o.agent = agentSourcing{hostFirst: true} }
}

// DecideDiskLimits is the rule DiskLimits applies to what the engine said.
var DecideDiskLimits = decideDiskLimits

// StorageOpt is the engine option a disk size becomes.
var StorageOpt = storageOpt

// AgentsKept is how many idle agents a container keeps.
const AgentsKept = agentsKept

// ExecStarting holds a container's exec gate as an exec's start does.
func (d *Driver) ExecStarting(name string) func() { return d.execStarting(name) }

// WithUnusedHubFor sets how long a link's hub nobody has used is kept.
func WithUnusedHubFor(d time.Duration) Option { return func(o *options) { o.unusedHubFor = d } }
