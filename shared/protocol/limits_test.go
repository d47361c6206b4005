package protocol

import (
	"errors"
	"strconv"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

// TestSeqAboveInt64Invalid: JSON carries any uint64, but stores keep seqs as
// int64; a seq at or above 2^63 is refused as invalid at decoding, not
// accepted and then failed by the store with a retryable internal error.
func TestSeqAboveInt64Invalid(t *testing.T) {
	for _, seq := range []uint64{1 << 63, 1<<64 - 1} {
		in := `{"type":"push","ops":[{"client":"c","seq":` + strconv.FormatUint(seq, 10) + `,"kind":"clear"}]}`
		_, err := Decode([]byte(in))
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != ErrInvalid || pe.Retryable {
			t.Errorf("seq %d: Decode = %v, want non-retryable invalid", seq, err)
		}
	}
	in := `{"type":"push","ops":[{"client":"c","seq":` + strconv.FormatUint(cart.MaxSeq, 10) + `,"kind":"clear"}]}`
	if _, err := Decode([]byte(in)); err != nil {
		t.Errorf("seq 2^63-1: Decode = %v, want accepted", err)
	}
}
