package sandbox

import (
	"context"
	"fmt"
)

// The one organisation and user of a local rtemu. The hosted API names an
// owner and an organisation on every sandbox, workspace and event; rtemu
// has no accounts, so every one of them is this organisation's and this
// user's. The ids are fixed (not made per data dir), so a client or a test
// may compare against them; the README lists them.
const (
	LocalOrgID           = "00000000-0000-4000-8000-00000000000a"
	LocalUserID          = "00000000-0000-4000-8000-00000000000b"
	LocalUserDisplayName = "Local User"
	LocalUserEmail       = "local@rtemu.localhost"
)

// PublicIP is a sandbox's publicIp: rtemu's sandboxes have no public
// address (the hosted API's string type is kept, empty).
const PublicIP = ""

// WorkspaceFolder is the folder a workspace's files are in, as the engine
// bind-mounts it into sandboxes (the workspace's nfsPath): "" when rtemu
// has no data dir for workspaces.
func (s *Service) WorkspaceFolder(id string) string {
	if s.ws.dir == "" {
		return ""
	}
	return s.folderOf(id)
}

// DefaultProjectID is the default project's id, which every sandbox not
// put in another project is in. It is made once per data dir and survives
// resets, so it is read from the store once.
func (s *Service) DefaultProjectID(ctx context.Context) (string, error) {
	if id, ok := s.defaultProject.Load().(string); ok {
		return id, nil
	}
	ps, err := s.store.ListProjects(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.IsDefault {
			s.defaultProject.Store(p.ID)
			return p.ID, nil
		}
	}
	return "", fmt.Errorf("the store has no default project")
}
