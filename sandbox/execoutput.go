package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultExecOutputMemory is how many bytes of exec output all the commands
// being answered keep in memory together. A command's output beyond what is
// left goes to a spill file (Config.ExecOutputMemory), so a few commands
// printing floods cannot grow rtemu without bound: each answer still holds
// up to MaxExecOutput bytes of each stream, as documented.
const DefaultExecOutputMemory = 32 << 20

// outputChunk is the unit output memory is taken in.
const outputChunk = 32 << 10

// outputBudget is the memory the Outputs of running and answering commands
// share, and where they spill beyond it.
type outputBudget struct {
	mu     sync.Mutex
	left   int
	limit  int
	spills int64
	dir    string // spill files; "" is the system's temporary folder
}

func newOutputBudget(bytes int, dir string) *outputBudget {
	if bytes <= 0 {
		bytes = DefaultExecOutputMemory
	}
	return &outputBudget{left: bytes, limit: bytes, dir: dir}
}

// ExecOutputUse is what buffered exec output holds now.
type ExecOutputUse struct {
	InMemory, Limit int   // bytes
	Spills          int64 // outputs that went to a file, since start
}

// ExecOutputUse says how much of the exec output memory is in use.
func (s *Service) ExecOutputUse() ExecOutputUse {
	b := s.output
	b.mu.Lock()
	defer b.mu.Unlock()
	return ExecOutputUse{InMemory: b.limit - b.left, Limit: b.limit, Spills: b.spills}
}

// clearSpills removes spill files an earlier run left (it was killed
// mid-answer).
func (b *outputBudget) clearSpills() error {
	if b.dir == "" {
		return nil
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return err
	}
	return os.MkdirAll(b.dir, 0o700)
}

func (b *outputBudget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left < n {
		return false
	}
	b.left -= n
	return true
}

func (b *outputBudget) give(n int) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

var chunkPool = sync.Pool{New: func() any { return new([outputChunk]byte) }}

// Output is one stream of a finished command: its first max bytes, in
// memory while the budget lasts and in a spill file after. Close gives
// its memory back and removes the file.
type Output struct {
	budget *outputBudget
	max    int

	mu        sync.Mutex
	chunks    []*[outputChunk]byte // in memory; the last one partly filled
	size      int                  // bytes kept (in chunks or in file)
	file      *os.File
	spillErr  error
	truncated bool
	closed    bool
}

func newOutput(b *outputBudget, max int) *Output { return &Output{budget: b, max: max} }

// Write keeps what fits under the cap and claims every byte: a short write
// would stop the copy that drains the command.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(p)
	if room := o.max - o.size; room < len(p) {
		o.truncated = true
		p = p[:max(room, 0)]
	}
	if o.closed || o.spillErr != nil {
		return n, nil
	}
	for len(p) > 0 && o.file == nil {
		if free := len(o.chunks)*outputChunk - o.size; free > 0 {
			k := copy(o.chunks[len(o.chunks)-1][outputChunk-free:], p)
			o.size, p = o.size+k, p[k:]
			continue
		}
		if !o.budget.take(outputChunk) {
			if !o.spill() {
				return n, nil
			}
			break
		}
		o.chunks = append(o.chunks, chunkPool.Get().(*[outputChunk]byte))
	}
	if len(p) > 0 {
		k, err := o.file.Write(p)
		o.size += k
		if err != nil {
			// What the file holds is kept; the rest is lost, and said so.
			o.spillErr = err
		}
	}
	return n, nil
}

// spill moves what is in memory to a file and gives the memory back. When
// no file can be written, what is in memory is kept and the rest dropped.
func (o *Output) spill() bool {
	f, err := os.CreateTemp(o.budget.dir, "exec-output-*")
	if err == nil {
		err = o.eachPiece(func(b []byte) error { _, err := f.Write(b); return err })
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}
	if err != nil {
		o.spillErr = fmt.Errorf("exec output spill file: %w", err)
		return false
	}
	o.file = f
	o.freeChunks()
	o.budget.mu.Lock()
	o.budget.spills++
	o.budget.mu.Unlock()
	return true
}

func (o *Output) freeChunks() {
	for _, c := range o.chunks {
		chunkPool.Put(c)
	}
	o.budget.give(len(o.chunks) * outputChunk)
	o.chunks = nil
}

// eachPiece calls fn on what is kept, in order, in pieces of at most
// outputChunk bytes. Called with o.mu held.
func (o *Output) eachPiece(fn func([]byte) error) error {
	if o.file != nil {
		var buf [outputChunk]byte
		r := io.NewSectionReader(o.file, 0, int64(o.size))
		for {
			n, err := r.Read(buf[:])
			if n > 0 {
				if err := fn(buf[:n]); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for i, c := range o.chunks {
		end := outputChunk
		if i == len(o.chunks)-1 {
			end = o.size - i*outputChunk
		}
		if err := fn(c[:end]); err != nil {
			return err
		}
	}
	return nil
}

// Truncated says whether the command wrote more than was kept.
func (o *Output) Truncated() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.truncated || o.spillErr != nil
}

// Len is the number of bytes kept.
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size
}

// Spilled says whether the output went to a file.
func (o *Output) Spilled() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.file != nil
}

// String is the output kept, whole, in memory (for small outputs and
// tests; answers write it with WriteJSON).
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var sb strings.Builder
	sb.Grow(o.size)
	_ = o.eachPiece(func(b []byte) error { sb.Write(b); return nil })
	return sb.String()
}

// WriteJSON writes the output as a JSON string, exactly as encoding/json
// writes the same bytes as a Go string (invalid UTF-8 becomes U+FFFD), a
// piece at a time, never all of it in memory at once.
func (o *Output) WriteJSON(w io.Writer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := io.WriteString(w, `"`); err != nil {
		return err
	}
	var carry []byte // the start of a rune the next piece completes
	piece := make([]byte, 0, outputChunk+utf8.UTFMax)
	emit := func(b []byte) error {
		enc, err := json.Marshal(string(b))
		if err != nil {
			return err
		}
		_, err = w.Write(enc[1 : len(enc)-1])
		return err
	}
	err := o.eachPiece(func(b []byte) error {
		piece = append(append(piece[:0], carry...), b...)
		cut := len(piece)
		// Back up over an incomplete rune at the end (at most 3 bytes).
		for i := len(piece) - 1; i >= 0 && i >= len(piece)-utf8.UTFMax+1; i-- {
			if utf8.RuneStart(piece[i]) {
				if !utf8.FullRune(piece[i:]) {
					cut = i
				}
				break
			}
		}
		carry = append(carry[:0], piece[cut:]...)
		return emit(piece[:cut])
	})
	if err == nil && len(carry) > 0 {
		err = emit(carry)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, `"`)
	return err
}

// Close gives the output's memory back and removes its spill file.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	o.freeChunks()
	if o.file != nil {
		name := o.file.Name()
		_ = o.file.Close()
		return os.Remove(name)
	}
	return nil
}

// spillDir is where a service's spill files go.
func spillDir(dataDir string) string {
	if dataDir == "" {
		return ""
	}
	return filepath.Join(dataDir, "tmp", "exec-output")
}

// outputTo is where a command's stream goes: its Output, or, for a
// streaming exec, only on to the client as it comes (nothing is kept).
func outputTo(buf *Output, stream io.Writer) io.Writer {
	if stream == nil {
		return buf
	}
	return neverFails{stream}
}

// neverFails hides a client's write errors (a client gone): they must not
// stop the copy that drains the command's output, or the command would
// block on a full pipe instead of being ended by the cancelled context.
type neverFails struct{ w io.Writer }

func (w neverFails) Write(p []byte) (int, error) {
	_, _ = w.w.Write(p)
	return len(p), nil
}
