// Package state is the format of rtemu's state archives (docs/state.md):
// one tar file holding a manifest, the store's records, the workspaces'
// files and the engine's images of each sandbox's file system, closed by a
// trailer with a checksum of everything before it. It writes and reads the
// format and refuses what is not it; what goes in and what a load does with
// it is the lifecycle service's (sandbox/state.go).
package state

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

const (
	// Format names the archive; Version is the newest version this rtemu
	// writes and reads. An archive is written as the oldest version that
	// holds what it has: 1, or 2 when it refers to images by name
	// (Manifest.Referenced), which a reader of version 1 would not check.
	Format  = "rtemu-state"
	Version = 2

	// The archive's entries, in their order.
	ManifestName  = "rtemu-state.json"
	RecordsName   = "records.db"
	WorkspacesDir = "workspaces/"
	ImagesDir     = "images/"
	TrailerName   = "rtemu-state.end"
)

// Capture says how a sandbox's file system is in the archive.
const (
	// CaptureSnapshot: the engine's snapshot of the container is an image
	// of the archive (Sandbox.Image).
	CaptureSnapshot = "snapshot"
	// CaptureNone: the sandbox had no container to capture (failed,
	// error, destroyed, not made yet); it comes back as a record.
	CaptureNone = "none"
)

// Manifest is the archive's first entry.
type Manifest struct {
	Format       string    `json:"format"`
	Version      int       `json:"version"`
	ID           string    `json:"id"`
	RtemuVersion string    `json:"rtemuVersion"`
	CreatedAt    time.Time `json:"createdAt"`
	Engine       string    `json:"engine"`
	// Schema is the records' database schema (the store's migrations).
	Schema     int       `json:"schema"`
	Sandboxes  []Sandbox `json:"sandboxes"`
	Workspaces []string  `json:"workspaces"`
	// Images are the image names in images/, as the engine loads them.
	Images []string `json:"images"`
	// Referenced are the images that Images are built on and that the
	// archive leaves out (saved referencing images by name, version 2):
	// a load needs each in the engine under that name.
	Referenced []string `json:"referenced,omitempty"`
	// SecretKey is the SHA-256 of the key the records' secrets are
	// encrypted with (hex, first 16 digits): a load into a data dir with
	// another key keeps the secrets but cannot reveal them.
	SecretKey string `json:"secretKey,omitempty"`
}

// Sandbox is how one sandbox is in the archive.
type Sandbox struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Status   string `json:"status"`
	Template string `json:"template"`
	Capture  string `json:"capture"`
	// Image is the snapshot's image name (CaptureSnapshot).
	Image string `json:"image,omitempty"`
	// Base is the image the snapshot is built on when the archive refers
	// to it by name (one of Manifest.Referenced) instead of holding it.
	Base string `json:"base,omitempty"`
}

// Trailer closes the archive: proof that it is whole. CRC32C is the
// CRC-32C (Castagnoli) of every entry's name and contents before it, in
// order: it finds corruption, not tampering (the engine checks its layers'
// digests on load too), at the speed of the disk.
type Trailer struct {
	Entries int    `json:"entries"`
	CRC32C  string `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSum() hash.Hash32 { return crc32.New(castagnoli) }

// Problem kinds of an archive refused.
const (
	Truncated = "truncated"
	Corrupt   = "corrupt"
	Foreign   = "foreign"
	Newer     = "newer"
)

// FormatError is an archive refused: Kind says which problem.
type FormatError struct {
	Kind string
	Msg  string
}

func (e *FormatError) Error() string { return e.Msg }

func formatErr(kind, format string, args ...any) error {
	return &FormatError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Writer writes an archive: NewWriter writes the manifest, then Records,
// Workspace and Images in that order, and Close the trailer.
type Writer struct {
	tw      *tar.Writer
	sum     hash.Hash32
	entries int
}

// NewWriter starts an archive with its manifest.
func NewWriter(w io.Writer, m Manifest) (*Writer, error) {
	m.Format, m.Version = Format, 1
	if len(m.Referenced) > 0 {
		m.Version = 2
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	aw := &Writer{tw: tar.NewWriter(w), sum: newSum()}
	return aw, aw.entry(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(b)), ModTime: m.CreatedAt}, bytes.NewReader(b))
}

func (w *Writer) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
	}
	h.Format = tar.FormatPAX
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	w.entries++
	w.sum.Write([]byte(h.Name + "\x00"))
	if r == nil {
		return nil
	}
	n, err := io.Copy(io.MultiWriter(w.tw, w.sum), r)
	if err == nil && n != h.Size {
		err = fmt.Errorf("%s: %d bytes written of %d", h.Name, n, h.Size)
	}
	return err
}

// Records adds the records database (a file).
func (w *Writer) Records(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return w.entry(&tar.Header{Name: RecordsName, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime()}, f)
}

// Workspace adds a workspace's folder: its files, folders and symbolic
// links (as links, never followed).
func (w *Writer) Workspace(id, dir string) error {
	prefix := WorkspacesDir + id
	if err := w.entry(&tar.Header{Name: prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := prefix + "/" + filepath.ToSlash(rel)
		h := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
			return w.entry(h, nil)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
			return w.entry(h, nil)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h.Size = info.Size()
			return w.entry(h, f)
		}
		return nil // sockets, devices, pipes: not files a workspace keeps
	})
}

// Images adds the engine's image archive (a tar), its entries under
// images/: streamed, never held whole.
func (w *Writer) Images(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the engine's image archive: %w", err)
		}
		h.Name = ImagesDir + h.Name
		var body io.Reader
		if h.Typeflag == tar.TypeReg {
			body = tr
		}
		if err := w.entry(h, body); err != nil {
			return err
		}
	}
}

// Close writes the trailer and ends the tar.
func (w *Writer) Close() error {
	b, _ := json.Marshal(Trailer{Entries: w.entries, CRC32C: hex.EncodeToString(w.sum.Sum(nil))})
	if err := w.entry(&tar.Header{Name: TrailerName, Mode: 0o644, Size: int64(len(b))}, bytes.NewReader(b)); err != nil {
		return err
	}
	return w.tw.Close()
}

// Handler receives an archive's parts as Read meets them.
type Handler struct {
	// Manifest is called first; an error stops the read.
	Manifest func(Manifest) error
	// Records gets the records database's bytes.
	Records func(r io.Reader) error
	// Workspaces is the folder the workspaces' files go to (each in its
	// id's folder), confined to it.
	Workspaces string
	// Images gets the images as one tar stream, as the engine's archive
	// was (it may be read while the archive is).
	Images func(r io.Reader) error
}

// Read reads an archive (or a gzip of one) to its end, handing its parts
// to h, and checks its trailer. A problem with the archive is a
// *FormatError saying which; an error of h is returned as it is. What h
// did before the error is the caller's to undo.
func Read(r io.Reader, h Handler) error {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return formatErr(Corrupt, "the archive's gzip is corrupt: %v", err)
		}
		defer zr.Close()
		return read(zr, h)
	}
	return read(br, h)
}

// ReadManifest reads an archive's manifest only (and checks it as Read
// does).
func ReadManifest(r io.Reader) (Manifest, error) {
	var m Manifest
	errStop := errors.New("stop")
	err := Read(r, Handler{Manifest: func(got Manifest) error { m = got; return errStop }})
	if errors.Is(err, errStop) {
		return m, nil
	}
	return m, err
}

func read(r io.Reader, h Handler) (err error) {
	tr := tar.NewReader(r)
	sum := newSum()
	entries := 0
	first, err := tr.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return formatErr(Foreign, "not an rtemu state archive: the file is empty or shorter than a tar header")
		}
		return formatErr(Foreign, "not an rtemu state archive (not a tar file: %v)", err)
	}
	if first.Name != ManifestName {
		return formatErr(Foreign, "not an rtemu state archive: a tar file whose first entry is %q, not %s", first.Name, ManifestName)
	}
	var m Manifest
	mb, err := io.ReadAll(io.LimitReader(tr, 64<<20))
	if err != nil {
		return tarErr(err)
	}
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != Format {
		return formatErr(Foreign, "not an rtemu state archive: its %s does not name the format %s", ManifestName, Format)
	}
	if m.Version > Version || m.Version < 1 {
		return formatErr(Newer, "the archive is of state format version %d, made by rtemu %s; this rtemu reads versions up to %d: use a newer rtemu", m.Version, m.RtemuVersion, Version)
	}
	entries++
	sum.Write([]byte(first.Name + "\x00"))
	sum.Write(mb)
	if h.Manifest != nil {
		if err := h.Manifest(m); err != nil {
			return err
		}
	}

	// The images stream to the engine as they come, through a pipe.
	var (
		imgW    *io.PipeWriter
		imgTar  *tar.Writer
		imgDone chan error
	)
	endImages := func() error {
		if imgW == nil {
			return nil
		}
		werr := imgTar.Close()
		imgW.CloseWithError(werr)
		err := <-imgDone
		imgW = nil
		if werr != nil {
			return werr
		}
		return err
	}
	defer func() {
		if imgW != nil {
			imgW.CloseWithError(errors.New("the archive ended early"))
			<-imgDone
		}
	}()
	var root *os.Root
	if h.Workspaces != "" {
		if root, err = os.OpenRoot(h.Workspaces); err != nil {
			return err
		}
		defer root.Close()
	}
	for {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return formatErr(Truncated, "the archive is truncated: it ends without its trailer (%s)", TrailerName)
		}
		if err != nil {
			return tarErr(err)
		}
		if hd.Name == TrailerName {
			if err := endImages(); err != nil {
				return err
			}
			var t Trailer
			tb, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return tarErr(err)
			}
			if err := json.Unmarshal(tb, &t); err != nil {
				return formatErr(Corrupt, "the archive is corrupt: its trailer is not JSON")
			}
			if t.Entries != entries || t.CRC32C != hex.EncodeToString(sum.Sum(nil)) {
				return formatErr(Corrupt, "the archive is corrupt: its contents do not match its checksum")
			}
			return nil
		}
		entries++
		sum.Write([]byte(hd.Name + "\x00"))
		body := io.TeeReader(tr, sum)
		switch {
		case hd.Name == RecordsName:
			if h.Records != nil {
				if err := h.Records(body); err != nil {
					if isTarErr(err) {
						return tarErr(err)
					}
					return err
				}
			}
		case strings.HasPrefix(hd.Name, WorkspacesDir):
			if err := extract(root, strings.TrimPrefix(hd.Name, WorkspacesDir), hd, body); err != nil {
				return err
			}
		case strings.HasPrefix(hd.Name, ImagesDir):
			if h.Images == nil {
				break
			}
			if imgW == nil {
				pr, pw := io.Pipe()
				imgW, imgTar, imgDone = pw, tar.NewWriter(pw), make(chan error, 1)
				go func() {
					err := h.Images(pr)
					pr.CloseWithError(err)
					imgDone <- err
				}()
			}
			nh := *hd
			nh.Name = strings.TrimPrefix(hd.Name, ImagesDir)
			if nh.Name == "" {
				break
			}
			if err := imgTar.WriteHeader(&nh); err != nil {
				return endImagesErr(endImages, err)
			}
			if _, err := io.Copy(imgTar, body); err != nil {
				if isTarErr(err) {
					return tarErr(err)
				}
				return endImagesErr(endImages, err)
			}
		default:
			return formatErr(Corrupt, "the archive is corrupt: unexpected entry %q", hd.Name)
		}
		// Whatever a handler left unread still counts in the checksum.
		if _, err := io.Copy(sum, tr); err != nil {
			return tarErr(err)
		}
	}
}

// endImagesErr ends the image stream and prefers the engine's reason.
func endImagesErr(end func() error, err error) error {
	if eerr := end(); eerr != nil {
		return eerr
	}
	return err
}

func isTarErr(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader)
}

func tarErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr(Truncated, "the archive is truncated: it ends in the middle of an entry")
	}
	return formatErr(Corrupt, "the archive is corrupt: %v", err)
}

// extract writes one workspace entry under root (os.Root: no name, link or
// "..", whatever the archive says, reaches outside it).
func extract(root *os.Root, name string, hd *tar.Header, body io.Reader) error {
	if root == nil {
		return nil
	}
	name = path.Clean(strings.TrimSuffix(name, "/"))
	if name == "." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
		return formatErr(Corrupt, "the archive is corrupt: workspace entry %q", hd.Name)
	}
	mode := fs.FileMode(hd.Mode).Perm()
	switch hd.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(name, 0o755)
	case tar.TypeSymlink:
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		return root.Symlink(hd.Linkname, name)
	case tar.TypeReg:
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil && isTarErr(err) {
			return tarErr(err)
		}
		return err
	}
	return nil
}
