package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// TemplateBuilder builds the image of one of rtemu's template recipes
// (templates.Builder behind it), calling progress with the build's output.
type TemplateBuilder func(ctx context.Context, recipe string, progress func(string)) error

// buildTemplateImage makes a recipe template's missing image at its first
// create, as a plain image would be pulled: from the recipe's default base,
// which needs a registry. Offline the build fails at once, and the error
// says how to build from a local image.
func (s *Service) buildTemplateImage(ctx context.Context, tpl Template, log *slog.Logger) error {
	howto := fmt.Sprintf("build it with `rtemu templates build %s` (offline: add --base with a local Debian or Ubuntu image), "+
		"or map the template to an image with --template %s=IMAGE", tpl.Recipe, tpl.Name)
	if s.build == nil {
		return fmt.Errorf("image %s for template %s is not built; %s", tpl.Image, tpl.Name, howto)
	}
	// Creates that need the image at the same time share one build, as
	// they share a pull.
	_, err, _ := s.pulls.Do(tpl.Image, func() (any, error) {
		log.Info("building template image at its first use", "template", tpl.Name, "image", tpl.Image)
		var summary buildProgress
		s.imageProgress(tpl.Image, "building "+tpl.Name)
		return nil, s.build(ctx, tpl.Recipe, func(line string) {
			if text, ok := summary.line(line); ok {
				s.imageProgress(tpl.Image, text)
			}
			// The build's steps, not every line apt prints.
			if strings.HasPrefix(line, "Step ") || strings.HasPrefix(line, "building ") {
				log.Info("template build", "template", tpl.Name, "progress", line)
			}
		})
	})
	if err != nil {
		return fmt.Errorf("image %s for template %s is not built, and building it failed (%v); %s", tpl.Image, tpl.Name, err, howto)
	}
	log.Info("built template image", "template", tpl.Name, "image", tpl.Image)
	return nil
}
