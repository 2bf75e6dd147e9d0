package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// The multiplexer comparison (-mux both): the port relay on the engine's
// streams carries its connections and the overlapping commands of a
// sandbox over one pipe, by rtemu's own multiplexer (agent.Mux) or by
// hashicorp/yamux (agent.YamuxRelay). With -mux both every selected step
// runs -mux-reps times with each, taking turns (own first in odd rounds,
// yamux first in even ones, so a drift of the machine's load hits both),
// on the engine's streams (the link carries no multiplexer), and the rows
// come out tagged "@own" and "@yamux" and side by side.

// muxNames are the values of -mux.
var muxNames = []string{"own", "yamux"}

// muxRounds is the order of the runs of one step: each multiplexer once a
// round, alternating which goes first.
func muxRounds(mux string, reps int) []string {
	if mux != "both" {
		return []string{mux}
	}
	var out []string
	for i := range reps {
		if i%2 == 0 {
			out = append(out, "own", "yamux")
		} else {
			out = append(out, "yamux", "own")
		}
	}
	return out
}

// relayMuxOption is emulatortest's name for a multiplexer ("" is rtemu's
// own).
func relayMuxOption(mux string) string {
	if mux == "yamux" {
		return "yamux"
	}
	return ""
}

// runMuxStep runs one step in the rounds -mux asks for, tagging its rows
// with the multiplexer and the round when there is more than one.
func (b *bench) runMuxStep(ctx context.Context, fn func(context.Context) ([]result, error)) ([]result, error) {
	if b.s.mux != "both" {
		return fn(ctx)
	}
	var all []result
	seen := map[string]int{}
	for _, m := range muxRounds(b.s.mux, b.s.muxReps) {
		b.curMux = m
		seen[m]++
		rows, err := fn(ctx)
		for _, r := range rows {
			r.Metric += "@" + m
			r.Note = strings.TrimSpace(fmt.Sprintf("round %d; %s", seen[m], r.Note))
			all = append(all, r)
		}
		if err != nil {
			return all, err
		}
	}
	b.curMux = ""
	return all, nil
}

// printMuxTable prints, for every metric measured with both multiplexers,
// each one's median over the rounds of its p50 (or of its value, for a
// rate) with the range, and yamux's against own's.
func printMuxTable(w io.Writer, rows []result) {
	type series struct{ p50, value []float64 }
	by := map[string]map[string]*series{}
	var order []string
	for _, r := range rows {
		base, m, ok := strings.Cut(r.Metric, "@")
		if !ok {
			continue
		}
		if by[base] == nil {
			by[base] = map[string]*series{}
			order = append(order, base)
		}
		s := by[base][m]
		if s == nil {
			s = &series{}
			by[base][m] = s
		}
		s.p50 = append(s.p50, r.RtemuP50)
		if r.Value != nil {
			s.value = append(s.value, *r.Value)
		}
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmultiplexer: own vs yamux (median over rounds [min–max]; value rows are rates or counts)\n")
	fmt.Fprintf(w, "%-26s %-6s %-30s %-30s %s\n", "metric", "of", "own", "yamux", "yamux/own")
	for _, base := range order {
		own, ym := by[base]["own"], by[base]["yamux"]
		if own == nil || ym == nil {
			continue
		}
		for _, k := range []string{"p50", "value"} {
			a, b := own.p50, ym.p50
			if k == "value" {
				a, b = own.value, ym.value
			}
			if len(a) == 0 || len(b) == 0 || (k == "p50" && median(a) == 0 && median(b) == 0) {
				continue
			}
			ratio := "-"
			if median(a) != 0 {
				ratio = fmt.Sprintf("%.2f", median(b)/median(a))
			}
			fmt.Fprintf(w, "%-26s %-6s %-30s %-30s %s\n", base, k, spread(a), spread(b), ratio)
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(xs []float64) string {
	return fmt.Sprintf("%.2f [%.2f–%.2f] n=%d", median(xs), slices.Min(xs), slices.Max(xs), len(xs))
}
