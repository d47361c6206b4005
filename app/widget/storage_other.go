//go:build !js || !wasm

package widget

import (
	"context"

	"github.com/cartsync/cartsync/shared/syncclient"
)

// openStorage returns the storage of the cart and, if it is not kept
// across visits, a note saying so. Outside the browser there is no
// IndexedDB: the cart is kept in memory.
func openStorage(context.Context, syncclient.Logger) (syncclient.Storage, string) {
	return syncclient.NewMemStorage(), noteMemory
}
