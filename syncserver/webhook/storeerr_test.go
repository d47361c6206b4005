package webhook

import (
	"strings"
	"testing"

	"github.com/cartsync/cartsync/syncserver"
)

// TestClaimErrors checks that Run survives a failing store: it logs the
// failures, waits and claims again.
func TestClaimErrors(t *testing.T) {
	r := newReceiver(t, nil)
	store := &fakeStore{failClaims: 3}
	evs := cartEvents(2, 2)
	store.add(evs...)
	cfg, _, logs := testConfig(store, r.srv.URL)
	start(t, newDeliverer(t, cfg))
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 1)
	if n := strings.Count(logs.String(), "claiming events failed"); n != 3 {
		t.Errorf("%d claim failures logged, want 3:\n%s", n, logs)
	}
}
