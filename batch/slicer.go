package batch

import (
	"fmt"
	"sync"
	"sync/atomic"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/internal/cowmap"
	"github.com/ergonx/ergonx/internal/dense"
)

// A Slicer cuts row ranges out of one container for many readers: a
// serving's execution output, from which every caller takes its own rows.
// Rows(start, n) returns what SliceRows would (tensors sharing the
// container's memory), but costs a shallow copy of a cached prototype
// instead of a full tensor construction: it caches, per row count, one
// tensor per leaf and clones it with its memory pointed at the rows asked
// for.
//
// A Slicer is safe for concurrent use. The container must not change
// while it is in use.
type Slicer struct {
	whole  any
	tmpl   *Template
	leaves []*tensor.Dense // row-major
	rowLen []int           // bytes per row of each leaf
	rows   int

	// protos maps a row count to one prototype tensor per leaf. It is an
	// immutable map replaced on write (under mu), so that the many readers
	// of one output never write to shared memory: a reader lock bounced
	// between cores on every caller of a batch.
	mu     sync.Mutex
	protos atomic.Pointer[map[int][]*tensor.Dense]
}

// NewSlicer prepares c (a container whose tensors share a first axis) for
// slicing.
func NewSlicer(c any) (*Slicer, error) {
	tmpl, rows, leaves, err := describe(c, false, nil)
	if err != nil {
		return nil, err
	}
	s := &Slicer{whole: c, tmpl: tmpl, leaves: leaves, rowLen: make([]int, len(leaves)), rows: rows}
	for i, d := range leaves {
		if s.leaves[i], err = rowMajor(d); err != nil {
			return nil, err
		}
		s.rowLen[i] = rowSize(d.Dtype(), []int(d.Shape())[1:])
	}
	return s, nil
}

// Len returns the number of rows of the container.
func (s *Slicer) Len() int { return s.rows }

// Rows returns rows [start, start+n) of every tensor, sharing memory with
// the container; the whole container when the range covers it.
func (s *Slicer) Rows(start, n int) (any, error) {
	if start < 0 || n < 0 || start+n > s.rows {
		return nil, fmt.Errorf("%w: rows [%d,%d) of a container with %d rows", ErrRows, start, start+n, s.rows)
	}
	if start == 0 && n == s.rows {
		return s.whole, nil
	}
	protos, err := s.prototypes(n)
	if err != nil {
		return nil, err
	}
	if len(protos) == 1 && s.tmpl.kind == leafKind {
		return s.leafRows(0, protos[0], start, n), nil // no slice for one tensor
	}
	out := make([]*tensor.Dense, len(protos))
	for i, p := range protos {
		out[i] = s.leafRows(i, p, start, n)
	}
	c, _ := s.tmpl.rebuild(out)
	return c, nil
}

// leafRows clones prototype p of leaf i onto rows [start, start+n). The
// clone has the prototype's shape ([n, row...]) and strides, which do not
// depend on where the rows start; only its memory moves. Raw is the
// tensor's whole memory (gorgonia keeps it as a Go slice, so the output
// stays alive while callers hold rows).
//
// Every caller of a batch gets one, so it costs one allocation: the
// tensor and its shape and strides together (gorgonia's ShallowClone
// makes three). The clone is what ShallowClone makes — the prototype's
// fields, its own shape and strides — so reshaping it changes no other
// caller's rows.
func (s *Slicer) leafRows(i int, p *tensor.Dense, start, n int) *tensor.Dense {
	return dense.View(p, s.rowBytes(i, start, n))
}

// rowBytes is the memory of rows [start, start+n) of leaf i.
func (s *Slicer) rowBytes(i, start, n int) []byte {
	return rawBytes(s.leaves[i])[start*s.rowLen[i] : (start+n)*s.rowLen[i]]
}

// EachRows cuts count consecutive row ranges, the first from row 0, the
// i-th of size(i) rows, and calls fn with each in order: what Rows would
// return for them. For a container that is one tensor of at most two
// axes (a batch of vectors), all the tensors it hands out come from one
// allocation, instead of one each: a serving hands every caller of an
// execution its rows this way.
func (s *Slicer) EachRows(count int, size func(i int) int, fn func(i int, rows any, err error)) {
	if s.tmpl.kind != leafKind || len(s.leaves) != 1 || len(s.leaves[0].Shape()) > 2 {
		start := 0
		for i := range count {
			n := size(i)
			rows, err := s.Rows(start, n)
			fn(i, rows, err)
			start += n
		}
		return
	}
	views := dense.NewViews(count)
	start := 0
	for i := range count {
		n := size(i)
		if start < 0 || n < 0 || start+n > s.rows {
			fn(i, nil, fmt.Errorf("%w: rows [%d,%d) of a container with %d rows", ErrRows, start, start+n, s.rows))
			start += n
			continue
		}
		if start == 0 && n == s.rows {
			fn(i, s.whole, nil)
			start += n
			continue
		}
		protos, err := s.prototypes(n)
		if err != nil {
			fn(i, nil, err)
			start += n
			continue
		}
		fn(i, views.At(i, protos[0], s.rowBytes(0, start, n)), nil)
		start += n
	}
}

// Prepare builds the prototypes for slices of n rows ahead of the readers,
// so that they find them without writing anything.
func (s *Slicer) Prepare(n int) error {
	if n < 0 || n > s.rows {
		return fmt.Errorf("%w: %d rows of a container with %d rows", ErrRows, n, s.rows)
	}
	if n == s.rows {
		return nil // Rows returns the container itself
	}
	_, err := s.prototypes(n)
	return err
}

// prototypes returns one tensor per leaf with n rows, built once.
func (s *Slicer) prototypes(n int) ([]*tensor.Dense, error) {
	if m := s.protos.Load(); m != nil {
		if protos, ok := (*m)[n]; ok {
			return protos, nil
		}
	}
	protos := make([]*tensor.Dense, len(s.leaves))
	for i, d := range s.leaves {
		if p := sharedPrototype(d, n, s.rowLen[i]); p != nil {
			protos[i] = p
			continue
		}
		p, err := sliceLeaf(d, 0, n)
		if err != nil {
			return nil, err
		}
		if p == d {
			// n covers every row: a prototype must be a tensor of its own,
			// since Rows repoints its clones' memory.
			p = d.ShallowClone()
		}
		protos[i] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[int][]*tensor.Dense{n: protos}
	if old := s.protos.Load(); old != nil {
		if prev, ok := (*old)[n]; ok {
			return prev, nil
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	s.protos.Store(&next)
	return protos, nil
}

// Prototypes shared by every Slicer. A prototype only lends its dtype,
// shape and strides to the views cut from it (dense.View points them at
// the rows asked for), so one per dtype and shape serves every output
// of that shape: a serving whose callers each send one row would
// otherwise build the same one-row prototype (a tensor.New, ~7
// allocations) for every batch, and a combined distributed request for
// every result. Only small ones are shared (each holds zeroed memory of
// its own size), of tensors of at most four axes, at most
// maxSharedPrototypes of them.
const (
	maxSharedPrototypes     = 1024
	maxSharedPrototypeBytes = 16 << 10
)

type prototypeKey struct {
	dtype tensor.Dtype
	rank  int
	dims  [4]int
}

var sharedPrototypes cowmap.Map[prototypeKey, *tensor.Dense]

// sharedPrototype returns the shared prototype of n rows of d (whose rows
// are rowLen bytes), or nil when d's kind is not shared.
func sharedPrototype(d *tensor.Dense, n, rowLen int) *tensor.Dense {
	shape := d.Shape()
	if len(shape) == 0 || len(shape) > 4 || n*rowLen > maxSharedPrototypeBytes || n > shape[0] {
		return nil
	}
	k := prototypeKey{dtype: d.Dtype(), rank: len(shape)}
	copy(k.dims[:], shape)
	k.dims[0] = n
	if p := sharedPrototypes.Get(k); p != nil {
		return p
	}
	if sharedPrototypes.Len() >= maxSharedPrototypes {
		return nil // the Slicer makes its own
	}
	return sharedPrototypes.GetOrPut(k, maxSharedPrototypes, func() *tensor.Dense {
		return tensor.New(tensor.WithShape(k.dims[:k.rank]...), tensor.Of(k.dtype))
	})
}
