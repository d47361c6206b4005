package storagetest_test

import (
	"testing"

	"cartsync/shared/syncclient"
	"cartsync/shared/syncclient/storagetest"
)

func TestMemStorage(t *testing.T) {
	storagetest.TestStorage(t, func() syncclient.Storage { return syncclient.NewMemStorage() })
}
