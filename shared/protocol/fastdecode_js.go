//go:build js

package protocol

// decodeFast declines every message: the widget reads messages the server
// sends, which the fast path of the server (fastdecode.go) does not read,
// and its wasm is smaller without it.
func decodeFast([]byte, *Message) bool { return false }
