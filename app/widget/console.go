package widget

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// consoleLogger is the widget's syncclient.Logger: the browser's console,
// a line per entry, the message then its key=value pairs, at info, warn
// and error (debug is dropped, as slog's default logger drops it). The
// widget does not link log/slog for this.
type consoleLogger struct{}

func (consoleLogger) Debug(string, ...any)          {}
func (consoleLogger) Info(msg string, args ...any)  { toConsole("info", msg, args) }
func (consoleLogger) Warn(msg string, args ...any)  { toConsole("warn", msg, args) }
func (consoleLogger) Error(msg string, args ...any) { toConsole("error", msg, args) }

func toConsole(method, msg string, args []any) {
	app.Window().Get("console").Call(method, "cartsync: "+logLine(msg, args))
}

// logLine formats an entry as slog's text handler would its message and
// attributes: key=value, a value quoted when it is empty or holds spaces,
// quotes or '='; a key without a value is logged as !BADKEY=key.
func logLine(msg string, args []any) string {
	var b strings.Builder
	b.WriteString(msg)
	for i := 0; i < len(args); i += 2 {
		b.WriteByte(' ')
		if i+1 == len(args) {
			b.WriteString("!BADKEY=" + logValue(args[i]))
			break
		}
		b.WriteString(fmt.Sprint(args[i]) + "=" + logValue(args[i+1]))
	}
	return b.String()
}

func logValue(v any) string {
	s := fmt.Sprint(v)
	if s == "" || strings.ContainsAny(s, " \t\r\n\"=") {
		return strconv.Quote(s)
	}
	return s
}
