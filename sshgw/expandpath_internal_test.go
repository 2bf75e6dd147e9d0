package sshgw

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/pkg/sftp"
)

func TestPathExpander(t *testing.T) {
	t.Parallel()
	e := pathExpander{home: "/root", logins: []string{"sandbox-abc123def456", "files"}, homeOf: func(user string) (string, error) {
		switch user {
		case "www-data":
			return "/var/www", nil
		case "broken":
			return "", errors.New("exec failed")
		}
		return "", nil
	}}
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"~", "/root", nil},
		{"~/", "/root", nil},
		{"~/.ansible/tmp/x", "/root/.ansible/tmp/x", nil},
		{"~sandbox-abc123def456/.ansible/tmp", "/root/.ansible/tmp", nil},
		{"~files", "/root", nil},
		{"~www-data/html/../index.html", "/var/www/index.html", nil},
		{"~nobody/x", "", errNoSuchUser},
		{"~bad:name/x", "", errNoSuchUser},
		{"relative/../file", "/root/file", nil},
		{"/etc//passwd", "/etc/passwd", nil},
		{"~broken/x", "", errors.New("exec failed")},
	} {
		got, err := e.expand(tc.in)
		if got != tc.want || (err == nil) != (tc.err == nil) || errors.Is(tc.err, errNoSuchUser) && !errors.Is(err, errNoSuchUser) {
			t.Errorf("expand(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func packet(typ byte, body ...[]byte) []byte {
	pkt := []byte{0, 0, 0, 0, typ}
	for _, b := range body {
		pkt = append(pkt, b...)
	}
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)-4))
	return pkt
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func str(s string) []byte { return appendString(nil, s) }

// TestSFTPProxy: between a client and pkg/sftp's request server, the
// proxy adds expand-path@openssh.com to the version packet, answers it,
// and passes every other packet through.
func TestSFTPProxy(t *testing.T) {
	t.Parallel()
	client, gw := net.Pipe()
	defer client.Close()
	toServerR, toServer := io.Pipe()
	fromServer, fromServerW := io.Pipe()
	srv := sftp.NewRequestServer(pipeConn{Reader: toServerR, WriteCloser: fromServerW}, sftp.InMemHandler(), sftp.WithStartDirectory("/"))
	exp := pathExpander{home: "/root", logins: []string{"sandbox-abc123def456"}, homeOf: func(string) (string, error) { return "", nil }}
	flushed := (&sftpProxy{ch: gw, expand: exp.expand}).start(toServer, fromServer)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	r := bufio.NewReader(client)
	send := func(pkt []byte) []byte {
		t.Helper()
		if _, err := client.Write(pkt); err != nil {
			t.Fatal(err)
		}
		got, err := readPacket(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	version := send(packet(1, u32(3)))
	if version[4] != fxpVersion {
		t.Fatalf("first answer of type %d", version[4])
	}
	exts := map[string]string{}
	for rest := version[9:]; len(rest) > 0; {
		name, r1, ok1 := readString(rest)
		data, r2, ok2 := readString(r1)
		if !ok1 || !ok2 {
			t.Fatalf("malformed extensions in %x", version)
		}
		exts[name], rest = data, r2
	}
	if exts[extExpandPath] != "1" || len(exts) < 2 {
		t.Fatalf("extensions %v: want expand-path and the server's own", exts)
	}

	name := send(packet(fxpExtended, u32(7), str(extExpandPath), str("~sandbox-abc123def456/.ansible/tmp")))
	if name[4] != fxpName || binary.BigEndian.Uint32(name[5:]) != 7 {
		t.Fatalf("expand-path answer %x", name)
	}
	if p, _, _ := readString(name[13:]); p != "/root/.ansible/tmp" {
		t.Fatalf("expanded to %q", p)
	}
	status := send(packet(fxpExtended, u32(8), str(extExpandPath), str("~nobody/x")))
	if status[4] != fxpStatus || binary.BigEndian.Uint32(status[9:]) != fxNoSuchFile {
		t.Fatalf("expand-path of an unknown user: %x", status)
	}
	// Any other request reaches the server: realpath of ".".
	real := send(packet(16, u32(9), str(".")))
	if real[4] != fxpName || binary.BigEndian.Uint32(real[5:]) != 9 {
		t.Fatalf("realpath through the proxy: %x", real)
	}
	client.Close()
	if err := <-served; err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("server: %v", err)
	}
	fromServerW.Close()
	<-flushed
}
