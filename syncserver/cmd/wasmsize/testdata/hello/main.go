// Command hello is the tiny program TestReportOfATinyBuild builds to wasm.
package main

import "github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet"

func main() { println(greet.Hello("wasm")) }
