//go:build !js || !wasm

package syncclient

import "log/slog"

// defaultLogger is Config.Logger's default outside the browser.
func defaultLogger() Logger { return slog.Default() }
