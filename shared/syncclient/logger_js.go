//go:build js && wasm

package syncclient

// defaultLogger is Config.Logger's default in the browser: nothing, so
// that log/slog is not linked into a wasm that does not use it. Pass a
// Logger to see the engine's warnings.
func defaultLogger() Logger { return discard{} }

// discard is a Logger that logs nothing.
type discard struct{}

func (discard) Debug(string, ...any) {}
func (discard) Info(string, ...any)  {}
func (discard) Warn(string, ...any)  {}
func (discard) Error(string, ...any) {}
