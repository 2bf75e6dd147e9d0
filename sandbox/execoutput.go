package sandbox

import "io"

// alsoTo sends a command's output to its buffer and, when extra is set, on
// to extra as it comes (streaming exec).
func alsoTo(buf *cappedBuffer, extra io.Writer) io.Writer {
	if extra == nil {
		return buf
	}
	return teeWriter{buf: buf, extra: extra}
}

// teeWriter never fails: an error from extra (a client gone) must not stop
// the copy that drains the command's output, or the command would block on
// a full pipe instead of being ended by the cancelled context.
type teeWriter struct {
	buf   *cappedBuffer
	extra io.Writer
}

func (w teeWriter) Write(p []byte) (int, error) {
	_, _ = w.buf.Write(p)
	_, _ = w.extra.Write(p)
	return len(p), nil
}
