//go:build js && wasm

// Command app is the cart widget compiled to WebAssembly (web/app.wasm).
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/app/widget"
)

func main() {
	widget.Routes()
	app.RunWhenOnBrowser()
}
