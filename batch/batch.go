package batch

import (
	"fmt"

	"gorgonia.org/tensor"
)

// DefaultKey is the key of a batch that was not given one with SetKey.
const DefaultKey = "default"

// A Batch is a lazy collection of rows (see the package doc). The zero
// value is not valid; use New, Stack or Concatenate.
type Batch struct {
	entries []entry // in arrival order
	size    int     // rows held by entries
	pad     int     // zero rows appended by Materialize
	key     string
	tmpl    *Template // row template; nil while empty

	// one backs entries while the batch has a single entry, the common
	// case of a caller's request, saving an allocation per request.
	one [1]entry
}

// entry is one Stack or Concatenate argument, or a window of one after a
// Split.
type entry struct {
	// The entry's tensors in traversal order: leaf alone when the entry is
	// a single tensor (no slice to allocate), else *leaves. A pointer to
	// the slice keeps an entry at 40 bytes: a serving merges one entry per
	// caller into each batch, and that array is part of every request's
	// cost (TestBatchedPathAllocations).
	leaf    *tensor.Dense
	leaves  *[]*tensor.Dense
	start   int  // first row of the window
	rows    int  // rows in the window
	stacked bool // each leaf is one row (Stack); else rows are axis 0
}

// leafAt returns the entry's i-th tensor in traversal order.
func (e *entry) leafAt(i int) *tensor.Dense {
	if e.leaf != nil {
		return e.leaf
	}
	return (*e.leaves)[i]
}

// numLeaves returns how many tensors the entry holds.
func (e *entry) numLeaves() int {
	if e.leaf != nil {
		return 1
	}
	if e.leaves == nil {
		return 0
	}
	return len(*e.leaves)
}

// newEntry builds the entry for one Stack/Concatenate argument.
func newEntry(v any, stacked bool) (entry, *Template, error) {
	if d, ok := v.(*tensor.Dense); ok && d != nil {
		// The common case, one tensor: no leaves slice to allocate.
		shape := d.Shape()
		if stacked {
			return entry{leaf: d, rows: 1, stacked: true}, leafTemplate(d.Dtype(), shape), nil
		}
		if len(shape) > 0 && !d.IsScalar() {
			return entry{leaf: d, rows: shape[0]}, leafTemplate(d.Dtype(), shape[1:]), nil
		}
		// A scalar to concatenate: describe says what is wrong.
	}
	t, n, leaves, err := describe(v, stacked, nil)
	if err != nil {
		return entry{}, nil, err
	}
	e := entry{rows: n, stacked: stacked}
	if len(leaves) == 1 && t.kind == leafKind {
		e.leaf = leaves[0]
	} else {
		e.leaves = &leaves
	}
	return e, t, nil
}

// New returns an empty batch with DefaultKey.
func New() *Batch { return &Batch{key: DefaultKey} }

// Stack returns a new batch holding entries, one row each.
func Stack(entries ...any) (*Batch, error) {
	b := New()
	if err := b.Stack(entries...); err != nil {
		return nil, err
	}
	return b, nil
}

// Concatenate returns a new batch holding entries, each contributing the
// rows of its first axis.
func Concatenate(entries ...any) (*Batch, error) {
	b := New()
	if err := b.Concatenate(entries...); err != nil {
		return nil, err
	}
	return b, nil
}

// Stack adds entries to b, each as one row: a tensor of shape S becomes a
// row of shape S (Materialize adds the leading axis). Go numbers are
// accepted as scalar tensors. Every entry must have the template of the
// first one, and that template must match b's if b is not empty; otherwise
// Stack returns an error matching ErrIncompatible and b is unchanged.
// Stacking no entries leaves b unchanged. The tensors are not copied (see
// Ownership in the package doc).
func (b *Batch) Stack(entries ...any) error { return b.add("stack", entries, true) }

// Concatenate adds entries to b, each contributing the rows of its first
// axis (a tensor of shape [n, S...] adds n rows of shape S). Inside one
// container entry every tensor must have the same first-axis length
// (ErrUnequalRows); scalars have no first axis (ErrScalar). Templates must
// match as for Stack; on error b is unchanged.
func (b *Batch) Concatenate(entries ...any) error { return b.add("concatenate", entries, false) }

func (b *Batch) add(op string, values []any, stacked bool) error {
	if len(values) == 0 {
		return nil
	}
	if len(values) == 1 {
		// The common case (one request, one input): no scratch slice.
		e, t, err := newEntry(values[0], stacked)
		if err != nil {
			return err
		}
		if b.tmpl != nil && !b.tmpl.Equal(t) {
			return &IncompatibleError{Op: op, Want: b.tmpl, Got: t, Index: -1}
		}
		b.appendEntries(t, e.rows, e)
		return nil
	}
	// Validate everything first so that a failure leaves b unchanged.
	news := make([]entry, len(values))
	var head *Template
	rows := 0
	for i, v := range values {
		e, t, err := newEntry(v, stacked)
		if err != nil {
			return err
		}
		if i == 0 {
			head = t
		} else if !head.Equal(t) {
			return &IncompatibleError{Op: op, Want: head, Got: t, Index: i}
		}
		news[i] = e
		rows += e.rows
	}
	if b.tmpl != nil && !b.tmpl.Equal(head) {
		return &IncompatibleError{Op: op, Want: b.tmpl, Got: head, Index: -1}
	}
	b.appendEntries(head, rows, news...)
	return nil
}

// appendEntries adds validated entries holding rows rows of template t.
func (b *Batch) appendEntries(t *Template, rows int, es ...entry) {
	if b.tmpl == nil {
		b.tmpl = t
	}
	if len(b.entries) == 0 && len(es) == 1 {
		b.one[0] = es[0]
		b.entries = b.one[:1:1]
	} else {
		b.entries = append(b.entries, es...)
	}
	b.size += rows
}

// Size returns the number of rows in b, padding excluded.
func (b *Batch) Size() int { return b.size }

// Padding returns the number of zero rows Materialize appends.
func (b *Batch) Padding() int { return b.pad }

// Pad sets (it does not add to) the number of zero rows that Materialize
// appends after the rows of b, so that a computation compiled for a fixed
// batch size can run a smaller batch. n < 0 returns ErrInvalidPad.
func (b *Batch) Pad(n int) error {
	if n < 0 {
		return fmt.Errorf("%w, got %d", ErrInvalidPad, n)
	}
	b.pad = n
	return nil
}

// Key returns the batch key, DefaultKey unless SetKey changed it.
func (b *Batch) Key() string { return b.key }

// SetKey sets the batch key. A serving with several batch keys keeps one
// stack per key; batches with different keys cannot be merged.
func (b *Batch) SetKey(key string) { b.key = key }

// Template returns the row template of b, or nil while b is empty.
func (b *Batch) Template() *Template { return b.tmpl }

// String shows the size and padding only, as Nx's inspect does.
func (b *Batch) String() string {
	return fmt.Sprintf("#batch<size: %d, pad: %d>", b.size, b.pad)
}
