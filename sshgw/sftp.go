package sshgw

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// The SFTP subsystem is served here, not by an sftp-server in the image
// (busybox and many slim images have none): every file operation becomes a
// small POSIX shell script run in the container through the service, with
// file contents on its stdin or stdout. The scripts report the errno-like
// cases with exit codes, so errors reach the client as the right SFTP
// status, not as text to be matched.
const (
	exitNotExist = 3  // ENOENT
	exitIsDir    = 4  // EISDIR
	exitExist    = 5  // EEXIST
	exitNotDir   = 6  // ENOTDIR
	exitNotEmpty = 7  // ENOTEMPTY
	exitInvalid  = 22 // EINVAL
)

var exitErrno = map[int]syscall.Errno{
	exitNotExist: syscall.ENOENT, exitIsDir: syscall.EISDIR, exitExist: syscall.EEXIST,
	exitNotDir: syscall.ENOTDIR, exitNotEmpty: syscall.ENOTEMPTY, exitInvalid: syscall.EINVAL,
}

// statFormat prints what an SFTP attribute block holds: raw mode (hex),
// size, uid, gid, atime, mtime. Both busybox and GNU stat take it.
const statFormat = `%f %s %u %g %X %Y`

// Scripts take their paths as arguments ($1, $2), never spliced into the
// text. Paths are absolute: the request server makes them so.
const (
	// $1 is the login name, aliased to root as for a shell (session.go).
	scriptHome = `cd ~ 2>/dev/null || cd /
RTEMU_SSH_LOGIN=$1
` + aliasLogin + `
pwd`

	// A user's home, or nothing.
	scriptHomeOf = `while IFS=: read -r n _ _ _ _ h _; do [ "$n" = "$1" ] && { printf '%s\n' "$h"; exit 0; }; done </etc/passwd`

	// $2 = "L" follows a symlink (stat); "" describes the link (lstat).
	scriptStat = `p=$1
if [ -n "$2" ]; then [ -e "$p" ] || exit 3; else [ -e "$p" ] || [ -L "$p" ] || exit 3; fi
exec stat ${2:+-L} -c '` + statFormat + `' -- "$p"`

	// Names (NUL-terminated, then an empty one), then one stat line per
	// name in the same order: names may hold newlines, stat lines cannot.
	// . and .. are listed, as sftp-server lists them.
	scriptList = `[ -e "$1" ] || exit 3
[ -d "$1" ] || exit 6
cd -- "$1" || exit 1
set -- . ..
for f in * .[!.]* ..?*; do
  if [ -e "$f" ] || [ -L "$f" ]; then set -- "$@" "$f"; fi
done
[ $# -eq 0 ] && exit 0
printf '%s\0' "$@"
printf '\0'
exec stat -c '` + statFormat + `' -- "$@"`

	scriptReadlink = `[ -e "$1" ] || [ -L "$1" ] || exit 3
[ -L "$1" ] || exit 22
exec readlink -- "$1"`

	scriptCheckRead = `[ -e "$1" ] || exit 3
[ -d "$1" ] && exit 4
exit 0`

	scriptCat = `exec cat -- "$1"`

	// $2: create, trunc, excl (each may create), or "" (must exist);
	// $3: mode to give a file this makes. Prints "new" or "old".
	scriptOpenWrite = `p=$1
[ -d "$p" ] && exit 4
if [ -e "$p" ]; then
  [ "$2" = excl ] && exit 5
  [ "$2" = trunc ] && { : > "$p" || exit 1; }
  echo old; exit 0
fi
[ -z "$2" ] && exit 3
d=$(dirname -- "$p"); [ -d "$d" ] || exit 3
: > "$p" || exit 1
[ -n "$3" ] && chmod "$3" "$p"
echo new`

	scriptWrite  = `exec cat > "$1"`
	scriptAppend = `exec cat >> "$1"`

	// $2 size, $3 mode, $4 uid:gid, $5 atime, $6 mtime ("" = leave alone).
	scriptSetstat = `p=$1
[ -e "$p" ] || [ -L "$p" ] || exit 3
if [ -n "$2" ]; then truncate -s "$2" "$p" || exit 1; fi
if [ -n "$3" ]; then chmod "$3" "$p" || exit 1; fi
if [ -n "$4" ]; then chown "$4" "$p" || exit 1; fi
if [ -n "$5" ]; then touch -c -a -d "@$5" "$p" || exit 1; fi
if [ -n "$6" ]; then touch -c -m -d "@$6" "$p" || exit 1; fi
exit 0`

	// SFTP v3 rename does not replace an existing target.
	scriptRename = `[ -e "$1" ] || [ -L "$1" ] || exit 3
[ -e "$2" ] || [ -L "$2" ] && exit 5
exec mv -- "$1" "$2"`

	// posix-rename@openssh.com replaces the target, as rename(2) does: a
	// directory only replaces an empty directory, a file no directory.
	scriptPosixRename = `[ -e "$1" ] || [ -L "$1" ] || exit 3
if [ -d "$2" ] && [ ! -L "$2" ]; then
  [ -d "$1" ] || exit 4
  rmdir -- "$2" 2>/dev/null || exit 7
fi
exec mv -f -- "$1" "$2"`

	scriptRemove = `[ -e "$1" ] || [ -L "$1" ] || exit 3
[ -d "$1" ] && [ ! -L "$1" ] && exit 4
exec rm -f -- "$1"`

	scriptRmdir = `[ -e "$1" ] || exit 3
[ -d "$1" ] || exit 6
[ -z "$(ls -A -- "$1")" ] || exit 7
exec rmdir -- "$1"`

	scriptMkdir = `[ -e "$1" ] || [ -L "$1" ] && exit 5
exec mkdir -- "$1"`

	scriptSymlink = `[ -e "$2" ] || [ -L "$2" ] && exit 5
exec ln -s -- "$1" "$2"`

	scriptLink = `[ -e "$1" ] || exit 3
[ -e "$2" ] || [ -L "$2" ] && exit 5
exec ln -- "$1" "$2"`
)

// containerFS serves one SFTP session's requests from a sandbox's
// filesystem. It implements pkg/sftp's request-server handler interfaces.
type containerFS struct {
	ctx       context.Context // the SSH session's: a hang-up stops everything
	svc       *sandbox.Service
	sandboxID string

	mu sync.Mutex
	// uploads are the files open for writing in this session, by path;
	// a setstat on one waits for its close (scp -p sets the times before
	// closing, and the content only lands in the container at close).
	uploads map[string]*upload
}

func (s *session) serveSFTP(ctx context.Context, sandboxID string) error {
	cfs := &containerFS{ctx: ctx, svc: s.g.svc, sandboxID: sandboxID, uploads: map[string]*upload{}}
	home := "/"
	if out, err := cfs.output(scriptHome, s.conn.User()); err == nil {
		if h := strings.TrimSpace(out); strings.HasPrefix(h, "/") {
			home = h
		}
	}
	// The request server talks to the client through the proxy, which
	// adds expand-path@openssh.com (expandpath.go).
	toServerR, toServer := io.Pipe()
	fromServer, fromServerW := io.Pipe()
	srv := sftp.NewRequestServer(pipeConn{Reader: toServerR, WriteCloser: fromServerW},
		sftp.Handlers{FileGet: cfs, FilePut: cfs, FileCmd: cfs, FileList: cfs}, sftp.WithStartDirectory(home))
	exp := pathExpander{home: home, logins: []string{sandboxID, s.conn.User()}, homeOf: func(user string) (string, error) {
		out, err := cfs.output(scriptHomeOf, user)
		return strings.TrimSpace(out), err
	}}
	flushed := (&sftpProxy{ch: s.ch, expand: exp.expand}).start(toServer, fromServer)
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve()
	// Every answer is on the channel before the session's exit status.
	fromServerW.Close()
	<-flushed
	toServerR.Close()
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}

// pipeConn is the request server's end of the proxy's pipes.
type pipeConn struct {
	io.Reader
	io.WriteCloser
}

// scriptError turns a script's failure into an error the request server
// maps to the right SFTP status.
func scriptError(op, path string, code int, stderr string) error {
	if errno, ok := exitErrno[code]; ok {
		return &fs.PathError{Op: op, Path: path, Err: errno}
	}
	msg := strings.TrimSpace(stderr)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", code)
	}
	return fmt.Errorf("%s %s: %s", op, path, msg)
}

// exec runs a script with arguments; stdin and stdout are optional.
func (c *containerFS) exec(ctx context.Context, op, path, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	var stderr limitedBuffer
	stderr.max = 4 << 10
	cmd := append([]string{"/bin/sh", "-c", script, "rtemu-sftp"}, args...)
	code, err := c.svc.Attach(ctx, c.sandboxID, sandbox.AttachSpec{
		Cmd: cmd, Stdin: stdin, Stdout: stdout, Stderr: &stderr,
		// touch -d @N and the like read dates in UTC.
		Env: []string{"TZ=UTC"},
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	if code != 0 {
		return scriptError(op, path, code, stderr.String())
	}
	return nil
}

func (c *containerFS) output(script string, args ...string) (string, error) {
	var out bytes.Buffer
	err := c.exec(c.ctx, "run", "", script, args, nil, &out)
	return out.String(), err
}

// ---- reads -----------------------------------------------------------------

// Fileread opens a file for reading: its content is copied out of the
// container into a spool file in the background, and reads wait only for
// the part they ask for.
func (c *containerFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if err := c.exec(c.ctx, "open", r.Filepath, scriptCheckRead, []string{r.Filepath}, nil, nil); err != nil {
		return nil, err
	}
	sp, err := newSpool()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	sp.cancel = cancel
	go func() {
		err := c.exec(ctx, "read", r.Filepath, scriptCat, []string{r.Filepath}, nil, sp)
		sp.finish(err)
	}()
	return sp, nil
}

// spool is a temporary file filled by one writer while readers read the
// parts already written.
type spool struct {
	f      *os.File
	cancel context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	done    bool
	err     error
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "rtemu-sftp-*")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the data lives only as long as the handle.
	_ = os.Remove(f.Name())
	sp := &spool{f: f}
	sp.cond = sync.NewCond(&sp.mu)
	return sp, nil
}

func (sp *spool) Write(p []byte) (int, error) {
	sp.mu.Lock()
	off := sp.written
	sp.mu.Unlock()
	n, err := sp.f.WriteAt(p, off)
	sp.mu.Lock()
	sp.written += int64(n)
	sp.cond.Broadcast()
	sp.mu.Unlock()
	return n, err
}

func (sp *spool) finish(err error) {
	sp.mu.Lock()
	sp.done, sp.err = true, err
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

func (sp *spool) ReadAt(p []byte, off int64) (int, error) {
	sp.mu.Lock()
	for !sp.done && sp.written < off+int64(len(p)) {
		sp.cond.Wait()
	}
	written, done, ferr := sp.written, sp.done, sp.err
	sp.mu.Unlock()
	if off >= written {
		if ferr != nil {
			return 0, ferr
		}
		return 0, io.EOF
	}
	want := min(int64(len(p)), written-off)
	n, err := sp.f.ReadAt(p[:want], off)
	if err == nil && done && off+int64(n) >= written {
		if ferr != nil {
			return n, ferr
		}
		return n, io.EOF
	}
	return n, err
}

func (sp *spool) Close() error {
	if sp.cancel != nil {
		sp.cancel()
	}
	sp.mu.Lock()
	for !sp.done {
		sp.cond.Wait()
	}
	sp.mu.Unlock()
	return sp.f.Close()
}

// ---- writes ----------------------------------------------------------------

// upload is a file open for writing. Writes (which the request server may
// deliver out of order) go to a local temporary file; Close copies it into
// the container, then applies any setstat that came while it was open.
type upload struct {
	c      *containerFS
	path   string
	append bool
	f      *os.File

	pending []*sftp.Request // setstats waiting for the content
}

func (c *containerFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	flags := r.Pflags()
	mode := ""
	switch {
	case flags.Creat && flags.Excl:
		mode = "excl"
	case flags.Trunc:
		mode = "trunc"
	case flags.Creat:
		mode = "create"
	}
	perm := ""
	if m, ok := openPermissions(r); ok {
		perm = strconv.FormatUint(uint64(m), 8)
	}
	var out bytes.Buffer
	if err := c.exec(c.ctx, "open", r.Filepath, scriptOpenWrite, []string{r.Filepath, mode, perm}, nil, &out); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "rtemu-sftp-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	u := &upload{c: c, path: r.Filepath, append: flags.Append, f: f}
	if strings.TrimSpace(out.String()) == "old" && !flags.Trunc && !flags.Append {
		// Writing into an existing file without truncating it (a resumed
		// upload): start from its content, so the parts not written keep it.
		if err := c.exec(c.ctx, "open", r.Filepath, scriptCat, []string{r.Filepath}, nil, f); err != nil {
			f.Close()
			return nil, err
		}
	}
	c.mu.Lock()
	c.uploads[r.Filepath] = u
	c.mu.Unlock()
	return u, nil
}

// openPermissions is the mode an SFTP open asks a new file to have.
// pkg/sftp keeps an open's attribute bytes but drops the flags saying which
// attributes they are, so only the unambiguous case is read: four bytes
// are permissions alone, which is what OpenSSH's sftp and scp send (with -p
// they set the mode again with fsetstat). The umask sftp-server usually has
// (022) applies, as it does there.
func openPermissions(r *sftp.Request) (uint32, bool) {
	if len(r.Attrs) != 4 {
		return 0, false
	}
	m := uint32(r.Attrs[0])<<24 | uint32(r.Attrs[1])<<16 | uint32(r.Attrs[2])<<8 | uint32(r.Attrs[3])
	m &= 0o7777
	return m &^ 0o022, m != 0
}

func (u *upload) WriteAt(p []byte, off int64) (int, error) { return u.f.WriteAt(p, off) }

func (u *upload) Close() error {
	defer u.f.Close()
	u.c.mu.Lock()
	if u.c.uploads[u.path] == u {
		delete(u.c.uploads, u.path)
	}
	pending := u.pending
	u.c.mu.Unlock()
	if _, err := u.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	script := scriptWrite
	if u.append {
		script = scriptAppend
	}
	// The session's context, not the request's: the request server ends a
	// request's context when the client closes the handle, which is now.
	if err := u.c.exec(u.c.ctx, "write", u.path, script, []string{u.path}, u.f, nil); err != nil {
		return err
	}
	for _, r := range pending {
		if err := u.c.setstat(r); err != nil {
			return err
		}
	}
	return nil
}

// ---- commands --------------------------------------------------------------

func (c *containerFS) Filecmd(r *sftp.Request) error {
	p, t := r.Filepath, r.Target
	switch r.Method {
	case "Setstat":
		c.mu.Lock()
		if u, ok := c.uploads[p]; ok {
			if r.AttrFlags().Size {
				if err := u.f.Truncate(int64(r.Attributes().Size)); err != nil {
					c.mu.Unlock()
					return err
				}
			}
			u.pending = append(u.pending, r)
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		return c.setstat(r)
	case "Rename":
		return c.exec(c.ctx, "rename", p, scriptRename, []string{p, t}, nil, nil)
	case "Remove":
		return c.exec(c.ctx, "remove", p, scriptRemove, []string{p}, nil, nil)
	case "Rmdir":
		return c.exec(c.ctx, "rmdir", p, scriptRmdir, []string{p}, nil, nil)
	case "Mkdir":
		// pkg/sftp passes no attributes with mkdir: the mode is the
		// container's default.
		return c.exec(c.ctx, "mkdir", p, scriptMkdir, []string{p}, nil, nil)
	case "Symlink":
		// pkg/sftp: Filepath is the link's target (as given), Target the
		// new link.
		return c.exec(c.ctx, "symlink", t, scriptSymlink, []string{p, t}, nil, nil)
	case "Link":
		return c.exec(c.ctx, "link", t, scriptLink, []string{p, t}, nil, nil)
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename serves posix-rename@openssh.com, which OpenSSH's sftp uses
// for its rename.
func (c *containerFS) PosixRename(r *sftp.Request) error {
	return c.exec(c.ctx, "rename", r.Filepath, scriptPosixRename, []string{r.Filepath, r.Target}, nil, nil)
}

func (c *containerFS) setstat(r *sftp.Request) error {
	flags, a := r.AttrFlags(), r.Attributes()
	args := []string{r.Filepath, "", "", "", "", ""}
	if flags.Size {
		args[1] = strconv.FormatUint(a.Size, 10)
	}
	if flags.Permissions {
		args[2] = strconv.FormatUint(uint64(a.Mode&0o7777), 8)
	}
	if flags.UidGid {
		args[3] = fmt.Sprintf("%d:%d", a.UID, a.GID)
	}
	if flags.Acmodtime {
		args[4], args[5] = strconv.FormatUint(uint64(a.Atime), 10), strconv.FormatUint(uint64(a.Mtime), 10)
	}
	return c.exec(c.ctx, "setstat", r.Filepath, scriptSetstat, args, nil, nil)
}

// ---- listings and stat -----------------------------------------------------

func (c *containerFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		return c.list(r.Filepath)
	case "Stat":
		return c.stat(r.Filepath, true)
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat describes a symlink itself.
func (c *containerFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	return c.stat(r.Filepath, false)
}

// Readlink returns a symlink's target as stored.
func (c *containerFS) Readlink(p string) (string, error) {
	var out bytes.Buffer
	if err := c.exec(c.ctx, "readlink", p, scriptReadlink, []string{p}, nil, &out); err != nil {
		return "", err
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

func (c *containerFS) stat(p string, follow bool) (sftp.ListerAt, error) {
	flag := ""
	if follow {
		flag = "L"
	}
	var out bytes.Buffer
	if err := c.exec(c.ctx, "stat", p, scriptStat, []string{p, flag}, nil, &out); err != nil {
		return nil, err
	}
	name := p
	if i := strings.LastIndexByte(strings.TrimSuffix(p, "/"), '/'); i >= 0 && p != "/" {
		name = strings.TrimSuffix(p, "/")[i+1:]
	}
	fi, err := parseStat(name, strings.TrimSpace(out.String()))
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	c.mu.Lock()
	if u, ok := c.uploads[p]; ok {
		// Content not in the container yet: report what was written.
		if st, err := u.f.Stat(); err == nil {
			fi.stat.Size = uint64(st.Size())
		}
	}
	c.mu.Unlock()
	return listerAt{fi}, nil
}

func (c *containerFS) list(dir string) (sftp.ListerAt, error) {
	var out bytes.Buffer
	if err := c.exec(c.ctx, "opendir", dir, scriptList, []string{dir}, nil, &out); err != nil {
		return nil, err
	}
	br := bufio.NewReader(&out)
	var names []string
	for {
		name, err := br.ReadString(0)
		if err != nil {
			break // an empty directory prints nothing
		}
		name = strings.TrimSuffix(name, "\x00")
		if name == "" {
			break
		}
		names = append(names, name)
	}
	infos := make(listerAt, 0, len(names))
	for _, name := range names {
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("opendir %s: the directory changed while it was listed; try again", dir)
		}
		fi, err := parseStat(name, strings.TrimSpace(line))
		if err != nil {
			return nil, fmt.Errorf("opendir %s: %w", dir, err)
		}
		infos = append(infos, fi)
	}
	return infos, nil
}

// fileInfo is one stat result as os.FileInfo; Sys is the *sftp.FileStat the
// request server sends as is, uid and gid included.
type fileInfo struct {
	name string
	stat *sftp.FileStat
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return int64(fi.stat.Size) }
func (fi *fileInfo) Mode() os.FileMode  { return fi.stat.FileMode() }
func (fi *fileInfo) ModTime() time.Time { return fi.stat.ModTime() }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return fi.stat }
func (fi *fileInfo) Uid() uint32        { return fi.stat.UID }
func (fi *fileInfo) Gid() uint32        { return fi.stat.GID }

// parseStat reads one statFormat line.
func parseStat(name, line string) (*fileInfo, error) {
	f := strings.Fields(line)
	if len(f) != 6 {
		return nil, fmt.Errorf("unexpected stat output %q", line)
	}
	var n [6]uint64
	for i, s := range f {
		base := 10
		if i == 0 {
			base = 16
		}
		v, err := strconv.ParseUint(s, base, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected stat output %q", line)
		}
		n[i] = v
	}
	return &fileInfo{name: name, stat: &sftp.FileStat{
		Mode: uint32(n[0]), Size: n[1], UID: uint32(n[2]), GID: uint32(n[3]),
		Atime: uint32(n[4]), Mtime: uint32(n[5]),
	}}, nil
}

type listerAt []*fileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := 0
	for _, fi := range l[off:] {
		if n == len(out) {
			break
		}
		out[n] = fi
		n++
	}
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
