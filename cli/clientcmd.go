package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/client"
	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/server"
)

// defaultAPIURL is rtemu's own default address.
const defaultAPIURL = "http://127.0.0.1:7070"

// clientFlags are the flags every client command has.
type clientFlags struct {
	env    Env
	apiURL string
	apiKey string
	json   bool
}

func addClientFlags(c *cobra.Command, env Env) *clientFlags {
	f := &clientFlags{env: env}
	pf := c.PersistentFlags()
	pf.StringVar(&f.apiURL, "api-url", "", "the API's origin (env RUNTOOLS_API_URL; default: the rtemu serving this machine's data dir, else "+defaultAPIURL+")")
	pf.StringVar(&f.apiKey, "api-key", "", "the API key (env RUNTOOLS_API_KEY; default: a test key any rtemu accepts)")
	pf.BoolVar(&f.json, "json", false, "print the API's JSON instead of text")
	return f
}

// client is the API client the flags and the environment name.
func (f *clientFlags) client(ctx context.Context) *client.Client {
	base := f.apiURL
	if base == "" {
		base = f.env.Getenv("RUNTOOLS_API_URL")
	}
	if base == "" {
		base = defaultAPIURL
		// The rtemu serving the data dir, wherever it listens.
		if cfg, err := config.Parse(nil, f.env.Getenv, io.Discard); err == nil && cfg.DataDir != "" {
			if r, err := server.FindRunning(ctx, cfg.DataDir); err == nil {
				base = r.URL
			}
		}
	}
	key := f.apiKey
	if key == "" {
		key = f.env.Getenv("RUNTOOLS_API_KEY")
	}
	if key == "" {
		key = localKey
	}
	return client.New(base, key, nil)
}

// printJSON prints one JSON value, indented.
func (f *clientFlags) printJSON(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.env.Stdout, "%s\n", b)
	return err
}

// printJSONList prints values as one JSON array.
func (f *clientFlags) printJSONList(raws []json.RawMessage) error {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	b, err := json.Marshal(raws)
	if err != nil {
		return err
	}
	return f.printJSON(b)
}

// table prints rows under a header, in aligned columns.
func (f *clientFlags) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(f.env.Stdout, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, strings.ReplaceAll(header, " ", "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// progress shows a sandbox's status while it passes through a state: a
// spinner line on a terminal, a line a change otherwise (on stderr).
type progress struct {
	env    Env
	start  time.Time
	last   string
	frame  int
	active bool
}

func newProgress(env Env) *progress { return &progress{env: env, start: time.Now()} }

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *progress) seen(sb *client.Sandbox) {
	// rtemu says how far the image of a creating sandbox is.
	state := sb.Status
	if sb.Progress != "" {
		state += ": " + sb.Progress
	}
	if p.env.Terminal {
		p.frame++
		fmt.Fprintf(p.env.Stderr, "\r\033[K%s %s %s (%.0fs)", spinner[p.frame%len(spinner)], sb.ID, state, time.Since(p.start).Seconds())
		p.active = true
		return
	}
	if state != p.last {
		fmt.Fprintf(p.env.Stderr, "%s: %s\n", sb.ID, state)
	}
	p.last = state
}

// done ends the spinner's line.
func (p *progress) done() {
	if p.active {
		fmt.Fprint(p.env.Stderr, "\r\033[K")
	}
}

// pollEvery is how often a status is polled while waiting.
const pollEvery = 250 * time.Millisecond

// wait follows a sandbox while its status is one of passing, showing
// progress, and returns its first other state.
func (f *clientFlags) wait(ctx context.Context, c *client.Client, id string, passing ...string) (*client.Sandbox, error) {
	p := newProgress(f.env)
	defer p.done()
	return c.WaitSandbox(ctx, id, pollEvery, p.seen, passing...)
}

// parsePairs reads KEY=VALUE flags.
func parsePairs(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--%s %q: want KEY=VALUE", flag, p)}
		}
		out[k] = v
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type jsonRaw = json.RawMessage
