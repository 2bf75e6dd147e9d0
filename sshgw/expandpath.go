package sshgw

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"sync"
)

// OpenSSH's scp speaks SFTP, and sends a remote path that starts with
// ~user ("~sandbox-…/.ansible/tmp/…", as Ansible's scp mode does) only to a
// server that offers the expand-path@openssh.com extension; without it scp
// gives up before sending anything ("server expand-path extension is
// required for ~user paths in SFTP mode"). pkg/sftp's request server has no
// such extension, so the gateway sits between it and the channel: it adds
// the extension to the server's version packet and answers expand-path
// requests itself; every other packet passes unchanged.

const (
	fxpVersion  = 2
	fxpStatus   = 101
	fxpName     = 104
	fxpExtended = 200

	fxNoSuchFile = 2
	fxFailure    = 4

	extExpandPath = "expand-path@openssh.com"

	// maxSFTPPacket bounds a packet read from either side (OpenSSH sends
	// at most 256 KiB; pkg/sftp's own bound is near that).
	maxSFTPPacket = 1 << 20
)

// userName is what a ~user may name (a passwd entry's name).
var userName = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// pathExpander expands a path as the login user's shell would: ~ and ~/…
// under home; ~user/… under that user's home, the login names (the
// sandbox's id and name, which are root here) under home too; a relative
// path under home, the SFTP session's start directory.
type pathExpander struct {
	home   string
	logins []string
	// homeOf reads another user's home from the container ("" when there
	// is no such user).
	homeOf func(user string) (string, error)
}

// errNoSuchUser is an expand-path of ~user for a user the container does
// not have.
var errNoSuchUser = errors.New("no such user")

func (e pathExpander) expand(p string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		if !strings.HasPrefix(p, "/") {
			p = e.home + "/" + p
		}
		return path.Clean(p), nil
	}
	user, rest, _ := strings.Cut(p[1:], "/")
	home := e.home
	if user != "" && !contains(e.logins, user) {
		if !userName.MatchString(user) {
			return "", errNoSuchUser
		}
		h, err := e.homeOf(user)
		if err != nil {
			return "", err
		}
		if h == "" {
			return "", errNoSuchUser
		}
		home = h
	}
	return path.Clean(home + "/" + rest), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sftpProxy relays SFTP packets between the channel and the request
// server (reading and writing its ends of two pipes), answering
// expand-path itself.
type sftpProxy struct {
	ch     io.ReadWriter
	expand func(string) (string, error)

	writeMu sync.Mutex // one packet at a time onto the channel
}

// start relays in the background: the client's packets to toServer (the
// request server's input, closed when the client's side ends, so the
// server stops), the server's packets from fromServer to the client.
// flushed is closed once fromServer has ended and every packet of it is
// on the channel. The client's direction ends with the channel.
func (p *sftpProxy) start(toServer io.WriteCloser, fromServer io.Reader) (flushed <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.fromServer(fromServer)
	}()
	go func() {
		p.fromClient(toServer)
		toServer.Close()
	}()
	return done
}

// readPacket reads one packet (length, type, payload) into buf.
func readPacket(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxSFTPPacket {
		return nil, fmt.Errorf("sftp packet of %d bytes", n)
	}
	if cap(buf) < int(n)+4 {
		buf = make([]byte, 0, int(n)+4)
	}
	buf = append(buf[:0], hdr[:]...)
	buf = buf[:4+n]
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		return nil, err
	}
	return buf, nil
}

func (p *sftpProxy) write(pkt []byte) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	_, err := p.ch.Write(pkt)
	return err
}

func (p *sftpProxy) fromClient(toServer io.Writer) {
	r := bufio.NewReaderSize(p.ch, 64<<10)
	var buf []byte
	for {
		pkt, err := readPacket(r, buf)
		if err != nil {
			return
		}
		buf = pkt
		if pkt[4] == fxpExtended {
			if id, name, data, ok := parseExtended(pkt[5:]); ok && name == extExpandPath {
				if p.write(p.answerExpand(id, data)) != nil {
					return
				}
				continue
			}
		}
		if _, err := toServer.Write(pkt); err != nil {
			return
		}
	}
}

func (p *sftpProxy) fromServer(fromServer io.Reader) {
	r := bufio.NewReaderSize(fromServer, 64<<10)
	var buf []byte
	first := true
	for {
		pkt, err := readPacket(r, buf)
		if err != nil {
			// Drain what the server still writes, so it never blocks on
			// a pipe no one reads.
			_, _ = io.Copy(io.Discard, r)
			return
		}
		buf = pkt
		if first && pkt[4] == fxpVersion {
			pkt = appendString(appendString(pkt, extExpandPath), "1")
			binary.BigEndian.PutUint32(pkt, uint32(len(pkt)-4))
			buf = pkt
		}
		first = false
		if p.write(pkt) != nil {
			_, _ = io.Copy(io.Discard, r)
			return
		}
	}
}

// answerExpand is the reply to an expand-path request: a name packet with
// the expanded path, or a status with the failure.
func (p *sftpProxy) answerExpand(id uint32, data []byte) []byte {
	in, _, ok := readString(data)
	if !ok {
		return statusPacket(id, fxFailure, "malformed expand-path request")
	}
	out, err := p.expand(in)
	if errors.Is(err, errNoSuchUser) {
		return statusPacket(id, fxNoSuchFile, "no such user in "+in)
	}
	if err != nil {
		return statusPacket(id, fxFailure, err.Error())
	}
	pkt := []byte{0, 0, 0, 0, fxpName}
	pkt = binary.BigEndian.AppendUint32(pkt, id)
	pkt = binary.BigEndian.AppendUint32(pkt, 1)
	pkt = appendString(pkt, out)
	pkt = appendString(pkt, out)
	pkt = binary.BigEndian.AppendUint32(pkt, 0) // no attributes
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)-4))
	return pkt
}

func statusPacket(id, code uint32, msg string) []byte {
	pkt := []byte{0, 0, 0, 0, fxpStatus}
	pkt = binary.BigEndian.AppendUint32(pkt, id)
	pkt = binary.BigEndian.AppendUint32(pkt, code)
	pkt = appendString(pkt, msg)
	pkt = appendString(pkt, "")
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)-4))
	return pkt
}

func parseExtended(b []byte) (id uint32, name string, data []byte, ok bool) {
	if len(b) < 4 {
		return 0, "", nil, false
	}
	id = binary.BigEndian.Uint32(b)
	name, rest, ok := readString(b[4:])
	return id, name, rest, ok
}

func readString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
