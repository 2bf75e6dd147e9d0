// Command rtemu-agent is rtemu's exec agent on its own, a small static
// program: what rtemu puts into sandboxes, on every engine. It is built for
// linux/amd64 and linux/arm64 by `go generate ./agent/dist` for release
// builds, or by rtemu itself with the local Go toolchain (see agent/dist).
package main

import (
	"fmt"
	"os"

	"github.com/rtemu-dev/rtemu/agent"
)

func main() {
	// The agent package's init has already served when RTEMU_AGENT_SERVE
	// was set; Main reports that it was not.
	code, ok := agent.Main()
	if !ok {
		fmt.Fprintf(os.Stderr, "rtemu-agent is started by rtemu inside a sandbox, with %s=%s or %s\n", agent.EnvServe, agent.ServeCommands, agent.ServePortsMode)
		code = 2
	}
	os.Exit(code)
}
