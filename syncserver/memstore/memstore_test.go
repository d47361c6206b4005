package memstore_test

import (
	"testing"

	"cartsync/syncserver"
	"cartsync/syncserver/memstore"
	"cartsync/syncserver/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.RunStore(t, func(testing.TB) syncserver.Store { return memstore.New() })
}
