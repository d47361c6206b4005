//go:build js && wasm

package widget

import (
	"context"
	"errors"

	"github.com/cartsync/cartsync/app/idbstore"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// storageName is the IndexedDB database of the cart.
const storageName = "cartsync"

// openStorage returns the storage of the cart and, if it is not kept
// across visits, a note saying so: the IndexedDB database storageName,
// shared by the tabs, or memory where IndexedDB is missing (some private
// modes) or cannot be opened.
func openStorage(ctx context.Context, log syncclient.Logger) (syncclient.Storage, string) {
	s, err := idbstore.Open(ctx, storageName)
	if err != nil {
		if !errors.Is(err, idbstore.ErrUnavailable) {
			log.Error("open IndexedDB; keeping the cart in memory", logkey.Err, err)
		}
		return syncclient.NewMemStorage(), noteMemory
	}
	// Ask once that the browser not evict the cart under storage pressure.
	if ok, err := idbstore.RequestPersistence(ctx); err != nil || !ok {
		log.Info("persistent storage not granted", logkey.Err, err)
	}
	return s, ""
}
