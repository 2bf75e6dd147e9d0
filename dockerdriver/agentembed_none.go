//go:build !rtemu_agents

package dockerdriver

// Release builds embed linux/amd64 and linux/arm64 agents: run
//
//	go generate ./dockerdriver && go build -tags rtemu_agents .
//
// Without the tag (go run ., go install) there are none, and an agent that
// rtemu's own executable cannot be is built with the local Go toolchain.
//
//go:generate sh -c "for a in amd64 arm64; do CGO_ENABLED=0 GOOS=linux GOARCH=$a go build -trimpath -ldflags='-s -w' -o agents/rtemu-agent-linux-$a ../agent/cmd/rtemu-agent || exit 1; done"

func embeddedAgent(string) []byte { return nil }
