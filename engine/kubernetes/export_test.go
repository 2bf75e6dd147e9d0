package kubernetes

import "context"

// RunScript runs a shell script in the sandbox's pod even while it is
// paused (as Pause and Stats do), returning its standard output.
func (e *Engine) RunScript(ctx context.Context, name, script string) (string, error) {
	return e.run(ctx, podName(name), script)
}
