package memstore_test

import (
	"testing"

	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.RunStore(t, func(testing.TB) syncserver.Store { return memstore.New() })
}
