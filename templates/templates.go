// Package templates holds rtemu's recipes for the hosted templates
// (base-ubuntu, desktop-ubuntu) and builds their images through the Docker
// engine. A recipe is a Dockerfile and the files it copies, kept in
// recipes/NAME and compiled into the binary, so `rtemu templates build`
// needs nothing but the engine and the distribution's package mirror.
//
// Each image is tagged rtemu/NAME:<hash of the recipe>. The tag depends on
// the recipe alone (for desktop-ubuntu, on base-ubuntu's recipe too), so
// rtemu knows the image of each template without asking the engine, an
// unchanged recipe is never built twice, and a changed one gets a new tag.
// The base image a build started from is recorded in a label.
package templates

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"golang.org/x/sync/singleflight"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

//go:embed recipes
var recipeFS embed.FS

// DefaultBase is the image base-ubuntu starts from when no --base is given:
// what the hosted base-ubuntu is made from.
const DefaultBase = "ubuntu:24.04"

// Labels every template image carries.
const (
	LabelTemplate = "rtemu.template" // the recipe's name
	LabelRecipe   = "rtemu.recipe"   // the recipe's full hash
	LabelBase     = "rtemu.base"     // the image the build started from
)

// Recipe is the recipe of one template.
type Recipe struct {
	Name string
	// Parent is the template this one builds on ("" = starts from the
	// base image). desktop-ubuntu builds on base-ubuntu, as hosted.
	Parent string
	files  map[string][]byte // path in the build context → contents
	hash   string
}

// ErrUnknown: no recipe has that name.
var ErrUnknown = errors.New("no such template recipe")

// recipeList is every recipe, in build order (parents first).
var recipeList = []recipeEntry{
	{"base-ubuntu", ""},
	{"desktop-ubuntu", "base-ubuntu"},
}

type recipeEntry struct{ name, parent string }

var recipes = func() []*Recipe {
	rs, err := load(recipeFS, recipeList)
	if err != nil {
		panic(err)
	}
	return rs
}()

// load reads the recipes from fsys (recipes/NAME/…) and hashes them.
func load(fsys fs.FS, list []recipeEntry) ([]*Recipe, error) {
	byName := map[string]*Recipe{}
	var out []*Recipe
	for _, l := range list {
		r := &Recipe{Name: l.name, Parent: l.parent, files: map[string][]byte{}}
		dir := "recipes/" + l.name
		err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			r.files[p[len(dir)+1:]] = b
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("templates: recipe %s: %w", l.name, err)
		}
		if r.files["Dockerfile"] == nil {
			return nil, fmt.Errorf("templates: recipe %s has no Dockerfile", l.name)
		}
		h := sha256.New()
		if l.parent != "" {
			p, ok := byName[l.parent]
			if !ok {
				return nil, fmt.Errorf("templates: recipe %s: parent %s comes later or not at all", l.name, l.parent)
			}
			fmt.Fprintf(h, "parent %s %s\n", p.Name, p.hash)
		}
		for _, name := range r.fileNames() {
			fmt.Fprintf(h, "file %q %d\n", name, len(r.files[name]))
			h.Write(r.files[name])
		}
		r.hash = hex.EncodeToString(h.Sum(nil))
		byName[r.Name] = r
		out = append(out, r)
	}
	return out, nil
}

// All lists the recipes, parents first.
func All() []*Recipe { return append([]*Recipe(nil), recipes...) }

// Lookup finds a recipe by template name.
func Lookup(name string) (*Recipe, error) { return lookup(recipes, name) }

func lookup(recipes []*Recipe, name string) (*Recipe, error) {
	for _, r := range recipes {
		if r.Name == name {
			return r, nil
		}
	}
	names := make([]string, 0, len(recipes))
	for _, r := range recipes {
		names = append(names, r.Name)
	}
	return nil, fmt.Errorf("%w %q (there are: %v)", ErrUnknown, name, names)
}

func (r *Recipe) fileNames() []string {
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Hash is the recipe's content hash (its parent's included).
func (r *Recipe) Hash() string { return r.hash }

// Image is the tag the recipe's image gets: rtemu/NAME:<first 12 hex of
// the hash>.
func (r *Recipe) Image() string { return "rtemu/" + r.Name + ":" + r.hash[:12] }

// BuildCommand is the command that builds the recipe's image, for messages.
func (r *Recipe) BuildCommand() string { return "rtemu templates build " + r.Name }

// buildContext is the recipe as a tar stream. Embedded files carry no
// mode, so a file starting with #! is made executable: the recipe's
// scripts need no chmod layer.
func (r *Recipe) buildContext() (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range r.fileNames() {
		b := r.files[name]
		mode := int64(0o644)
		if bytes.HasPrefix(b, []byte("#!")) {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: path.Clean(name), Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}

// Engine is what building needs of the container engine.
// *docker.Driver implements it.
type Engine interface {
	ImageLabels(ctx context.Context, ref string) (map[string]string, error)
	Build(ctx context.Context, spec docker.BuildSpec, progress func(string)) (string, error)
}

// Builder builds template images. Builds of the same image at the same
// time (two creates, or a create and the CLI) share one build.
type Builder struct {
	engine  Engine
	recipes []*Recipe
	group   singleflight.Group
}

// NewBuilder makes a Builder of rtemu's recipes on an engine.
func NewBuilder(engine Engine) *Builder { return &Builder{engine: engine, recipes: recipes} }

// Result says what Build did.
type Result struct {
	Image string
	// Built is false when the image was there already, up to date.
	Built bool
	// Base is the image the build (or the earlier one) started from.
	Base string
}

// Build makes sure the template's image exists, building it (and its
// parent first) when it does not. base is the image to start from: ""
// keeps an image already built from any base and starts a new build from
// DefaultBase; a base different from the one an existing image was built
// from builds it again from that base.
func (b *Builder) Build(ctx context.Context, name, base string, progress func(string)) (Result, error) {
	r, err := lookup(b.recipes, name)
	if err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	from := base
	if r.Parent != "" {
		parent, err := b.Build(ctx, r.Parent, base, progress)
		if err != nil {
			return Result{}, err
		}
		from, base = parent.Image, parent.Base
	} else if from == "" {
		from = DefaultBase
	}
	labels, err := b.engine.ImageLabels(ctx, r.Image())
	switch {
	case err == nil && (base == "" || labels[LabelBase] == base):
		progress(fmt.Sprintf("%s is up to date (%s, built from %s)", r.Name, r.Image(), labels[LabelBase]))
		return Result{Image: r.Image(), Base: labels[LabelBase]}, nil
	case err != nil && !errors.Is(err, docker.ErrNotFound):
		return Result{}, err
	}
	if base == "" {
		base = from
	}
	key := r.Image() + "\x00" + base
	v, err, _ := b.group.Do(key, func() (any, error) {
		progress(fmt.Sprintf("building %s as %s from %s", r.Name, r.Image(), from))
		tarball, err := r.buildContext()
		if err != nil {
			return nil, err
		}
		_, err = b.engine.Build(ctx, docker.BuildSpec{
			Context: tarball, Tag: r.Image(), Args: map[string]string{"BASE": from},
			Labels: map[string]string{LabelTemplate: r.Name, LabelRecipe: r.Hash(), LabelBase: base},
		}, progress)
		if err != nil {
			return nil, fmt.Errorf("build template %s: %w", r.Name, err)
		}
		return Result{Image: r.Image(), Built: true, Base: base}, nil
	})
	if err != nil {
		return Result{}, err
	}
	return v.(Result), nil
}

// BuildFunc adapts the Builder to the lifecycle service, which builds a
// missing template image at its first create from the default base.
func (b *Builder) BuildFunc() func(ctx context.Context, recipe string, progress func(string)) error {
	return func(ctx context.Context, recipe string, progress func(string)) error {
		_, err := b.Build(ctx, recipe, "", progress)
		return err
	}
}
