// Package workspacefs does the file API's work inside one workspace folder,
// confined to it. Every operation goes through an os.Root opened on the
// folder (openat with O_NOFOLLOW, one path component at a time, symlinks
// resolved inside the root), never through string checks on paths: a
// sandbox, root inside, can put any symlink, device node or FIFO in the
// folder and swap folders for symlinks between two calls, and none of that
// may let rtemu read or write outside the folder.
//
// What os.Root does not cover, this package does:
//   - device nodes and FIFOs (a sandbox may mknod or mkfifo): content is only
//     ever read from regular files, and on Linux the check happens on an
//     O_PATH handle before anything is opened for reading, so opening a
//     device never happens (open_linux.go);
//   - hard links: os.Root cannot tell a hard link from a file. A sandbox can
//     only link(2) to files visible inside it, and the kernel refuses links
//     across mounts (EXDEV), so any hard link found in a workspace names an
//     inode that was already in the workspace's bind mount. Writes replace a
//     file (temporary file, then rename) rather than writing into its inode,
//     so the file API never changes the contents of another name's inode;
//   - listing reads entry metadata with fstatat on the folder's own handle
//     (os.DirEntry.Info would lstat a host path string, which a swap could
//     redirect).
//
// Paths are workspace paths: "/" is the folder itself, "/src/a.txt" a file
// in it. A leading "/" is optional; ".." components are resolved by os.Root
// (after any symlink before them) and refused when they lead out.
package workspacefs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of this package; the os errors (fs.ErrNotExist, fs.ErrExist,
// fs.ErrPermission) come through wrapped as they are.
var (
	// ErrOutside: the path, or a symlink on it, leads outside the workspace.
	ErrOutside = errors.New("leads outside the workspace")
	// ErrNotDir: a folder was needed.
	ErrNotDir = errors.New("not a folder")
	// ErrIsDir: a file was needed.
	ErrIsDir = errors.New("is a folder")
	// ErrNotRegular: a device node, FIFO or socket, whose contents the file
	// API never reads.
	ErrNotRegular = errors.New("not a regular file (a device, FIFO or socket)")
	// ErrRoot: the operation cannot apply to the workspace's root folder.
	ErrRoot = errors.New("not allowed on the workspace root")
	// ErrBadName: not a single file name.
	ErrBadName = errors.New("not a valid file name")
	// ErrBadPath: not a workspace path.
	ErrBadPath = errors.New("not a valid workspace path")
	// ErrIntoItself: a folder cannot be moved or copied into itself.
	ErrIntoItself = errors.New("a folder cannot be moved or copied into itself")
	// ErrLoop: too many symlinks.
	ErrLoop = errors.New("too many levels of symbolic links")
)

// MaxName is the longest file name (bytes), as on Linux file systems.
const MaxName = 255

// maxPath bounds a workspace path (bytes), as PATH_MAX does.
const maxPath = 4096

// Modes of what the file API makes; the process umask applies, as it does
// for any program making files (with the usual 022: 0644 and 0755).
const (
	fileMode = 0o666
	dirMode  = 0o777
)

// escapeErr is os.Root's error for a path leading out of the root. The os
// package does not export it, so it is taken once from an operation that is
// sure to produce it, then recognised with errors.Is.
var escapeErr = sync.OnceValue(func() error {
	r, err := os.OpenRoot(os.TempDir())
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

// Error is a failed operation on a workspace path.
type Error struct {
	Op   string
	Path string // workspace path, "/…"
	Err  error
}

func (e *Error) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// classify maps what the os package returns to this package's errors.
func classify(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var we *Error
	if errors.As(err, &we) {
		return err
	}
	var errno syscall.Errno
	switch {
	case escapeErr() != nil && errors.Is(err, escapeErr()):
		err = ErrOutside
	case errors.As(err, &errno) && errno == syscall.ELOOP:
		err = ErrLoop
	case errors.As(err, &errno) && errno == syscall.ENOTDIR:
		err = ErrNotDir
	case errors.As(err, &errno) && errno == syscall.EISDIR:
		err = ErrIsDir
	case errors.As(err, &errno) && (errno == syscall.ENAMETOOLONG || errno == syscall.EINVAL):
		err = ErrBadPath
	case errors.As(err, &errno) && errno == syscall.ENOTEMPTY:
		err = fs.ErrExist
	}
	return &Error{Op: op, Path: p, Err: err}
}

// Folder is one open workspace folder.
type Folder struct {
	root *os.Root
}

// Open opens the workspace folder dir.
func Open(dir string) (*Folder, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Folder{root: r}, nil
}

// Close releases the folder.
func (f *Folder) Close() error { return f.root.Close() }

// rel turns a workspace path into a name relative to the root. It does not
// judge where the path leads: os.Root does, when the path is used.
func rel(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 || len(p) > maxPath {
		return "", ErrBadPath
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return ".", nil
	}
	return p, nil
}

// ID is the workspace path of a relative name, the way the API shows it.
func ID(name string) string { return path.Clean("/" + name) }

// shown is a relative name as errors show it: as the caller gave it (not
// cleaned, so a refused "../x" reads as such), with a leading "/".
func shown(name string) string {
	if name == "." {
		return "/"
	}
	return "/" + name
}

// ValidName checks a single file or folder name.
func ValidName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	case len(name) > MaxName:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxName)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q holds '/' or NUL", ErrBadName, name)
	}
	return nil
}

// split returns the parent and the last element of a relative name; the
// root has no last element.
func split(name string) (dir, base string, err error) {
	c := path.Clean(name)
	if c == "." || c == "/" {
		return "", "", ErrRoot
	}
	// The parent is taken from the name as given, not the cleaned one:
	// os.Root resolves ".." after symlinks, which cleaning would not.
	trimmed := strings.TrimRight(name, "/")
	i := strings.LastIndexByte(trimmed, '/')
	base = trimmed[i+1:]
	if err := ValidName(base); err != nil {
		return "", "", err
	}
	dir = "."
	if i > 0 {
		dir = trimmed[:i]
	}
	return dir, base, nil
}

// Entry describes one file or folder.
type Entry struct {
	ID      string // workspace path, "/src/a.txt"
	Name    string
	Dir     bool
	Symlink bool
	Size    int64
	ModTime time.Time
	// Count is, for a folder, the number of entries directly in it (hidden
	// ones only when listing hidden ones); -1 when it was not counted.
	Count int
}

func entryOf(id string, fi fs.FileInfo) Entry {
	e := Entry{ID: id, Name: fi.Name(), Dir: fi.IsDir(), Symlink: fi.Mode()&fs.ModeSymlink != 0,
		ModTime: fi.ModTime().UTC(), Count: -1}
	if fi.Mode().IsRegular() {
		e.Size = fi.Size()
	}
	if id == "/" {
		e.Name = ""
	}
	return e
}

// Stat describes the entry at p without following a final symlink.
func (f *Folder) Stat(p string) (Entry, error) {
	name, err := rel(p)
	if err != nil {
		return Entry{}, &Error{Op: "stat", Path: p, Err: err}
	}
	fi, err := f.root.Lstat(name)
	if err != nil {
		return Entry{}, classify("stat", shown(name), err)
	}
	return entryOf(ID(name), fi), nil
}

// hidden says whether a name is hidden (a dot file).
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// List lists the folder at p: folders first, then files, each by name.
func (f *Folder) List(p string, showHidden bool) ([]Entry, error) {
	name, err := rel(p)
	if err != nil {
		return nil, &Error{Op: "list", Path: p, Err: err}
	}
	d, err := openDir(f.root, name)
	if err != nil {
		return nil, classify("list", shown(name), err)
	}
	defer d.Close()
	names, err := readNames(d)
	if err != nil {
		return nil, classify("list", shown(name), err)
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		if !showHidden && hidden(n) {
			continue
		}
		// fstatat on the listed folder's handle, not a path from the top.
		fi, err := d.Lstat(n)
		if err != nil {
			continue // gone since the folder was read
		}
		e := entryOf(ID(path.Join(name, n)), fi)
		if e.Dir {
			e.Count = countIn(d, n, showHidden)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dir != out[j].Dir {
			return out[i].Dir
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// openDir opens the folder name inside r as a root of its own. os.Root
// reports a non-folder there with an error of its own making, so a failure
// is looked at once more to tell ErrNotDir.
func openDir(r *os.Root, name string) (*os.Root, error) {
	d, err := r.OpenRoot(name)
	if err == nil {
		return d, nil
	}
	if fi, serr := r.Stat(name); serr == nil && !fi.IsDir() {
		return nil, ErrNotDir
	}
	return nil, err
}

// readNames reads the names in the folder d (getdents on its handle).
func readNames(d *os.Root) ([]string, error) {
	fd, err := d.OpenFile(".", os.O_RDONLY|oDirectory, 0)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	return fd.Readdirnames(-1)
}

func countIn(d *os.Root, name string, showHidden bool) int {
	sub, err := openDir(d, name)
	if err != nil {
		return -1
	}
	defer sub.Close()
	names, err := readNames(sub)
	if err != nil {
		return -1
	}
	n := 0
	for _, x := range names {
		if showHidden || !hidden(x) {
			n++
		}
	}
	return n
}

// Usage is the size of a tree.
type Usage struct {
	Bytes   int64 // regular files' sizes
	Files   int   // everything that is not a folder
	Folders int   // folders below the top one
}

// Usage adds up the tree at p (a folder or a single file). Symlinks are
// counted, never followed.
func (f *Folder) Usage(p string) (Entry, Usage, error) {
	name, err := rel(p)
	if err != nil {
		return Entry{}, Usage{}, &Error{Op: "info", Path: p, Err: err}
	}
	fi, err := f.root.Lstat(name)
	if err != nil {
		return Entry{}, Usage{}, classify("info", shown(name), err)
	}
	top := entryOf(ID(name), fi)
	var u Usage
	if !fi.IsDir() {
		u.Files, u.Bytes = 1, top.Size
		return top, u, nil
	}
	d, err := openDir(f.root, name)
	if err != nil {
		return Entry{}, Usage{}, classify("info", shown(name), err)
	}
	defer d.Close()
	walkUsage(d, &u, 0)
	return top, u, nil
}

// maxDepth bounds recursion over folder handles (each level holds one open
// descriptor).
const maxDepth = 256

func walkUsage(d *os.Root, u *Usage, depth int) {
	names, err := readNames(d)
	if err != nil {
		return
	}
	for _, n := range names {
		fi, err := d.Lstat(n)
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir():
			u.Folders++
			if depth >= maxDepth {
				continue
			}
			if sub, err := openDir(d, n); err == nil {
				walkUsage(sub, u, depth+1)
				sub.Close()
			}
		case fi.Mode().IsRegular():
			u.Files++
			u.Bytes += fi.Size()
		default:
			u.Files++
		}
	}
}

// TreeSize adds up a whole workspace folder.
func TreeSize(dir string) (int64, error) {
	f, err := Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	_, u, err := f.Usage("/")
	return u.Bytes, err
}

func tempName(kind string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return ".rtemu-" + kind + "-" + hex.EncodeToString(b)
}

// CreateFile makes a new file in the folder dir holding contents.
func (f *Folder) CreateFile(dir, name string, contents []byte) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	dname, err := rel(dir)
	if err != nil {
		return Entry{}, &Error{Op: "create", Path: dir, Err: err}
	}
	id := ID(path.Join(dname, name))
	d, err := openDir(f.root, dname)
	if err != nil {
		return Entry{}, classify("create", shown(dname), err)
	}
	defer d.Close()
	// O_EXCL never follows a symlink at the name and fails if anything is there.
	w, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return Entry{}, classify("create", id, err)
	}
	_, err = w.Write(contents)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = d.Remove(name)
		return Entry{}, classify("create", id, err)
	}
	fi, err := d.Lstat(name)
	if err != nil {
		return Entry{}, classify("create", id, err)
	}
	return entryOf(id, fi), nil
}

// Mkdir makes a new folder in the folder dir.
func (f *Folder) Mkdir(dir, name string) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	dname, err := rel(dir)
	if err != nil {
		return Entry{}, &Error{Op: "mkdir", Path: dir, Err: err}
	}
	id := ID(path.Join(dname, name))
	d, err := openDir(f.root, dname)
	if err != nil {
		return Entry{}, classify("mkdir", shown(dname), err)
	}
	defer d.Close()
	if err := d.Mkdir(name, dirMode); err != nil {
		return Entry{}, classify("mkdir", id, err)
	}
	fi, err := d.Lstat(name)
	if err != nil {
		return Entry{}, classify("mkdir", id, err)
	}
	e := entryOf(id, fi)
	e.Count = 0
	return e, nil
}

// Upload is a file being written into a folder. Its bytes go to a hidden
// temporary file in that folder, which Commit renames into place, so a
// failed or aborted upload leaves nothing behind and a reader never sees a
// half-written file.
type Upload struct {
	dir     *os.Root // the target folder's own handle: a swap after Begin cannot redirect Commit
	dirName string
	tmp     *os.File
	tmpName string
	done    bool
}

// BeginUpload starts writing a file into the folder dir.
func (f *Folder) BeginUpload(dir string) (*Upload, error) {
	dname, err := rel(dir)
	if err != nil {
		return nil, &Error{Op: "upload", Path: dir, Err: err}
	}
	d, err := openDir(f.root, dname)
	if err != nil {
		return nil, classify("upload", shown(dname), err)
	}
	u := &Upload{dir: d, dirName: dname, tmpName: tempName("upload")}
	u.tmp, err = d.OpenFile(u.tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		d.Close()
		return nil, classify("upload", shown(dname), err)
	}
	return u, nil
}

// Write appends to the upload.
func (u *Upload) Write(p []byte) (int, error) {
	return u.tmp.Write(p)
}

// Commit puts the upload in place under name, replacing a file (or a
// symlink: the link itself, never what it points to) of that name.
func (u *Upload) Commit(name string) (Entry, error) {
	if u.done {
		return Entry{}, errors.New("upload already finished")
	}
	if err := ValidName(name); err != nil {
		u.Abort()
		return Entry{}, err
	}
	id := ID(path.Join(u.dirName, name))
	err := u.tmp.Sync()
	if cerr := u.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if fi, lerr := u.dir.Lstat(name); lerr == nil && fi.IsDir() {
			err = ErrIsDir
		}
	}
	if err == nil {
		err = u.dir.Rename(u.tmpName, name)
	}
	if err != nil {
		_ = u.dir.Remove(u.tmpName)
		u.dir.Close()
		u.done = true
		return Entry{}, classify("upload", id, err)
	}
	fi, err := u.dir.Lstat(name)
	u.dir.Close()
	u.done = true
	if err != nil {
		return Entry{}, classify("upload", id, err)
	}
	return entryOf(id, fi), nil
}

// Abort drops the upload. It is safe to call after Commit.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	u.done = true
	u.tmp.Close()
	_ = u.dir.Remove(u.tmpName)
	u.dir.Close()
}

// Write replaces (or makes) the file at p with contents: a temporary file
// renamed over it, keeping the old file's permission bits.
func (f *Folder) Write(p string, contents []byte) (Entry, error) {
	u, base, err := f.beginReplace(p)
	if err != nil {
		return Entry{}, err
	}
	if _, err := u.Write(contents); err != nil {
		u.Abort()
		return Entry{}, classify("write", shown(path.Join(u.dirName, base)), err)
	}
	return u.Commit(base)
}

func (f *Folder) beginReplace(p string) (*Upload, string, error) {
	name, err := rel(p)
	if err != nil {
		return nil, "", &Error{Op: "write", Path: p, Err: err}
	}
	dir, base, err := split(name)
	if err != nil {
		return nil, "", &Error{Op: "write", Path: shown(name), Err: err}
	}
	u, err := f.BeginUpload(dir)
	if err != nil {
		return nil, "", err
	}
	if fi, err := u.dir.Lstat(base); err == nil {
		if fi.IsDir() {
			u.Abort()
			return nil, "", &Error{Op: "write", Path: shown(name), Err: ErrIsDir}
		}
		if fi.Mode().IsRegular() {
			_ = u.tmp.Chmod(fi.Mode().Perm())
		}
	}
	return u, base, nil
}

// Rename gives the entry at p a new name in the same folder.
func (f *Folder) Rename(p, newName string) (Entry, error) {
	if err := ValidName(newName); err != nil {
		return Entry{}, err
	}
	name, err := rel(p)
	if err != nil {
		return Entry{}, &Error{Op: "rename", Path: p, Err: err}
	}
	dir, base, err := split(name)
	if err != nil {
		return Entry{}, &Error{Op: "rename", Path: shown(name), Err: err}
	}
	d, err := openDir(f.root, dir)
	if err != nil {
		return Entry{}, classify("rename", shown(name), err)
	}
	defer d.Close()
	id := ID(path.Join(dir, newName))
	if base != newName {
		if _, err := d.Lstat(base); err != nil {
			return Entry{}, classify("rename", shown(name), err)
		}
		if _, err := d.Lstat(newName); err == nil {
			return Entry{}, &Error{Op: "rename", Path: id, Err: fs.ErrExist}
		}
		// renameat on the folder's handle: the entry itself moves, a
		// symlink stays a symlink and is never followed.
		if err := d.Rename(base, newName); err != nil {
			return Entry{}, classify("rename", shown(name), err)
		}
	}
	fi, err := d.Lstat(newName)
	if err != nil {
		return Entry{}, classify("rename", id, err)
	}
	return entryOf(id, fi), nil
}

// Move moves the entry at p into the folder destDir, keeping its name.
func (f *Folder) Move(p, destDir string) (Entry, error) {
	name, err := rel(p)
	if err != nil {
		return Entry{}, &Error{Op: "move", Path: p, Err: err}
	}
	dest, err := rel(destDir)
	if err != nil {
		return Entry{}, &Error{Op: "move", Path: destDir, Err: err}
	}
	_, base, err := split(name)
	if err != nil {
		return Entry{}, &Error{Op: "move", Path: shown(name), Err: err}
	}
	if _, err := f.root.Lstat(name); err != nil {
		return Entry{}, classify("move", shown(name), err)
	}
	fi, err := f.root.Stat(dest)
	if err != nil {
		return Entry{}, classify("move", shown(dest), err)
	}
	if !fi.IsDir() {
		return Entry{}, &Error{Op: "move", Path: shown(dest), Err: ErrNotDir}
	}
	target := path.Join(dest, base)
	if _, err := f.root.Lstat(target); err == nil {
		if sameFile(f.root, name, target) {
			return f.Stat(target)
		}
		return Entry{}, &Error{Op: "move", Path: shown(target), Err: fs.ErrExist}
	}
	if err := f.root.Rename(name, target); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EINVAL {
			err = ErrIntoItself
		}
		return Entry{}, classify("move", shown(name), err)
	}
	return f.Stat(target)
}

func sameFile(r *os.Root, a, b string) bool {
	fa, err1 := r.Lstat(a)
	fb, err2 := r.Lstat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// Copy copies the entry at p (a whole tree for a folder) into the folder
// destDir, keeping its name. Symlinks are copied as symlinks, never
// followed; a device node, FIFO or socket in the tree stops the copy. The
// copy is built under a hidden temporary name and renamed into place, so a
// failed copy leaves nothing behind.
func (f *Folder) Copy(p, destDir string) (Entry, error) {
	name, err := rel(p)
	if err != nil {
		return Entry{}, &Error{Op: "copy", Path: p, Err: err}
	}
	dest, err := rel(destDir)
	if err != nil {
		return Entry{}, &Error{Op: "copy", Path: destDir, Err: err}
	}
	_, base, err := split(name)
	if err != nil {
		return Entry{}, &Error{Op: "copy", Path: shown(name), Err: err}
	}
	fi, err := f.root.Lstat(name)
	if err != nil {
		return Entry{}, classify("copy", shown(name), err)
	}
	d, err := openDir(f.root, dest)
	if err != nil {
		return Entry{}, classify("copy", shown(dest), err)
	}
	defer d.Close()
	target := ID(path.Join(dest, base))
	if _, err := d.Lstat(base); err == nil {
		return Entry{}, &Error{Op: "copy", Path: target, Err: fs.ErrExist}
	}
	if fi.IsDir() && f.isWithin(name, dest) {
		return Entry{}, &Error{Op: "copy", Path: shown(name), Err: ErrIntoItself}
	}
	tmp := tempName("copy")
	if err := copyEntry(f.root, name, d, tmp, 0); err != nil {
		_ = d.RemoveAll(tmp)
		return Entry{}, classify("copy", shown(name), err)
	}
	if err := d.Rename(tmp, base); err != nil {
		_ = d.RemoveAll(tmp)
		return Entry{}, classify("copy", target, err)
	}
	out, err := d.Lstat(base)
	if err != nil {
		return Entry{}, classify("copy", target, err)
	}
	return entryOf(target, out), nil
}

// isWithin says whether the folder dest is the folder src or below it. It
// climbs from dest with ".." through os.Root (which resolves ".." after any
// symlink before it) and compares inodes, up to the workspace root.
func (f *Folder) isWithin(src, dest string) bool {
	srcInfo, err := f.root.Stat(src)
	if err != nil {
		return false
	}
	rootInfo, err := f.root.Stat(".")
	if err != nil {
		return false
	}
	p := dest
	for range maxDepth {
		fi, err := f.root.Stat(p)
		if err != nil {
			return false
		}
		if os.SameFile(fi, srcInfo) {
			return true
		}
		if os.SameFile(fi, rootInfo) {
			return false
		}
		p += "/.."
	}
	return false
}

func copyEntry(src *os.Root, srcName string, dst *os.Root, dstName string, depth int) error {
	if depth > maxDepth {
		return ErrLoop
	}
	fi, err := src.Lstat(srcName)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := src.Readlink(srcName)
		if err != nil {
			return err
		}
		// The link's text is copied; what it points to is never opened.
		return dst.Symlink(target, dstName)
	case fi.IsDir():
		if err := dst.Mkdir(dstName, fi.Mode().Perm()|0o700); err != nil {
			return err
		}
		s, err := openDir(src, srcName)
		if err != nil {
			return err
		}
		defer s.Close()
		dd, err := openDir(dst, dstName)
		if err != nil {
			return err
		}
		defer dd.Close()
		names, err := readNames(s)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := copyEntry(s, n, dd, n, depth+1); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		in, _, err := openRegular(src, srcName)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := dst.OpenFile(dstName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return &Error{Op: "copy", Path: srcName, Err: ErrNotRegular}
}

// Remove deletes the entries at paths (folders with everything in them).
// Every path is checked first; if one is missing or refused, nothing is
// deleted. A symlink is deleted itself, never what it points to.
func (f *Folder) Remove(paths []string) ([]string, error) {
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		name, err := rel(p)
		if err != nil {
			return nil, &Error{Op: "delete", Path: p, Err: err}
		}
		if _, _, err := split(name); err != nil {
			return nil, &Error{Op: "delete", Path: shown(name), Err: err}
		}
		if _, err := f.root.Lstat(name); err != nil {
			return nil, classify("delete", shown(name), err)
		}
		names = append(names, name)
	}
	ids := make([]string, 0, len(names))
	for _, name := range names {
		if err := f.root.RemoveAll(name); err != nil {
			return ids, classify("delete", shown(name), err)
		}
		ids = append(ids, ID(name))
	}
	return ids, nil
}

// OpenFile opens the regular file at p for reading, following symlinks that
// stay inside the workspace. The caller closes it.
func (f *Folder) OpenFile(p string) (*os.File, Entry, error) {
	name, err := rel(p)
	if err != nil {
		return nil, Entry{}, &Error{Op: "read", Path: p, Err: err}
	}
	file, fi, err := openRegular(f.root, name)
	if err != nil {
		return nil, Entry{}, classify("read", shown(name), err)
	}
	e := entryOf(ID(name), fi)
	e.Name = path.Base(ID(name))
	return file, e, nil
}
