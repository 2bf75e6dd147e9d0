package fake_test

import (
	"bufio"
	"net"
	"testing"

	"github.com/rtemu-dev/rtemu/engine"
	"github.com/rtemu-dev/rtemu/engine/enginetest"
	"github.com/rtemu-dev/rtemu/engine/fake"
)

// The fake passes the contract's conformance suite, as the Docker engine
// does (engine/docker/contract_test.go).
func TestConformance(t *testing.T) {
	t.Parallel()
	enginetest.Run(t, enginetest.Harness{
		New:   func(*testing.T) engine.Engine { return fake.New("enginetest-image") },
		Image: "enginetest-image",
		Serve: func(t *testing.T, e engine.Engine, name string, port int) {
			err := e.(*fake.Engine).Serve(name, port, func(c net.Conn) {
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
