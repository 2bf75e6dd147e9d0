package dashboard_test

import (
	"context"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// navigate loads url in the tab; see load.
func (d *dash) navigate(url string) {
	d.t.Helper()
	d.load(chromedp.Navigate(url))
}

// load runs a page load (Navigate, Reload). Chromium aborts a load with
// net::ERR_NETWORK_CHANGED when the host's network interfaces change, and
// Docker adds and removes one for every container that starts or stops on
// the machine (other tests' included): such a load is tried again, at most
// navigateTries times, as a user would reload.
func (d *dash) load(action chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	var err error
	for range navigateTries {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		err = chromedp.Do(ctx, action)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			break
		}
	}
	if err != nil {
		d.t.Fatalf("page: %v", err)
	}
}

const navigateTries = 3
