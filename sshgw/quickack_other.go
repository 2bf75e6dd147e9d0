//go:build !linux

package sshgw

import "syscall"

// setQuickAck: TCP_QUICKACK is Linux's; elsewhere delayed ACKs stay.
func setQuickAck(syscall.RawConn) {}
