package cli

import (
	"strings"
	"testing"

	"github.com/rtemu-dev/rtemu/templates"
)

// templates build on the Kubernetes engine (flag or env) builds nothing: it
// says how to bring the template's image to the cluster's nodes, naming it,
// and fails; bad input is still a usage error.
func TestTemplatesBuildOnKubernetes(t *testing.T) {
	t.Parallel()
	r, err := templates.Lookup("base-ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	img := r.Image()
	home := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"flag", nil, []string{"templates", "build", "base-ubuntu", "--engine", "kubernetes"}, 1,
			[]string{"the Kubernetes engine builds no images", "maps to " + img, "rtemu templates build base-ubuntu --engine docker",
				"docker push REGISTRY/", "--template base-ubuntu=REGISTRY/", "kind load docker-image " + img}},
		{"env", map[string]string{"RTEMU_ENGINE": "Kubernetes"}, []string{"templates", "build", "base-ubuntu"}, 1,
			[]string{"the Kubernetes engine builds no images", "maps to " + img}},
		{"unknown recipe", map[string]string{"RTEMU_ENGINE": "kubernetes"}, []string{"templates", "build", "nosuch"}, 2,
			[]string{"nosuch"}},
		{"unknown engine", nil, []string{"templates", "build", "base-ubuntu", "--engine", "podman"}, 2,
			[]string{`"podman" is not docker or kubernetes`}},
		{"unknown engine env", map[string]string{"RTEMU_ENGINE": "podman"}, []string{"templates", "build", "base-ubuntu"}, 2,
			[]string{"RTEMU_ENGINE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": home}
			for k, v := range tt.env {
				env[k] = v
			}
			res := run(t, env, tt.args...)
			if res.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", res.code, tt.code, res.stdout, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing (no build ran)", res.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
		})
	}
}
