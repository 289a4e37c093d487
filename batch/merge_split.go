package batch

import "fmt"

// Merge returns a new batch with the rows of batches in order: sizes and
// paddings add up, and all padding goes at the end. Merge() returns New().
// Empty batches contribute only their padding. Every non-empty batch must
// have the template of the first non-empty one (ErrIncompatible) and every
// batch the key of the first (ErrKeyMismatch). The inputs are not modified
// and no tensor is copied.
func Merge(batches ...*Batch) (*Batch, error) {
	out := New()
	if len(batches) == 0 {
		return out, nil
	}
	if only := soleBatch(batches); only != nil {
		return only, nil
	}
	out.key = batches[0].key
	n := 0
	for _, b := range batches {
		if b.key != out.key {
			return nil, fmt.Errorf("%w: %q and %q", ErrKeyMismatch, out.key, b.key)
		}
		if b.tmpl != nil {
			if out.tmpl == nil {
				out.tmpl = b.tmpl
			} else if !out.tmpl.Equal(b.tmpl) {
				return nil, &IncompatibleError{Op: "merge", Want: out.tmpl, Got: b.tmpl, Index: -1}
			}
		}
		n += len(b.entries)
		out.size += b.size
		out.pad += b.pad
	}
	if n > 0 {
		out.entries = make([]entry, 0, n)
		for _, b := range batches {
			out.entries = append(out.entries, b.entries...)
		}
	}
	return out, nil
}

// soleBatch returns a copy of the one batch in batches that has entries
// or padding when all others are empty New() batches with its key, else
// nil. Merging with empty batches then returns a batch equal to the
// non-empty one, as in Nx.
func soleBatch(batches []*Batch) *Batch {
	var only *Batch
	for _, b := range batches {
		if len(b.entries) == 0 && b.pad == 0 && b.size == 0 {
			continue
		}
		if only != nil {
			return nil
		}
		only = b
	}
	if only == nil {
		return nil
	}
	for _, b := range batches {
		if b.key != only.key || (b != only && b.tmpl != nil && !b.tmpl.Equal(only.tmpl)) {
			return nil // let Merge report it
		}
	}
	cp := *only
	if len(only.entries) == 1 && &only.entries[0] == &only.one[0] {
		cp.entries = cp.one[:1:1]
	} else {
		cp.entries = only.entries[:len(only.entries):len(only.entries)]
	}
	return &cp
}

// Split returns the first n rows of b as left and the rest as right; b is
// not modified and no tensor is copied. Both halves keep b's template and
// key. n <= 0 returns ErrInvalidSplit.
//
// Padding follows Nx: when n < b.Size(), left has no padding and right
// keeps b's. When n >= b.Size(), left holds every row and right none, and
// b's padding is shared so that left ends at n rows where it can:
// right gets max(Size+Padding-n, 0) and left the remainder. For example,
// with 5 rows and padding 3: Split(5) pads 0|3, Split(6) 1|2, Split(10) 3|0.
func (b *Batch) Split(n int) (left, right *Batch, err error) {
	if n <= 0 {
		return nil, nil, fmt.Errorf("%w, got %d", ErrInvalidSplit, n)
	}
	left = &Batch{key: b.key, tmpl: b.tmpl}
	right = &Batch{key: b.key, tmpl: b.tmpl}
	if n >= b.size {
		right.pad = max(b.size+b.pad-n, 0)
		left.pad = b.pad - right.pad
		left.size = b.size
		// A full slice expression, so that appending to one batch never
		// writes into an array another batch shares.
		left.entries = b.entries[:len(b.entries):len(b.entries)]
		return left, right, nil
	}
	right.pad = b.pad
	left.size, right.size = n, b.size-n
	seen := 0
	for i, e := range b.entries {
		if seen+e.rows <= n {
			seen += e.rows
			continue
		}
		// Entry i straddles the boundary (or starts right at it).
		inLeft := n - seen
		left.entries = make([]entry, i, i+1)
		copy(left.entries, b.entries[:i])
		right.entries = make([]entry, 0, len(b.entries)-i)
		if inLeft > 0 {
			head, tail := e, e
			head.rows = inLeft
			tail.start += inLeft
			tail.rows -= inLeft
			left.entries = append(left.entries, head)
			right.entries = append(right.entries, tail)
		} else {
			right.entries = append(right.entries, e)
		}
		right.entries = append(right.entries, b.entries[i+1:]...)
		break
	}
	return left, right, nil
}
