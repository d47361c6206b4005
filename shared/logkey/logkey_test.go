package logkey_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// The log calls of the server, the client engine and the widget name their
// attributes with this package's constants, not string literals, so that
// one key means one thing.
func TestLogCallsUseTheseKeys(t *testing.T) {
	calls := 0
	for _, root := range []string{"../../syncserver", "../../shared", "../../app"} {
		calls += logCalls(t, root)
	}
	if calls < 80 {
		t.Fatalf("found %d log calls under syncserver/, shared/ and app/; the test no longer finds them", calls)
	}
}

// logCalls checks the log calls in the Go files under root and returns how
// many it found.
func logCalls(t *testing.T, root string) int {
	t.Helper()
	calls := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isLogCall(call) {
				return true
			}
			calls++
			for i := 1; i < len(call.Args); i += 2 {
				if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					t.Errorf("%s: log key %s is a literal; use a logkey constant", fset.Position(lit.Pos()), lit.Value)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

// isLogCall reports whether call is x.Debug/Info/Warn/Error(...) on a
// logger (an expression ending in log, Logger or logger).
func isLogCall(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	switch sel.Sel.Name {
	case "Debug", "Info", "Warn", "Error":
	default:
		return false
	}
	var name string
	switch x := sel.X.(type) {
	case *ast.Ident:
		name = x.Name
	case *ast.SelectorExpr:
		name = x.Sel.Name
	}
	return name == "log" || name == "Logger" || name == "logger"
}
