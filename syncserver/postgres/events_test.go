package postgres

import (
	"testing"

	"github.com/cartsync/cartsync/syncserver/storetest"
)

// An event that had failed attempts before migration 0006 (no tried_since)
// keeps the window it had: it counts from its at. One never tried starts a
// series at its first claim.
func TestClaimTriedSinceOfOldRows(t *testing.T) {
	s := openStore(t, schemaURL(t))
	defer s.Close()
	storetest.ClaimTriedSinceOfOldRows(t, s, func(id string) error {
		_, err := s.pool.Exec(t.Context(), `UPDATE events SET attempts = 3, tried_since = NULL WHERE id = $1`, id)
		return err
	})
}
