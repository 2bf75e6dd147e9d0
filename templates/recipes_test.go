package templates

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/rtemu-dev/rtemu/engine/docker"
)

func testRecipes(t *testing.T, files map[string]string) []*Recipe {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	rs, err := load(fsys, []recipeEntry{{"base", ""}, {"desk", "base"}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var sampleFiles = map[string]string{
	"recipes/base/Dockerfile": "ARG BASE\nFROM ${BASE}\n",
	"recipes/desk/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY start /start\n",
	"recipes/desk/start":      "#!/bin/sh\necho start\n",
	"recipes/desk/index.html": "<!doctype html>",
}

// TestRecipeHash: the tag is a hash of the recipe's files; changing any
// file of a recipe, or of its parent, changes it; nothing else does.
func TestRecipeHash(t *testing.T) {
	t.Parallel()
	orig := testRecipes(t, sampleFiles)
	again := testRecipes(t, sampleFiles)
	for i := range orig {
		if orig[i].Image() != again[i].Image() {
			t.Fatalf("%s: same recipe, tags %s and %s", orig[i].Name, orig[i].Image(), again[i].Image())
		}
		if !regexp.MustCompile(`^rtemu/` + orig[i].Name + `:[0-9a-f]{12}$`).MatchString(orig[i].Image()) {
			t.Errorf("tag %q", orig[i].Image())
		}
	}
	tests := []struct {
		name                  string
		file, body            string
		baseChanges, deskOnly bool
	}{
		{"parent Dockerfile", "recipes/base/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN true\n", true, false},
		{"child script", "recipes/desk/start", "#!/bin/sh\necho other\n", false, true},
		{"child new file", "recipes/desk/extra", "x", false, true},
	}
	for _, tt := range tests {
		files := map[string]string{}
		for k, v := range sampleFiles {
			files[k] = v
		}
		files[tt.file] = tt.body
		changed := testRecipes(t, files)
		if got := changed[0].Image() != orig[0].Image(); got != tt.baseChanges {
			t.Errorf("%s: base tag changed = %v, want %v", tt.name, got, tt.baseChanges)
		}
		if changed[1].Image() == orig[1].Image() {
			t.Errorf("%s: desk tag did not change", tt.name)
		}
	}
}

// TestBuildContext: the context holds every file of the recipe; scripts
// (#!) are executable, the rest is not.
func TestBuildContext(t *testing.T) {
	t.Parallel()
	desk := testRecipes(t, sampleFiles)[1]
	buf, err := desk.buildContext()
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int64{}
	tr := tar.NewReader(buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	want := map[string]int64{"Dockerfile": 0o644, "index.html": 0o644, "start": 0o755}
	if fmt.Sprint(modes) != fmt.Sprint(want) {
		t.Errorf("context modes %v, want %v", modes, want)
	}
}

// TestRealRecipes: the recipes in the binary load, the desktop builds on
// base-ubuntu, and its image says what to start.
func TestRealRecipes(t *testing.T) {
	t.Parallel()
	d, err := Lookup("desktop-ubuntu")
	if err != nil || d.Parent != "base-ubuntu" {
		t.Fatalf("desktop-ubuntu: %+v, %v", d, err)
	}
	if !strings.Contains(string(d.files["Dockerfile"]), "LABEL "+docker.LabelStart+"=/usr/local/bin/rtemu-desktop-start") {
		t.Error("the desktop recipe does not label its start program")
	}
	if _, err := Lookup("nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup(nope) = %v", err)
	}
}

// fakeEngine is an engine's image store, for the Builder's decisions.
type fakeEngine struct {
	mu     sync.Mutex
	images map[string]map[string]string // tag → labels
	builds []string                     // "tag from BASE"
	fail   error
}

func (f *fakeEngine) ImageLabels(_ context.Context, ref string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.images[ref]
	if !ok {
		return nil, fmt.Errorf("inspect %s: %w", ref, docker.ErrNotFound)
	}
	return l, nil
}

func (f *fakeEngine) Build(_ context.Context, spec docker.BuildSpec, progress func(string)) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	if _, err := io.ReadAll(spec.Context); err != nil {
		return "", err
	}
	progress("Step 1/1 : FROM " + spec.Args["BASE"])
	f.builds = append(f.builds, spec.Tag+" from "+spec.Args["BASE"])
	f.images[spec.Tag] = spec.Labels
	return "sha256:x", nil
}

// TestBuilder: what is built when, table-driven over the engine's state.
func TestBuilder(t *testing.T) {
	t.Parallel()
	rs := testRecipes(t, sampleFiles)
	base, desk := rs[0].Image(), rs[1].Image()
	label := func(name, from string) map[string]string {
		return map[string]string{LabelTemplate: name, LabelBase: from}
	}
	tests := []struct {
		name       string
		have       map[string]map[string]string
		build, arg string
		want       []string
	}{
		{"nothing built, default base", nil, "desk", "",
			[]string{base + " from " + DefaultBase, desk + " from " + base}},
		{"nothing built, offline base", nil, "desk", "debian:local",
			[]string{base + " from debian:local", desk + " from " + base}},
		{"parent built, child missing", map[string]map[string]string{base: label("base", "debian:local")}, "desk", "",
			[]string{desk + " from " + base}},
		{"both built, no base asked: unchanged", map[string]map[string]string{base: label("base", "debian:local"), desk: label("desk", "debian:local")},
			"desk", "", nil},
		{"both built from the same base: unchanged", map[string]map[string]string{base: label("base", "debian:local"), desk: label("desk", "debian:local")},
			"desk", "debian:local", nil},
		{"another base: both again", map[string]map[string]string{base: label("base", "debian:local"), desk: label("desk", "debian:local")},
			"desk", "ubuntu:24.04", []string{base + " from ubuntu:24.04", desk + " from " + base}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng := &fakeEngine{images: map[string]map[string]string{}}
			for k, v := range tt.have {
				eng.images[k] = v
			}
			b := &Builder{engine: eng, recipes: rs}
			var lines []string
			res, err := b.Build(context.Background(), tt.build, tt.arg, func(l string) { lines = append(lines, l) })
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(eng.builds) != fmt.Sprint(tt.want) {
				t.Errorf("builds %q, want %q", eng.builds, tt.want)
			}
			if res.Image != desk || res.Built != (len(tt.want) > 0) {
				t.Errorf("result %+v", res)
			}
			if len(tt.want) > 0 && !strings.Contains(strings.Join(lines, "\n"), "Step 1/1") {
				t.Errorf("no build progress shown: %q", lines)
			}
			if l := eng.images[desk]; l[LabelRecipe] != rs[1].Hash() && len(tt.want) > 0 {
				t.Errorf("desk labels %v", l)
			}
		})
	}
	t.Run("build error", func(t *testing.T) {
		eng := &fakeEngine{images: map[string]map[string]string{}, fail: errors.New("apt-get failed")}
		_, err := (&Builder{engine: eng, recipes: rs}).Build(context.Background(), "desk", "", nil)
		if err == nil || !strings.Contains(err.Error(), "build template base: apt-get failed") {
			t.Errorf("err = %v", err)
		}
	})
}
