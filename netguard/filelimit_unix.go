//go:build unix

package netguard

import (
	"math"
	"syscall"
)

// RaiseFileLimit raises the soft limit on open files to the hard one and
// returns the soft limit in force. (Go's runtime does the same at start
// since 1.19; doing it here makes it true whoever starts rtemu, and reads
// the number the connection budget is made from.) Where the hard limit is
// unlimited, the kernel's cap (darwin's OPEN_MAX) may refuse it: the limit
// stays as it was.
func RaiseFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fallbackFileLimit
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	if lim.Cur > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(lim.Cur)
}
