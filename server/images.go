package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rtemu-dev/rtemu/sandbox"
	"github.com/rtemu-dev/rtemu/templates"
)

// imagePresence is what telling a template's image needs of an engine.
type imagePresence interface {
	ImagePresent(ctx context.Context, ref string) (bool, error)
}

// templateImage is the image a template's sandboxes are made from now, as
// the service picks it (its own, or its fallback while a recipe's image is
// not built), whether the engine has it, and, when it does not, what the
// first create does and the command that makes it ready now.
type templateImage struct {
	Image   string
	Present bool
	// Note says which image is in effect when it is a fallback.
	Note string
	// Missing says what happens without it, and how to have it now.
	Missing string
}

func checkTemplate(ctx context.Context, eng imagePresence, t sandbox.Template) (templateImage, error) {
	ti := templateImage{Image: t.Image}
	own, err := eng.ImagePresent(ctx, t.Image)
	if err != nil || own {
		ti.Present = own
		return ti, err
	}
	switch {
	case t.Fallback != "":
		ti.Image = t.Fallback
		ti.Note = fmt.Sprintf(" (until its recipe's image %s is built: rtemu templates build %s)", t.Image, t.Recipe)
		if ti.Present, err = eng.ImagePresent(ctx, t.Fallback); err != nil || ti.Present {
			return ti, err
		}
		ti.Missing = fmt.Sprintf("the first create pulls it (a registry is needed); have it now: docker pull %s, "+
			"or offline: rtemu templates build %s --base LOCAL_DEBIAN_OR_UBUNTU_IMAGE, or --template %s=LOCAL_IMAGE",
			t.Fallback, t.Recipe, t.Name)
	case t.Recipe != "":
		ti.Missing = fmt.Sprintf("the first create builds it from %s (a registry is needed, and minutes); build it now: "+
			"rtemu templates build %s (offline: add --base LOCAL_DEBIAN_OR_UBUNTU_IMAGE)", templates.DefaultBase, t.Recipe)
	default:
		ti.Missing = fmt.Sprintf("the first create pulls it (a registry is needed); have it now: docker pull %s, "+
			"or map the template to a local image: --template %s=LOCAL_IMAGE", t.Image, t.Name)
	}
	return ti, nil
}

// warnMissingImages logs, at start, each template whose image in effect
// the engine does not have, with the command that fixes it.
func warnMissingImages(ctx context.Context, eng imagePresence, tpls []sandbox.Template, log *slog.Logger) {
	for _, t := range tpls {
		ti, err := checkTemplate(ctx, eng, t)
		if err != nil {
			return // the engine does not answer: /health and creates say so
		}
		if !ti.Present {
			log.Warn("a template's image is not here: "+ti.Missing, "template", t.Name, "image", ti.Image)
		}
	}
}
