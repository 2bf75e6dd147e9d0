package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// stateFile, in the data dir, tells `rtemu env` where a running rtemu
// listens.
const stateFile = "rtemu.json"

// Running describes a running rtemu.
type Running struct {
	URL     string `json:"url"`
	SSHAddr string `json:"sshAddr,omitempty"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
}

func writeRunning(dataDir string, r Running) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, stateFile))
}

// FindRunning reads where the rtemu of a data dir listens and checks that it
// answers.
func FindRunning(ctx context.Context, dataDir string) (Running, error) {
	var r Running
	b, err := os.ReadFile(filepath.Join(dataDir, stateFile))
	if err != nil {
		return r, fmt.Errorf("no rtemu has run on %s (start one with `rtemu serve --data-dir %s`)", dataDir, dataDir)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dataDir, stateFile), err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("the rtemu of %s (pid %d, %s) does not answer: %v", dataDir, r.PID, r.URL, err)
	}
	resp.Body.Close()
	return r, nil
}
