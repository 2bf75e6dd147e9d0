package sshgw_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSCPTildePaths: Ansible's scp transfer mode, step by step as it does
// it with the sandbox id as the remote user: the shell expands
// ~<id>/.ansible/tmp to make its temporary folder, scp (which speaks SFTP
// and sends a ~user path only to a server with expand-path@openssh.com)
// puts the module there, and the shell runs it. ~ and ~root paths, and a
// login by the sandbox's name, work too; an unknown user is refused by
// name, and nothing is written.
func TestSCPTildePaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(map[string]any{"name": "tilde"})
	local := t.TempDir()
	module := filepath.Join(local, "AnsiballZ_ping.sh")
	if err := os.WriteFile(module, []byte("echo pong\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(user, cmd string) string {
		t.Helper()
		r := openssh(t, h.ssh("ssh", append(withKey(key), target(user, h), cmd)...), nil)
		if r.code != 0 {
			t.Fatalf("ssh %s %q: %+v", user, cmd, r)
		}
		return strings.TrimSpace(r.stdout)
	}

	// Ansible's _remote_expand_user, then its mkdtemp.
	if home := run(id, "echo ~"+id); home != "/root" {
		t.Fatalf("echo ~%s = %q, want /root", id, home)
	}
	tmp := run(id, `( umask 77 && mkdir -p "$(echo ~`+id+`/.ansible/tmp)" && mkdir "$(echo ~`+id+`/.ansible/tmp/ansible-tmp-1)" && echo "$(echo ~`+id+`/.ansible/tmp/ansible-tmp-1)" )`)
	if tmp != "/root/.ansible/tmp/ansible-tmp-1" {
		t.Fatalf("ansible's temporary folder %q", tmp)
	}
	for _, dest := range []string{
		"~" + id + "/.ansible/tmp/ansible-tmp-1/AnsiballZ_ping.sh", // ~user, as Ansible's scp mode sends it
		"~/.ansible/tmp/ansible-tmp-1/home.sh",
		"~root/.ansible/tmp/ansible-tmp-1/root.sh",
	} {
		r := openssh(t, h.ssh("scp", append(withKey(key), module, target(id, h)+":"+dest)...), nil)
		if r.code != 0 {
			t.Fatalf("scp to %s: %+v", dest, r)
		}
	}
	if out := run(id, "sh ~"+id+"/.ansible/tmp/ansible-tmp-1/AnsiballZ_ping.sh && ls ~/.ansible/tmp/ansible-tmp-1"); out != "pong\nAnsiballZ_ping.sh\nhome.sh\nroot.sh" {
		t.Fatalf("the module after scp: %q", out)
	}
	// Logged in by the sandbox's name: ~<name> is root's home too.
	r := openssh(t, h.ssh("scp", append(withKey(key), module, target("tilde", h)+":~tilde/by-name.sh")...), nil)
	if r.code != 0 || run("tilde", "cat ~tilde/by-name.sh") != "echo pong" {
		t.Fatalf("scp by name: %+v", r)
	}
	// Root is still root: whoami, and the uid 0 line first.
	if out := run(id, "whoami; id -u; grep -c '^"+id+":x:0:0:' /etc/passwd"); out != "root\n0\n1" {
		t.Errorf("after the logins: %q", out)
	}
	// A user the container does not have: refused, nothing written.
	r = openssh(t, h.ssh("scp", append(withKey(key), module, target(id, h)+":~nosuchuser/x.sh")...), nil)
	if r.code == 0 {
		t.Fatalf("scp to ~nosuchuser: %+v", r)
	}
	if out := run(id, "ls -a / /root | grep -c nosuchuser || true"); out != "0" {
		t.Errorf("something written for ~nosuchuser: %q", out)
	}
}

// TestAnsibleSCPMode runs Ansible itself (where it is installed) with its
// scp transfer method against a sandbox, logged in as the sandbox's id:
// the script module puts a file in ~<id>/.ansible/tmp by scp and runs it.
// The image has no Python, which the script module does not need.
func TestAnsibleSCPMode(t *testing.T) {
	t.Parallel()
	ansible, err := exec.LookPath("ansible")
	if err != nil {
		t.Skip("ansible is not installed (apt-get install ansible-core)")
	}
	h := newHarness(t)
	key := newKey(t, "ed25519")
	h.registerKey("k", key)
	id := h.sandbox(map[string]any{"name": "ansible"})
	local := t.TempDir()
	script := filepath.Join(local, "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"hello from $(hostname)\" > /tmp/ansible-ran\necho pong\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	inventory := filepath.Join(local, "hosts")
	if err := os.WriteFile(inventory, []byte(fmt.Sprintf("sb ansible_host=%s ansible_port=%s ansible_user=%s ansible_ssh_private_key_file=%s\n",
		h.host, h.port, id, key.file)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"scp", "sftp"} {
		cmd := exec.Command(ansible, "sb", "-i", inventory, "-m", "script", "-a", script)
		cmd.Env = append(os.Environ(), "HOME="+h.dir, "SSH_AUTH_SOCK=", "ANSIBLE_SSH_TRANSFER_METHOD="+method,
			"ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+filepath.Join(local, "tmp"),
			"ANSIBLE_SSH_ARGS=-F /dev/null -o UserKnownHostsFile="+h.knownHosts+" -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ControlMaster=no")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "pong") {
			t.Fatalf("ansible -m script (%s): %v\n%s", method, err, out)
		}
		if got := strings.TrimSpace(h.sh(id, "cat /tmp/ansible-ran; rm /tmp/ansible-ran")); !strings.HasPrefix(got, "hello from ") {
			t.Fatalf("the script's mark (%s): %q", method, got)
		}
	}
}
