package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/cartsync/cartsync/syncserver/storetest"
)

// An event that had failed attempts before migration 0004 (no tried_since)
// keeps the window it had: it counts from its at. One never tried starts a
// series at its first claim.
func TestClaimTriedSinceOfOldRows(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "carts.db"))
	defer s.Close()
	storetest.ClaimTriedSinceOfOldRows(t, s, func(id string) error {
		_, err := s.w.ExecContext(t.Context(), `UPDATE events SET attempts = 3, tried_since = NULL WHERE id = ?`, id)
		return err
	})
}
