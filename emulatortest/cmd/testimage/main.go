// Command testimage makes the small offline sandbox image the tests use
// (the host's static busybox, imported into the engine) and prints its
// name: for scripts that need a sandbox image without a registry, such as
// release/check.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := emulatortest.TestImage(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
	fmt.Println(img)
}
