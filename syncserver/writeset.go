package syncserver

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// A WriteSet is what a durable store writes for one cart of a batch, with
// the policy already applied: the cart encoded, only the seqs that changed,
// the new changes encoded, and how far to trim the log. A store issues its
// statements from it and decides nothing (Prepare is the one place that
// does).
type WriteSet struct {
	ID string
	// Meta and the cart's version and JSON.
	Kind        string
	Version     int64
	State       []byte
	MergedInto  string
	UpdatedAt   time.Time // zero: none
	AbandonedAt time.Time // zero: none
	// Seqs are the last seqs that differ from the ones loaded, in client
	// id order.
	Seqs []SeqWrite
	// Log is the changes to append, oldest first.
	Log []LogWrite
	// TrimThrough: delete the logged changes with a version at or below
	// it (0: none). Versions are gap-free, so keeping the newest LogKeep
	// means cutting at the newest appended minus LogKeep.
	TrimThrough int64
	// Events are the cart events to record with the write.
	Events []Event
}

// SeqWrite is a client's new last seq.
type SeqWrite struct {
	Client string
	Seq    int64
}

// LogWrite is a change as a store logs it (EncodeChange).
type LogWrite struct {
	Version  int64
	Op       []byte
	Warnings []byte // nil for none
	At       time.Time
}

// Prepare turns w into the WriteSet a store writes. Numbers a store cannot
// hold (above math.MaxInt64) and a cart fn took away are errors: nothing
// of the batch is written.
func (w BatchWrite) Prepare() (WriteSet, error) {
	rec := w.Rec
	if rec == nil || rec.Cart == nil {
		return WriteSet{}, errors.New("fn left no cart")
	}
	ws := WriteSet{ID: w.ID, Kind: rec.Meta.Kind, MergedInto: rec.Meta.MergedInto,
		UpdatedAt: rec.Meta.UpdatedAt, AbandonedAt: rec.Meta.AbandonedAt, Events: rec.Events}
	var err error
	if ws.State, err = json.Marshal(rec.Cart); err != nil {
		return WriteSet{}, fmt.Errorf("encode cart: %w", err)
	}
	if ws.Version, err = toInt64("version", rec.Cart.Version); err != nil {
		return WriteSet{}, err
	}
	for client, seq := range rec.Seqs {
		if seq == w.Before[client] {
			continue
		}
		v, err := toInt64("seq", seq)
		if err != nil {
			return WriteSet{}, err
		}
		ws.Seqs = append(ws.Seqs, SeqWrite{client, v})
	}
	slices.SortFunc(ws.Seqs, func(a, b SeqWrite) int { return cmp.Compare(a.Client, b.Client) })
	var newest int64
	for _, ch := range rec.Appended {
		v, err := toInt64("change version", ch.Version)
		if err != nil {
			return WriteSet{}, err
		}
		op, warn, err := EncodeChange(ch)
		if err != nil {
			return WriteSet{}, err
		}
		ws.Log = append(ws.Log, LogWrite{Version: v, Op: op, Warnings: warn, At: ch.At})
		newest = max(newest, v)
	}
	if cut := newest - LogKeep; cut > 0 {
		ws.TrimThrough = cut
	}
	return ws, nil
}

func toInt64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%s %d out of range", what, v)
	}
	return int64(v), nil
}
