package sandbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// progressEvery is how often at most a creating sandbox's progress text is
// written to its record.
const progressEvery = 500 * time.Millisecond

// imageWork tells every create waiting on one image's pull or build (they
// share it) how far the work is, each in its own record.
type imageWork struct {
	mu   sync.Mutex
	subs map[string]map[*progressWriter]struct{} // by image
}

// progressWriter writes one creating sandbox's progress text, at most once
// every progressEvery; a text that comes sooner is written when the time
// is up, unless a newer one replaced it.
type progressWriter struct {
	s       *Service
	ctx     context.Context
	id      string
	mu      sync.Mutex
	last    time.Time
	pending string
	timer   *time.Timer
	stopped bool
}

// followImage makes id's record show the progress of the work on image until
// the returned func is called.
func (s *Service) followImage(ctx context.Context, image, id string) (stop func()) {
	w := &progressWriter{s: s, ctx: ctx, id: id}
	iw := &s.imageWork
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.subs == nil {
		iw.subs = map[string]map[*progressWriter]struct{}{}
	}
	if iw.subs[image] == nil {
		iw.subs[image] = map[*progressWriter]struct{}{}
	}
	iw.subs[image][w] = struct{}{}
	return func() {
		iw.mu.Lock()
		delete(iw.subs[image], w)
		if len(iw.subs[image]) == 0 {
			delete(iw.subs, image)
		}
		iw.mu.Unlock()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.stopped = true
		if w.timer != nil {
			w.timer.Stop()
		}
	}
}

// imageProgress tells the creates waiting on image how far its work is.
func (s *Service) imageProgress(image, text string) {
	s.imageWork.mu.Lock()
	ws := make([]*progressWriter, 0, len(s.imageWork.subs[image]))
	for w := range s.imageWork.subs[image] {
		ws = append(ws, w)
	}
	s.imageWork.mu.Unlock()
	for _, w := range ws {
		w.write(text)
	}
}

// errNotCreating: the sandbox left creating; its progress is not written.
var errNotCreating = errors.New("sandbox is no longer creating")

func (w *progressWriter) write(text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if wait := progressEvery - time.Since(w.last); wait > 0 {
		w.pending = text
		if w.timer == nil {
			w.timer = time.AfterFunc(wait, w.flush)
		}
		return
	}
	w.store(text)
}

// flush writes the text that came too soon after the last.
func (w *progressWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.stopped && w.pending != "" {
		w.store(w.pending)
	}
}

// store writes text to the record, while the sandbox is creating; w.mu held.
func (w *progressWriter) store(text string) {
	w.last, w.pending = time.Now(), ""
	_, err := w.s.update(w.ctx, w.id, func(sb *Sandbox) error {
		// Only while creating: a transition clears it, and a write racing
		// one must not bring it back.
		if sb.Status != StatusCreating {
			return errNotCreating
		}
		sb.Progress = text
		return nil
	})
	if err != nil && !errors.Is(err, errNotCreating) && w.ctx.Err() == nil {
		w.s.log.Debug("write a sandbox's progress", "sandbox", w.id, "err", err)
	}
}

// pullProgress sums up an engine's pull lines ("LAYER: STATUS", as
// Docker's) as "pulling IMAGE: N of M layers".
type pullProgress struct {
	image  string
	layers map[string]bool // done
}

func (p *pullProgress) line(l string) string {
	if p.layers == nil {
		p.layers = map[string]bool{}
	}
	if id, status, ok := strings.Cut(l, ": "); ok && !strings.ContainsAny(id, " :") && !strings.HasPrefix(status, "Pulling from") {
		p.layers[id] = p.layers[id] || status == "Pull complete" || status == "Already exists"
	}
	if len(p.layers) == 0 {
		return "pulling " + p.image
	}
	done := 0
	for _, d := range p.layers {
		if d {
			done++
		}
	}
	return fmt.Sprintf("pulling %s: %d of %d layers", p.image, done, len(p.layers))
}

var buildStep = regexp.MustCompile(`^Step (\d+/\d+) :`)

// buildProgress sums up a template build's lines as "building NAME: step
// N/M" (the recipe being built: a template's parent is built first).
type buildProgress struct{ name string }

func (b *buildProgress) line(l string) (string, bool) {
	if rest, ok := strings.CutPrefix(l, "building "); ok {
		b.name, _, _ = strings.Cut(rest, " ")
		return "building " + b.name, true
	}
	if m := buildStep.FindStringSubmatch(l); m != nil {
		return fmt.Sprintf("building %s: step %s", b.name, m[1]), true
	}
	return "", false
}
