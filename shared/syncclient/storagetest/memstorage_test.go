package storagetest_test

import (
	"testing"

	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/shared/syncclient/storagetest"
)

func TestMemStorage(t *testing.T) {
	storagetest.TestStorage(t, func() syncclient.Storage { return syncclient.NewMemStorage() })
}
