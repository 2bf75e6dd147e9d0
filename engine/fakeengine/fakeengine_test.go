package fakeengine_test

import (
	"bufio"
	"net"
	"testing"

	"github.com/rtemu-dev/rtemu/engine/enginetest"
	"github.com/rtemu-dev/rtemu/engine/fakeengine"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// The fake passes the contract's conformance suite, as the Docker engine
// does (dockerdriver/contract_test.go).
func TestConformance(t *testing.T) {
	t.Parallel()
	enginetest.Run(t, enginetest.Harness{
		New:   func(*testing.T) sandbox.Engine { return fakeengine.New("enginetest-image") },
		Image: "enginetest-image",
		Serve: func(t *testing.T, e sandbox.Engine, name string, port int) {
			err := e.(*fakeengine.Engine).Serve(name, port, func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}
