package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"
)

// sshdForward starts OpenSSH's own sshd on a loopback port (keys made
// for it, key auth only) and `ssh -N -L` through it to target: the same
// forward as rtemu's gateway makes, by the SSH server users compare it
// with. Its stop ends both.
func sshdForward(ctx context.Context, target string) (*forward, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			return nil, fmt.Errorf("no sshd on this machine (Debian: openssh-server)")
		}
		sshd = "/usr/sbin/sshd"
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rtemu-bench-sshd-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	for _, k := range []string{"host", "user"} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			cleanup()
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	}
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		err = lerr
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	if u.Uid == "0" {
		// Its privilege separation needs the folder (a package's service
		// makes it at boot).
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	config := strings.Join([]string{
		"Port " + port, "ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
		"UsePAM no", "StrictModes no", "PermitRootLogin yes", "AllowTcpForwarding yes", "PidFile none",
	}, "\n") + "\n"
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	cmd := exec.CommandContext(ctx, sshd, "-D", "-e", "-f", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopSSHD := func() { _ = cmd.Process.Kill(); <-exited; cleanup() }
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			cleanup()
			return nil, fmt.Errorf("sshd ended: %s", strings.TrimSpace(stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stopSSHD()
			return nil, fmt.Errorf("sshd did not listen within 10s: %s", strings.TrimSpace(stderr.String()))
		}
	}
	fwd, err := sshForward(ctx, addr, u.Username, target, nil,
		"ssh", "-i", filepath.Join(dir, "user"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes")
	if err != nil {
		stopSSHD()
		return nil, fmt.Errorf("%w (sshd: %s)", err, strings.TrimSpace(stderr.String()))
	}
	stopFwd := fwd.stop
	fwd.server, fwd.stop = cmd.Process.Pid, func() { stopFwd(); stopSSHD() }
	return fwd, nil
}
