//go:build !unix

package main

import "time"

// selfCPU is not read here: the CPU figures are Linux's (cpu.go).
func selfCPU() time.Duration { return 0 }
