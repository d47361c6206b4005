package protocol

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeKeepsTheID: a message that parses but is refused still gives
// its id, so that the error can answer it (docs/protocol.md, Messages).
func TestDecodeKeepsTheID(t *testing.T) {
	manyOps := `[` + strings.TrimSuffix(strings.Repeat(`{"client":"c","seq":1,"kind":"clear"},`, MaxOpsPerPush+1), ",") + `]`
	manyClients := `[` + strings.TrimSuffix(strings.Repeat(`"c",`, MaxClientsPerSync+1), ",") + `]`
	tests := []struct {
		name   string
		in     string
		code   ErrorCode
		wantID string
	}{
		{"future protocol", `{"type":"hello","id":"h1","protocol":99,"client":"c"}`, ErrUnsupportedVersion, "h1"},
		{"negative protocol", `{"type":"hello","id":"h1","protocol":-1,"client":"c"}`, ErrUnsupportedVersion, "h1"},
		{"hello without protocol", `{"type":"hello","id":"h1","client":"c"}`, ErrInvalid, "h1"},
		{"hello with protocol 0", `{"type":"hello","id":"h1","protocol":0,"client":"c"}`, ErrInvalid, "h1"},
		{"bad client id", `{"type":"hello","id":"h2","protocol":2,"client":""}`, ErrInvalid, "h2"},
		{"bad policy", `{"type":"hello","id":"h3","protocol":2,"client":"c","user_token":"t","policy":"sum"}`, ErrInvalid, "h3"},
		{"empty push", `{"type":"push","id":"p1","ops":[]}`, ErrInvalid, "p1"},
		{"too many ops", `{"type":"push","id":"p2","ops":` + manyOps + `}`, ErrTooLarge, "p2"},
		{"too many sync clients", `{"type":"sync","id":"s1","clients":` + manyClients + `}`, ErrTooLarge, "s1"},
		{"bad sync client", `{"type":"sync","id":"s2","clients":[""]}`, ErrInvalid, "s2"},
		{"bad choose", `{"type":"choose","id":"c1","policy":"choose"}`, ErrInvalid, "c1"},
		{"unknown type", `{"type":"teleport","id":"x1"}`, ErrUnknownType, "x1"},
		{"no type", `{"id":"n1"}`, ErrMalformed, "n1"},
		{"wrong field type", `{"type":"push","id":"p3","ops":"many"}`, ErrMalformed, "p3"},
		// Nothing to read an id from.
		{"not json", `{"type":"push","id":"p4",`, ErrMalformed, ""},
		{"oversized", `{"type":"ping","id":"big","t":1,"pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Decode = %v, want code %s", err, tt.code)
			}
			id := ""
			if m != nil {
				id = m.ID
			}
			if id != tt.wantID {
				t.Fatalf("id with the error = %q, want %q", id, tt.wantID)
			}
		})
	}
}
