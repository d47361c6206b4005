package syncserver_test

import (
	"testing"

	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

func TestMemBus(t *testing.T) {
	storetest.RunBus(t, func(t testing.TB) (a, b syncserver.Bus) {
		bus := syncserver.NewMemBus()
		t.Cleanup(func() {
			if err := bus.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return bus, bus
	})
}
