package syncserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/protocol"
)

// Domain errors become the same protocol errors on every route.
func TestFailureMapsDomainErrors(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	refused := protocol.Errorf(protocol.ErrForbidden, "merged")
	for _, tc := range []struct {
		err       error
		code      protocol.ErrorCode
		retryable bool
		cart      string
	}{
		{refused, protocol.ErrForbidden, false, ""},
		{fmt.Errorf("wrapped: %w", refused), protocol.ErrForbidden, false, ""},
		{ErrCartExpired, protocol.ErrCartExpired, false, "g_1"},
		{fmt.Errorf("load: %w", ErrCartExpired), protocol.ErrCartExpired, false, "g_1"},
		{fmt.Errorf("mutate cart g_1: %w", ErrCartGone), protocol.ErrInternal, true, ""},
		{context.Canceled, protocol.ErrInternal, true, ""},
		{errors.New("connection reset"), protocol.ErrInternal, true, ""},
	} {
		e := s.failure("store the operations", "g_1", tc.err)
		if e.Code != tc.code || e.Retryable != tc.retryable || e.Cart != tc.cart {
			t.Errorf("failure(%v) = %s retryable %v cart %q, want %s %v %q", tc.err, e.Code, e.Retryable, e.Cart, tc.code, tc.retryable, tc.cart)
		}
	}
	if a, b := s.failure("x", "g_1", ErrCartExpired), errCartExpired("g_1"); a.Message != b.Message {
		t.Errorf("cart_expired worded two ways: %q, %q", a.Message, b.Message)
	}
}

// Every code of protocol.md's error table has a constant, the HTTP status
// the table gives, and its retryable flag.
func TestErrorTableMatchesDocs(t *testing.T) {
	f, err := os.Open("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|.*\\| (yes|no) \\| .* \\| ([0-9]{3}|—) \\|$")
	known := errorCodes(t)
	seen := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := row.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		seen++
		code := protocol.ErrorCode(m[1])
		if !known[code] {
			t.Errorf("docs table has %s, which the protocol package does not define", code)
			continue
		}
		delete(known, code)
		if m[3] == "—" {
			continue // websocket only
		}
		want, _ := strconv.Atoi(m[3])
		if got := HTTPStatus(code); got != want {
			t.Errorf("%s: HTTP %d, docs say %d", code, got, want)
		}
		if got := protocol.Errorf(code, "x").Retryable; got != (m[2] == "yes") {
			t.Errorf("%s: retryable %v, docs say %s", code, got, m[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if seen < 15 {
		t.Fatalf("read %d rows of the error table; the test no longer finds it", seen)
	}
	for c := range known {
		t.Errorf("%s is defined but not in protocol.md's error table", c)
	}
	if HTTPStatus("no_such_code") != http.StatusInternalServerError {
		t.Error("an unknown code is not a 500")
	}
}

// errorCodes reads the ErrorCode constants of the protocol package from its
// source.
func errorCodes(t testing.TB) map[protocol.ErrorCode]bool {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "../shared/protocol/protocol.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[protocol.ErrorCode]bool{}
	for _, d := range file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "ErrorCode" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					codes[protocol.ErrorCode(s)] = true
				}
			}
		}
	}
	if len(codes) < 15 {
		t.Fatalf("found %d error codes in protocol.go; the test no longer reads it", len(codes))
	}
	return codes
}
