package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU time of the processes a transfer runs through, read before and
// after it: unlike its rate, this hardly depends on what else the machine
// is doing, so rtemu's gateway and OpenSSH's sshd can be compared on a
// loaded machine. Linux only; a figure that cannot be read is 0.

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Go runs on).
const clockTick = 10 * time.Millisecond

// procStat is a process's parent and its user and system time.
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, time.Duration(ut+st) * clockTick, true
}

// treeCPU is the CPU time of pid and every process below it (sshd's
// daemon and the processes it forks for a connection).
func treeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	cpu := map[int]time.Duration{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, c, ok := procStat(p); ok {
			parent[p], cpu[p] = pp, c
		}
	}
	var total time.Duration
	for p, c := range cpu {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += c
				break
			}
		}
	}
	return total
}

// cgroupCPU is the CPU time of the cgroup a process is in: a container's
// processes, all of them (cgroup v1 cpuacct, else v2's cpu.stat).
func cgroupCPU(pid int) time.Duration {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case strings.Contains(","+parts[1]+",", ",cpuacct,"):
			raw, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", parts[2], "cpuacct.usage"))
			if err == nil {
				n, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
				return time.Duration(n)
			}
		case parts[0] == "0" && parts[1] == "":
			raw, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[2], "cpu.stat"))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					return time.Duration(n) * time.Microsecond
				}
			}
		}
	}
	return 0
}

// cpuMeter reads the CPU time of a transfer's processes: this one (rtemu
// in-process, and the HTTP client that reads the download), the ssh
// client, the server's processes outside this one (sshd), and the
// container (the HTTP server, and rtemu's agent where it relays).
type cpuMeter struct {
	client, server, container int // pids; 0: none
}

type cpuSample struct{ self, client, server, container time.Duration }

func (m cpuMeter) read() cpuSample {
	return cpuSample{self: selfCPU(), client: treeCPU(m.client), server: treeCPU(m.server), container: cgroupCPU(m.container)}
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{self: a.self - b.self, client: a.client - b.client, server: a.server - b.server, container: a.container - b.container}
}

func (a cpuSample) add(b cpuSample) cpuSample {
	return cpuSample{self: a.self + b.self, client: a.client + b.client, server: a.server + b.server, container: a.container + b.container}
}

func (a cpuSample) total() time.Duration { return a.self + a.client + a.server + a.container }

// perGiB is CPU milliseconds per GiB moved, n transfers of mb MiB each.
func perGiB(d time.Duration, n int, mb float64) float64 {
	return float64(d.Milliseconds()) / (float64(n) * mb / 1024)
}
