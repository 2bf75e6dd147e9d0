package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rtemu-dev/rtemu/engine"
)

// seen is what the watch last knew of one pod, to tell what changed.
type seen struct {
	running, paused, died bool
}

func seenOf(p *corev1.Pod) seen {
	st := stateOf(p)
	return seen{running: st.Status == engine.Running || st.Status == engine.Paused, paused: st.Status == engine.Paused, died: st.Status == engine.Exited}
}

// Watch follows the engine's pods with the labels given and reports what
// happens to them in the contract's terms: a container that runs is
// started, a stop of its processes paused (and unpaused), a terminated
// container died with its exit code (after oom when the kernel killed it
// for memory), a deleted pod died (if it had not) and removed. Pods that
// exist when the watch starts report only what happens to them next.
//
// A watch the API server closes is resumed where it was; the stream ends
// (the error, then the closed channel) with ctx, or when the API server
// cannot resume it (410 Gone, unreachable): the caller then reconciles.
func (e *Engine) Watch(ctx context.Context, want map[string]string) (<-chan engine.Event, <-chan error) {
	evs := make(chan engine.Event, 64)
	errs := make(chan error, 1)
	go func() {
		defer close(evs)
		errs <- e.watch(ctx, want, evs)
	}()
	return evs, errs
}

func (e *Engine) watch(ctx context.Context, want map[string]string, evs chan<- engine.Event) error {
	sel := selector(want)
	list, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return ended(ctx, wrap(err, "watch pods"))
	}
	known := map[string]seen{}
	for i := range list.Items {
		if matches(&list.Items[i], want) {
			known[list.Items[i].Name] = seenOf(&list.Items[i])
		}
	}
	rv := list.ResourceVersion
	send := func(ev engine.Event) bool {
		select {
		case evs <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		w, err := e.cs.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			return ended(ctx, wrap(err, "watch pods"))
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				w.Stop()
				return ended(ctx, fmt.Errorf("watch pods: %w", apierrors.FromObject(ev.Object)))
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if ev.Type == watch.Bookmark || !matches(p, want) {
				continue
			}
			for _, out := range changes(known, ev.Type, p) {
				if !send(out) {
					w.Stop()
					return ended(ctx, nil)
				}
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return ended(ctx, nil)
		}
	}
}

// ended is the error a watch ends with: its context's once that ended.
func ended(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("watch pods: %w", ctx.Err())
	}
	return err
}

// changes turns one watch event of a pod into the contract's events, and
// updates what is known of it.
func changes(known map[string]seen, typ watch.EventType, p *corev1.Pod) []engine.Event {
	was := known[p.Name]
	ev := func(k engine.EventKind, code int) engine.Event {
		return engine.Event{Kind: k, Name: nameOf(p), Labels: labelsOf(p), ExitCode: code}
	}
	var out []engine.Event
	if typ == watch.Deleted {
		delete(known, p.Name)
		if was.running && !was.died {
			out = append(out, oomAndDied(p, ev)...)
		}
		return append(out, ev(engine.EventRemoved, 0))
	}
	now := seenOf(p)
	switch {
	case now.died && !was.died:
		out = append(out, oomAndDied(p, ev)...)
	case now.running && !was.running:
		out = append(out, ev(engine.EventStarted, 0))
		if now.paused {
			out = append(out, ev(engine.EventPaused, 0))
		}
	case now.running && now.paused && !was.paused:
		out = append(out, ev(engine.EventPaused, 0))
	case now.running && !now.paused && was.paused:
		out = append(out, ev(engine.EventUnpaused, 0))
	}
	known[p.Name] = now
	return out
}

// oomAndDied are the events of a pod's end: oom first when the kernel
// killed its process for memory, then died with the exit code (137, a
// kill, when the pod went without saying).
func oomAndDied(p *corev1.Pod, ev func(engine.EventKind, int) engine.Event) []engine.Event {
	code := 137
	var out []engine.Event
	if cs := containerStatus(p); cs != nil && cs.State.Terminated != nil {
		code = int(cs.State.Terminated.ExitCode)
		if cs.State.Terminated.Reason == "OOMKilled" {
			out = append(out, ev(engine.EventOOM, 0))
		}
	}
	return append(out, ev(engine.EventDied, code))
}
