// An example of another module using the client engine: inside this
// repository the replace points at it; elsewhere, drop the replace and
// require a tagged version (go get github.com/cartsync/cartsync@latest).
module github.com/cartsync/cartsync/shared/syncclient/example/cartwatch

go 1.26.0

require github.com/cartsync/cartsync v0.0.0

require (
	github.com/coder/websocket v1.8.15 // indirect
	golang.org/x/text v0.42.0 // indirect
)

replace github.com/cartsync/cartsync => ../../../..
