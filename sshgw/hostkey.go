package sshgw

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// loadOrCreateHostKey reads the ed25519 host key at path, making it (in
// OpenSSH's format, with the public half beside it as path.pub) the first
// time. The key is written to a temporary file and linked into place, so a
// crash never leaves half a key and two rtemus starting at once agree on
// one key.
func loadOrCreateHostKey(path string) (gossh.Signer, error) {
	if path == "" {
		return nil, errors.New("ssh host key: no path")
	}
	if b, err := os.ReadFile(path); err == nil {
		s, err := gossh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh host key %s: %w (move it away to make a new one)", path, err)
		}
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "rtemu host key")
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ssh_host_key-*")
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateHostKey(path) // another rtemu made it first
		}
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	// The public half, for known_hosts ("[127.0.0.1]:2222 " + this line).
	_ = os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	return signer, nil
}
