//go:build linux

package client_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/rtemu-dev/rtemu/agent/client"
)

// streams hands out the streams it was given, kept ones first, then fresh
// ones, and notes what Exec did with them.
type streams struct {
	engine
	kept, fresh []client.Conn
	kept2       []client.Conn // given back by Keep
	broke       []bool        // fresh, per broken stream
}

func (s *streams) Stream(context.Context, string) (client.Conn, bool, error) {
	if len(s.kept) > 0 {
		c := s.kept[0]
		s.kept = s.kept[1:]
		return c, false, nil
	}
	if len(s.fresh) > 0 {
		c := s.fresh[0]
		s.fresh = s.fresh[1:]
		return c, true, nil
	}
	return nil, false, errors.New("no agent")
}

func (s *streams) Keep(_ string, c client.Conn)              { s.kept2 = append(s.kept2, c) }
func (s *streams) Broke(_ string, _ client.Conn, fresh bool) { s.broke = append(s.broke, fresh) }

// The exec loop: a command on a kept stream, past broken kept ones to a
// fresh one, a fresh one that breaks, a refused command, no stream at all.
func TestExec(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		kept, fresh int // sound streams of each kind
		brokenKept  int // broken kept streams handed out before them
		brokenFresh bool
		argv        []string
		handled     bool
		code        int
		keeps       int
		broke       []bool
		stdout      string
	}{
		{name: "kept", kept: 1, argv: []string{"echo", "hi"}, handled: true, keeps: 1, stdout: "hi\n"},
		{name: "exit code", fresh: 1, argv: []string{"/bin/sh", "-c", "exit 4"}, handled: true, code: 4, keeps: 1},
		{name: "broken kept then fresh", brokenKept: 2, fresh: 1, argv: []string{"true"}, handled: true, keeps: 1,
			broke: []bool{false, false}},
		{name: "broken fresh", brokenFresh: true, fresh: 1, argv: []string{"true"}, broke: []bool{true}},
		{name: "refused", kept: 1, argv: []string{"/nonexistent/rtemu-no-such-command"}, keeps: 1},
		{name: "no stream", argv: []string{"true"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &streams{engine: engine{running: true}}
			for range tc.brokenKept {
				c := newAgent(t)
				c.Close()
				s.kept = append(s.kept, c)
			}
			for range tc.kept {
				s.kept = append(s.kept, newAgent(t))
			}
			if tc.brokenFresh {
				c := newAgent(t)
				c.Close()
				s.fresh = append(s.fresh, c)
			}
			for range tc.fresh {
				s.fresh = append(s.fresh, newAgent(t))
			}
			var out bytes.Buffer
			code, err, handled := client.Exec(context.Background(), s, "sandbox", client.Command{Argv: tc.argv, Stdout: &out})
			if handled != tc.handled || code != tc.code || err != nil || out.String() != tc.stdout {
				t.Fatalf("Exec = %d, %v, handled %v, out %q; want %d, handled %v, out %q", code, err, handled, out.String(), tc.code, tc.handled, tc.stdout)
			}
			if len(s.kept2) != tc.keeps || !slices.Equal(s.broke, tc.broke) {
				t.Fatalf("kept %d, broke %v; want %d, %v", len(s.kept2), s.broke, tc.keeps, tc.broke)
			}
		})
	}
}
