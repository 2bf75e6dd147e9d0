//go:build !linux

package agent

import (
	"fmt"
	"io"
	"os"
)

// The agent runs only inside a Linux container: rtemu built for macOS or
// Windows never serves as one (the driver puts a Linux agent into the
// sandbox instead; see agent/dist). These say so and fail.

// Serve refuses to run outside Linux.
func Serve(io.Reader, io.Writer) int { return refuse() }

// ServePorts refuses to run outside Linux.
func ServePorts(io.Reader, io.Writer) int { return refuse() }

// ServeLink refuses to run outside Linux.
func ServeLink(io.Reader, io.Writer) int { return refuse() }

// ServeLinkFromStart refuses to run outside Linux.
func ServeLinkFromStart(string) int { return refuse() }

func refuse() int {
	fmt.Fprintln(os.Stderr, "rtemu agent: the exec agent runs only inside a Linux container")
	return 2
}
