package sshgw_test

import (
	"testing"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// ssh -L (x/crypto and OpenSSH) works where rtemu has no route to any
// container address: Docker Desktop's situation, a VM's or a remote
// engine's (see emulatortest.RunWithoutRoute).
func TestWithoutRouteToContainers(t *testing.T) {
	emulatortest.RunWithoutRoute(t, "^TestLocalForward$")
}
