package dashboard_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// TestSecretsPanel: the secrets card lists names and metadata, never a
// value until Reveal is clicked; the reveal shows the value and is in the
// activity feed; a secret set while the page is open shows up live.
func TestSecretsPanel(t *testing.T) {
	t.Parallel()
	d := connect(t, emulatortest.New(t, emulatortest.WithFake()))
	const value = "sk-dash-7c1e-value"
	if st, out := d.call("POST", "/v1/secrets", map[string]any{"name": "openai_key", "value": value, "description": "for the agent", "scope": "sandboxes"}); st != 201 {
		t.Fatalf("create: %d %v", st, out)
	}
	d.openPage(openOpts{})
	d.live()
	body := `document.querySelector('#secrets-body')`
	d.waitFor("the secret's metadata", body+`?.innerText.includes('OPENAI_KEY') && `+body+`.innerText.includes('for the agent') && `+body+`.innerText.includes('sandboxes')`, 5*time.Second)
	if strings.Contains(js[string](d, `document.body.innerText`), value) {
		t.Fatal("the page shows a value before any reveal")
	}
	d.do(chromedp.Click(chromedp.CSS(`#secrets-body li[data-name="OPENAI_KEY"] .secret-reveal`)))
	d.waitFor("the revealed value", fmt.Sprintf(`document.querySelector('#secrets-body .secret-value')?.innerText === %q`, value), 5*time.Second)
	st, out := d.call("GET", "/v1/activity?"+url.Values{"event_type": {"secret.revealed"}, "resource_id": {"OPENAI_KEY"}}.Encode(), nil)
	if evs, _ := data(out)["events"].([]any); st != 200 || len(evs) != 1 {
		t.Fatalf("reveal events: %d %v", st, out)
	}
	d.do(chromedp.Click(chromedp.CSS(`#secrets-body li[data-name="OPENAI_KEY"] .secret-reveal`)))
	d.waitFor("the value hidden again", `!document.querySelector('#secrets-body .secret-value')`, 5*time.Second)

	if st, _ := d.call("POST", "/v1/secrets", map[string]any{"name": "GH_TOKEN", "value": "x", "category": "tool"}); st != 201 {
		t.Fatal("second create")
	}
	d.waitFor("the new secret, live", body+`.innerText.includes('GH_TOKEN') && document.querySelector('#secret-count').textContent === '2'`, 5*time.Second)
}
