//go:build !rtemu_agents

package dist

import "io/fs"

// Release builds embed linux/amd64 and linux/arm64 agents: run
//
//	go generate ./agent/dist && go build -tags rtemu_agents .
//
// Without the tag (go run ., go install) there are none, and an agent that
// rtemu's own executable cannot be is built with the local Go toolchain.
//
//go:generate env CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath "-ldflags=-s -w" -o agents/rtemu-agent-linux-amd64 ../cmd/rtemu-agent
//go:generate env CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath "-ldflags=-s -w" -o agents/rtemu-agent-linux-arm64 ../cmd/rtemu-agent

func embedded(string) fs.FS { return nil }
