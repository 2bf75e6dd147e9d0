package client

import "context"

// Streams is what Exec needs of an engine for the commands of one
// sandbox: how to kill a command and tell whether the sandbox runs
// (Engine), and how to get a stream to its agent and give one back.
type Streams interface {
	Engine
	// Stream gives a stream to the sandbox's agent: a kept one (fresh
	// false: it may have ended since it was kept) or a new one (fresh).
	// An error sends the command the engine's other way.
	Stream(ctx context.Context, name string) (c Conn, fresh bool, err error)
	// Keep keeps c, whose command ended cleanly, for the next command (or
	// closes it).
	Keep(name string, c Conn)
	// Broke says that c, closed by now, broke before its command started.
	// A fresh stream that broke ends the tries (the engine may note why);
	// after a kept one, Exec asks Stream again.
	Broke(name string, c Conn, fresh bool)
}

// Exec runs cmd on an agent in the sandbox name, by the engine's streams.
// handled is false when no agent could run it: the caller then runs it the
// engine's other way (with all its stdin, none of which was read), which
// also gives the engine's own words for a command that cannot start.
func Exec(ctx context.Context, s Streams, name string, cmd Command) (code int, err error, handled bool) {
	for {
		c, fresh, err := s.Stream(ctx, name)
		if err != nil {
			return 0, nil, false
		}
		res, code, err, keep := Run(ctx, s, name, c, cmd)
		switch res {
		case Ran:
			if keep {
				s.Keep(name, c)
			}
			return code, err, true
		case Refused:
			s.Keep(name, c)
			return 0, nil, false
		default: // Broken
			c.Close()
			s.Broke(name, c, fresh)
			if fresh {
				return 0, nil, false
			}
			// A kept stream may have ended with its sandbox's restart:
			// try the next, then a fresh one.
		}
	}
}
