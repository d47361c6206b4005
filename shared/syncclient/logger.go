package syncclient

import "reflect"

// Logger is what the engine logs to; *slog.Logger is one. Each method
// takes a message and then alternating keys (shared/logkey) and values, as
// slog's do. An interface rather than *slog.Logger so that the browser's
// widget need not link log/slog: it logs to the console itself.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// nilPointer reports whether l is a nil pointer in a Logger, such as a
// nil *slog.Logger: Config.Logger takes that for unset too, as it did
// when its type was *slog.Logger.
func nilPointer(l Logger) bool {
	v := reflect.ValueOf(l)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
