package emulator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Servers the dev-URL tests run inside a sandbox: busybox nc runs one of
// these scripts per connection (nc -ll -e), with the socket as stdin and
// stdout. Each reads the request head first.
const sandboxServers = `mkdir -p /srv /www && cd /srv &&
cat > readhead <<'EOF'
# reads the request head into $head, its Upgrade header into $upgrade
head=""; upgrade=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  head="$head$line
"
  case "$line" in [Uu]pgrade:*) upgrade=${line#*: };; esac
done
EOF
cat > head.sh <<'EOF'
#!/bin/sh
. /srv/readhead
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s' "${#head}" "$head"
EOF
cat > sse.sh <<'EOF'
#!/bin/sh
. /srv/readhead
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n'
printf 'data: one\n\n'
sleep "${SSE_GAP:-2}"
printf 'data: two\n\n'
EOF
cat > ws.sh <<'EOF'
#!/bin/sh
. /srv/readhead
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n' "$upgrade"
exec cat
EOF
cat > keepalive.sh <<'EOF'
#!/bin/sh
# Answers every request on its connection with the connection's pid.
while :; do
  head=""
  . /srv/readhead
  [ -z "$head" ] && exit 0
  body="connection $$"
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
done
EOF
chmod +x *.sh
echo 'hello from the sandbox' > /www/index.html`

// startServers writes the scripts and starts: busybox httpd on 3000 (a
// daemon: it forks into the background) and on 127.0.0.1:3001 (loopback
// only, as Vite and Next.js listen by default), the request-head echo on 4000,
// server-sent events on 4001 (sseGap seconds between the two events), a
// WebSocket-style echo on 4002 and a keep-alive server on 4003 that names
// the connection.
func (c *client) startServers(id string, sseGap int) {
	c.t.Helper()
	c.sh(id, sandboxServers)
	c.sh(id, `httpd -p 3000 -h /www && httpd -p 127.0.0.1:3001 -h /www`)
	c.sh(id, `cd /srv && nc -ll -p 4000 -e /srv/head.sh </dev/null >/dev/null 2>&1 &
SSE_GAP=`+strconv.Itoa(sseGap)+` nc -ll -p 4001 -e /srv/sse.sh </dev/null >/dev/null 2>&1 &
nc -ll -p 4002 -e /srv/ws.sh </dev/null >/dev/null 2>&1 &
nc -ll -p 4003 -e /srv/keepalive.sh </dev/null >/dev/null 2>&1 &`)
}

// devURL asks for a sandbox port's URL.
func (c *client) devURL(id string, port int) map[string]any {
	c.t.Helper()
	return c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/url?port="+strconv.Itoa(port), nil).Data()
}

// get fetches a URL with Go's net/http and returns status and body.
func get(t *testing.T, url string, host string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Event string
	Data  string
	At    time.Duration // since the request was sent
}

// readEvents reads server-sent events until the stream ends, sending each
// on the channel as it arrives.
func readEvents(body io.Reader, start time.Time, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Event != "" || ev.Data != "" {
				ev.At = time.Since(start)
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event:"):
			ev.Event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			if ev.Data != "" {
				ev.Data += "\n"
			}
			ev.Data += strings.TrimPrefix(line[len("data:"):], " ")
		}
	}
}

// streamExec starts a streaming exec and returns its events as they come.
// cancel disconnects the client.
func (c *client) streamExec(id string, body map[string]any) (*http.Response, <-chan sseEvent, context.CancelFunc) {
	c.t.Helper()
	js, _ := json.Marshal(body)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", c.srv.URL+"/v1/sandboxes/"+id+"/exec", strings.NewReader(string(js)))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-API-Key", c.key)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	events := make(chan sseEvent, 64)
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		go readEvents(resp.Body, start, events)
	} else {
		close(events)
	}
	c.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, events, cancel
}

// next waits for the next event, failing the test after a deadline.
func next(t *testing.T, events <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return sseEvent{}
}

// activity returns a sandbox's events, newest first.
func (c *client) activity(id string) []map[string]any {
	c.t.Helper()
	d := c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id+"/activity", nil).Data()
	raw, _ := d["events"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		out = append(out, x.(map[string]any))
	}
	return out
}

func eventTypes(evs []map[string]any) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e["eventType"].(string))
	}
	return out
}

// status reads a sandbox's status.
func (c *client) status(id string) string {
	c.t.Helper()
	return c.must(http.StatusOK, "GET", "/v1/sandboxes/"+id, nil).Data()["status"].(string)
}
