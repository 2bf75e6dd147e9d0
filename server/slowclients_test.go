package server_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// loadTest skips a test that loads the machine so much (thousands of
// trickling connections) that tests running beside it miss their
// deadlines (seen: sandboxes of other rtemus stuck creating for 30 s). CI
// runs these on their own after the suite, with RTEMU_TEST_LOAD=1.
func loadTest(t *testing.T) {
	t.Helper()
	if os.Getenv("RTEMU_TEST_LOAD") != "1" {
		t.Skip("a load test: run on its own with RTEMU_TEST_LOAD=1 (CI does, after the suite)")
	}
}

// slowClients opens bodies connections that send a whole request head and
// then trickle a body, and heads connections that trickle their head, each
// a byte every two seconds, as slow or hostile clients would. They are
// closed at the test's end.
func slowClients(t *testing.T, addr string, bodies, heads int) {
	t.Helper()
	var mu sync.Mutex
	conns := make([]net.Conn, 0, bodies+heads)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < bodies+heads; i += 20 {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				if i < bodies {
					fmt.Fprintf(c, "POST /v1/sandboxes HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr, emulatortest.APIKey)
				} else {
					fmt.Fprintf(c, "GET /v1/sandboxes HTTP/1.1\r\nHost: %s\r\n", addr)
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("opening the slow connections: %v", err)
	default:
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			mu.Lock()
			for _, c := range conns {
				_, _ = c.Write([]byte(" "))
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
}

// slowestGET is the longest of n GETs of the sandbox list, each on a new
// connection; a failed GET fails the test.
func slowestGET(t *testing.T, url string, n int) time.Duration {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var worst time.Duration
	for range n {
		req, _ := http.NewRequest("GET", url+"/v1/sandboxes", nil)
		req.Header.Set("X-API-Key", emulatortest.APIKey)
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("GET with slow clients connected: %v (after %v)", err, took)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		worst = max(worst, took)
	}
	return worst
}

// TestSlowClientsDoNotStarveTheAPI: thousands of trickling connections,
// well under the file limit, do not slow a GET.
func TestSlowClientsDoNotStarveTheAPI(t *testing.T) {
	loadTest(t)
	emulatortest.SkipIfNoDocker(t)
	srv := emulatortest.New(t)
	const bodies, heads = 3000, 1000
	slowClients(t, srv.URL[len("http://"):], bodies, heads)
	worst := slowestGET(t, srv.URL, 10)
	t.Logf("%d trickling bodies and %d trickling heads open: slowest of 10 GETs %v", bodies, heads, worst)
	if worst > time.Second {
		t.Errorf("a GET took %v with slow clients connected", worst)
	}
}

// TestSlowClientsPastTheFileLimit runs rtemu with a file limit of 1024 and
// opens twice as many trickling connections: rtemu closes the oldest slow
// ones for new clients instead of running out of descriptors, so a GET
// still answers in under a second, and rtemu still reaches its database.
func TestSlowClientsPastTheFileLimit(t *testing.T) {
	loadTest(t)
	emulatortest.SkipIfNoDocker(t)
	p := startRtemuVia(t, t.TempDir(), "sh", "-c", `ulimit -n 1024 && exec "$@"`, "sh")
	slowClients(t, p.url[len("http://"):], 1500, 500)
	worst := slowestGET(t, p.url, 10)
	t.Logf("2000 trickling connections on a file limit of 1024: slowest of 10 GETs %v", worst)
	if worst > time.Second {
		t.Errorf("a GET took %v", worst)
	}
	if code, _ := p.do("POST", "/v1/sandboxes", map[string]any{"template": "base-ubuntu"}); code != http.StatusCreated {
		t.Errorf("create with slow clients connected: %d", code)
	}
	p.kill() // the log is written until then
	if strings.Contains(p.log.String(), "too many open files") {
		t.Errorf("rtemu ran out of file descriptors:\n%s", p.log)
	}
}
