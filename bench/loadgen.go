package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The load generator of get_sandbox_rps runs as its own process (this
// program again, `bench loadgen …`), so the figure is the server's and not
// shared with a client in the same process. It keeps one HTTP/1.1
// keep-alive connection per worker and sends one fixed request at a time on
// each, reading every answer whole (as wrk does): the client's own cost is
// small, so more of the CPU is left to the server.

type loadgenOut struct {
	N        int     `json:"n"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	Elapsed  float64 `json:"elapsed_s"`
	P50us    float64 `json:"p50_us"`
	P95us    float64 `json:"p95_us"`
	P99us    float64 `json:"p99_us"`
}

func loadgenMain(args []string) {
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	target := fs.String("url", "", "URL to GET")
	key := fs.String("key", "", "X-API-Key")
	workers := fs.Int("c", 16, "connections")
	dur := fs.Duration("d", 10*time.Second, "duration")
	_ = fs.Parse(args)
	out, err := loadgen(*target, *key, *workers, *dur)
	if err != nil {
		fatal(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func loadgen(target, key string, workers int, dur time.Duration) (loadgenOut, error) {
	u, err := url.Parse(target)
	if err != nil {
		return loadgenOut{}, err
	}
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n\r\n", u.RequestURI(), u.Host, key))
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<16)
			var myErr error
			n := 0
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", u.Host)
				if err != nil {
					myErr, n = err, n+1
					time.Sleep(10 * time.Millisecond)
					continue
				}
				br := bufio.NewReaderSize(c, 16<<10)
				for time.Now().Before(deadline) {
					t := time.Now()
					if _, err = c.Write(req); err != nil {
						break
					}
					var resp *http.Response
					if resp, err = http.ReadResponse(br, nil); err != nil {
						break
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					if err != nil {
						break
					}
					mine = append(mine, time.Since(t))
				}
				c.Close()
				if err != nil {
					myErr, n = err, n+1
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += n
			if first == nil {
				first = myErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	out := loadgenOut{N: len(lat), Errors: errs, Elapsed: time.Since(start).Seconds(),
		P50us: float64(percentile(lat, 50).Microseconds()), P95us: float64(percentile(lat, 95).Microseconds()),
		P99us: float64(percentile(lat, 99).Microseconds())}
	if first != nil {
		out.FirstErr = first.Error()
	}
	return out, nil
}

// runLoadgen runs the load generator as a separate process with GOMAXPROCS
// procs.
func runLoadgen(ctx context.Context, target, key string, workers int, dur time.Duration, procs int) (loadgenOut, error) {
	self, err := os.Executable()
	if err != nil {
		return loadgenOut{}, err
	}
	cmd := exec.CommandContext(ctx, self, "loadgen", "-url", target, "-key", key, "-c", fmt.Sprint(workers), "-d", dur.String())
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", procs))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return loadgenOut{}, fmt.Errorf("load generator: %v: %s", err, stderr.String())
	}
	var out loadgenOut
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("load generator: %w: %s", err, raw)
	}
	return out, nil
}
