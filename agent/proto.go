package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frame types. A frame is a type byte, a big-endian uint32 payload length,
// and the payload. One agent runs one command at a time, so frames carry no
// command id.
const (
	// host → agent
	FrameStart      = 'S' // payload: JSON Start
	FrameStdin      = 'I' // payload: bytes for the command's stdin
	FrameStdinClose = 'C' // the command's stdin reaches EOF
	FrameKill       = 'K' // kill the command and everything it started
	FrameLink       = 'L' // to the link hub: payload JSON Link (link_linux.go)
	FrameDial       = 'D' // to the link hub: open one more linked connection
	FramePort       = 'T' // on a linked connection: payload JSON PortRequest

	// agent → host
	FrameReady   = 'R' // payload: Version; sent once, when the agent is up
	FrameStarted = 'P' // the command is running
	FrameFailed  = 'F' // payload: why the command could not start
	FrameStdout  = 'O' // payload: output
	FrameStderr  = 'E' // payload: output
	FrameExit    = 'X' // payload: big-endian int32 exit code (128+N for signal N)
	FrameHello   = 'H' // first on a linked connection: payload Link.Token
	FrameHub     = 'U' // first on the connection of a hub started with its container: payload Link.Token
)

// Version names the protocol; the host refuses an agent that says another,
// but for VersionOwnMux.
const Version = "rtemu-agent/2"

// VersionOwnMux is the agent before its port relay spoke yamux (its own
// multiplexer): its commands and link are this version's, its relay is
// not. A sandbox made by an older rtemu runs it from its own volume.
const VersionOwnMux = "rtemu-agent/1"

// MaxPayload bounds a frame, so a broken peer cannot make the other side
// allocate without limit.
const MaxPayload = 1 << 20

// Start is a command to run.
type Start struct {
	Argv []string `json:"argv"`
	// Env is added to the agent's own environment (which is what a Docker
	// exec would have given the command), later entries winning.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty keeps the agent's (the image's).
	Dir string `json:"dir,omitempty"`
	// Stdin says the host will send FrameStdin/FrameStdinClose; without it
	// the command's stdin is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Tag is the value of the ExecMarker variable in Env: FrameKill
	// kills every process whose environment carries it.
	Tag string `json:"tag"`
}

// Where a linked sandbox sees its link folder (rtemu's side of it is
// DATA_DIR/link/<random>), and what is in it: rtemu's socket, and until the
// hub that starts with the container has connected, that hub's token.
const (
	LinkMount     = "/.rtemu-link"
	LinkSocket    = "agent.sock"
	LinkTokenFile = "hub-token"
)

// Link is the link hub's FrameLink request.
type Link struct {
	// Socket is the path of rtemu's socket inside the sandbox.
	Socket string `json:"socket"`
	// Token is said first on every connection (FrameHello).
	Token string `json:"token"`
}

// ErrFrame is a malformed frame.
var ErrFrame = errors.New("agent: malformed frame")

// FrameWriter writes whole frames; it is safe for concurrent use.
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameWriter writes frames to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// Write sends one frame.
func (f *FrameWriter) Write(typ byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeLocked(typ, payload)
}

// WriteIf sends one frame if ok() holds; ok is called under the writer's
// lock, so a frame can be kept from following some other event.
func (f *FrameWriter) WriteIf(ok func() bool, typ byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok() {
		return nil
	}
	return f.writeLocked(typ, payload)
}

// Lock and Unlock hold the writer, so a flag can change between frames.
func (f *FrameWriter) Lock()   { f.mu.Lock() }
func (f *FrameWriter) Unlock() { f.mu.Unlock() }

func (f *FrameWriter) writeLocked(typ byte, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrFrame, len(payload))
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := f.w.Write(buf)
	return err
}

// ReadFrame reads one frame, and nothing beyond it: r may be a connection
// whose next bytes belong to someone else.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrFrame, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// ExitPayload encodes an exit code.
func ExitPayload(code int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(int32(code)))
}

// ExitCode decodes an exit code.
func ExitCode(p []byte) (int, error) {
	if len(p) != 4 {
		return -1, fmt.Errorf("%w: exit payload of %d bytes", ErrFrame, len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}
