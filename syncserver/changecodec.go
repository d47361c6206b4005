package syncserver

import (
	"encoding/json"
	"fmt"
	"time"
)

// EncodeChange gives the JSON a store keeps for a change: its op, and its
// warnings (nil for none, to be stored as NULL).
func EncodeChange(ch Change) (op, warnings []byte, err error) {
	if op, err = json.Marshal(ch.Op); err != nil {
		return nil, nil, fmt.Errorf("encode op: %w", err)
	}
	if len(ch.Warnings) > 0 {
		if warnings, err = json.Marshal(ch.Warnings); err != nil {
			return nil, nil, fmt.Errorf("encode warnings: %w", err)
		}
	}
	return op, warnings, nil
}

// DecodeChange rebuilds a change from what EncodeChange gave.
func DecodeChange(version uint64, op, warnings []byte, at time.Time) (Change, error) {
	ch := Change{Version: version, At: at.UTC()}
	if err := json.Unmarshal(op, &ch.Op); err != nil {
		return ch, fmt.Errorf("version %d: decode op: %w", version, err)
	}
	if warnings != nil {
		if err := json.Unmarshal(warnings, &ch.Warnings); err != nil {
			return ch, fmt.Errorf("version %d: decode warnings: %w", version, err)
		}
	}
	return ch, nil
}

// CheckRunsOn returns ErrCompacted unless changes, read from a gap-free log
// trimmed from its oldest end, run on from since+1: otherwise the start was
// compacted away.
func CheckRunsOn(changes []Change, since uint64) error {
	for i, ch := range changes {
		if ch.Version != since+1+uint64(i) {
			return ErrCompacted
		}
	}
	return nil
}
