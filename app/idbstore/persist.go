//go:build js && wasm

package idbstore

import (
	"context"
	"fmt"
	"syscall/js"
)

// RequestPersistence asks the browser to exempt the site's storage from
// eviction under storage pressure (navigator.storage.persist) and reports
// whether it is. It reports false where the API is missing. Safari's
// seven-day deletion of script-writable storage may apply regardless, so
// the server's copy of the cart remains the one that counts.
func RequestPersistence(ctx context.Context) (bool, error) {
	navigator, err := property(js.Global(), "navigator")
	if err != nil || !navigator.Truthy() {
		return false, nil
	}
	storage, err := property(navigator, "storage")
	if err != nil || !storage.Truthy() {
		return false, nil
	}
	if persist, err := property(storage, "persist"); err != nil || persist.Type() != js.TypeFunction {
		return false, nil
	}

	type result struct {
		persisted bool
		err       error
	}
	done := make(chan result, 1)
	var resolve, reject js.Func
	// Each callback releases both, so that none is released before the
	// promise settles, even when ctx ends first.
	settle := func(r result) {
		done <- r
		resolve.Release()
		reject.Release()
	}
	resolve = js.FuncOf(func(_ js.Value, args []js.Value) any {
		settle(result{persisted: len(args) > 0 && args[0].Truthy()})
		return nil
	})
	reject = js.FuncOf(func(_ js.Value, args []js.Value) any {
		reason := "no reason"
		if len(args) > 0 {
			reason = js.Global().Get("String").Invoke(args[0]).String()
		}
		settle(result{err: fmt.Errorf("refused: %s", reason)})
		return nil
	})
	err = try(func() { storage.Call("persist").Call("then", resolve, reject) })
	if err != nil {
		resolve.Release()
		reject.Release()
		return false, fmt.Errorf("request persistent storage: %w", err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			return false, fmt.Errorf("request persistent storage: %w", r.err)
		}
		return r.persisted, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
