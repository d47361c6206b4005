//go:build !js || !wasm

package widget

// sockets is sockets_js.go's, which outside the browser has no sockets to
// keep.
type sockets struct{}

func (*sockets) track()    {}
func (*sockets) untrack()  {}
func (*sockets) closeAll() {}
