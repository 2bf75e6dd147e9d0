//go:build !unix

package netguard

// RaiseFileLimit: Windows has no per-process limit on sockets like Unix's
// RLIMIT_NOFILE; the budget uses a fixed bound there.
func RaiseFileLimit() int { return fallbackFileLimit }
