package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// contextHost finds the engine address of the Docker CLI's current context,
// so that an engine chosen with `docker context use` works with no flag.
// DOCKER_HOST wins over any context, as it does for the CLI; "" means use
// DOCKER_HOST or the default socket.
func contextHost() (string, error) {
	if os.Getenv("DOCKER_HOST") != "" {
		return "", nil
	}
	cfgDir := os.Getenv("DOCKER_CONFIG")
	if cfgDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", nil
		}
		cfgDir = filepath.Join(home, ".docker")
	}
	name := os.Getenv("DOCKER_CONTEXT")
	if name == "" {
		var cfg struct {
			CurrentContext string `json:"currentContext"`
		}
		b, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
		if err != nil {
			return "", nil
		}
		if json.Unmarshal(b, &cfg) != nil {
			return "", nil
		}
		name = cfg.CurrentContext
	}
	if name == "" || name == "default" {
		return "", nil
	}
	sum := sha256.Sum256([]byte(name))
	b, err := os.ReadFile(filepath.Join(cfgDir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("docker context %q not found in %s", name, cfgDir)
	}
	if err != nil {
		return "", fmt.Errorf("docker context %q: %w", name, err)
	}
	var meta struct {
		Endpoints map[string]struct {
			Host string `json:"Host"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", fmt.Errorf("docker context %q: %w", name, err)
	}
	return meta.Endpoints["docker"].Host, nil
}
