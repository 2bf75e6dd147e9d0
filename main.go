// Command rtemu is a local emulator of the Runtools sandbox API, backed by
// Docker containers and SQLite. Its command line is in package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rtemu-dev/rtemu/cli"
	"github.com/rtemu-dev/rtemu/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv(buildinfo.Get()))
	stop()
	os.Exit(code)
}
