// Command rtemu is a local emulator of the Runtools sandbox API, backed by
// Docker containers and SQLite. Its command line is in package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rtemu-dev/rtemu/cli"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv(version))
	stop()
	os.Exit(code)
}
