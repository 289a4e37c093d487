package batch

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"gorgonia.org/tensor"
)

// Tuple is an ordered container: its elements (tensors or containers) are
// traversed in order. It is Nx's tuple.
type Tuple []any

// Map is a container whose values (tensors or containers) are traversed in
// sorted key order, so that its traversal order is fixed. It is Nx's map
// container.
type Map map[string]any

type kind uint8

const (
	leafKind kind = iota
	tupleKind
	mapKind
)

// Template describes one row of a batch: the container structure and, for
// every tensor leaf, its dtype and the shape of one row (the shape without
// the batch axis). Templates are immutable once built.
type Template struct {
	kind  kind
	dtype tensor.Dtype // leafKind only
	shape []int        // leafKind only: the row shape
	elems []*Template  // tupleKind, mapKind: in traversal order
	keys  []string     // mapKind: sorted
}

// Equal reports whether two templates describe the same rows: same
// structure, same map keys, same dtypes and row shapes.
func (t *Template) Equal(o *Template) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil || t.kind != o.kind {
		return false
	}
	switch t.kind {
	case leafKind:
		if t.dtype != o.dtype || len(t.shape) != len(o.shape) {
			return false
		}
		for i := range t.shape {
			if t.shape[i] != o.shape[i] {
				return false
			}
		}
		return true
	default:
		if len(t.elems) != len(o.elems) || len(t.keys) != len(o.keys) {
			return false
		}
		for i := range t.keys {
			if t.keys[i] != o.keys[i] {
				return false
			}
		}
		for i := range t.elems {
			if !t.elems[i].Equal(o.elems[i]) {
				return false
			}
		}
		return true
	}
}

// Tensor describes the rows of a template that is one tensor (not a
// tuple or a map): their dtype and row shape (a copy). ok is false for
// other templates and for nil.
func (t *Template) Tensor() (dtype tensor.Dtype, rowShape []int, ok bool) {
	if t == nil || t.kind != leafKind {
		return tensor.Dtype{}, nil, false
	}
	return t.dtype, slices.Clone(t.shape), true
}

// String shows the template as, for example, "float32[3]",
// "{float32[3], int64[]}" or "map{a: float32[2], b: float32[]}".
func (t *Template) String() string {
	var sb strings.Builder
	t.write(&sb)
	return sb.String()
}

func (t *Template) write(sb *strings.Builder) {
	if t == nil {
		sb.WriteString("<none>")
		return
	}
	switch t.kind {
	case leafKind:
		sb.WriteString(t.dtype.String())
		sb.WriteByte('[')
		for i, d := range t.shape {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprint(sb, d)
		}
		sb.WriteByte(']')
	case tupleKind:
		sb.WriteByte('{')
		for i, e := range t.elems {
			if i > 0 {
				sb.WriteString(", ")
			}
			e.write(sb)
		}
		sb.WriteByte('}')
	case mapKind:
		sb.WriteString("map{")
		for i, e := range t.elems {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(t.keys[i])
			sb.WriteString(": ")
			e.write(sb)
		}
		sb.WriteByte('}')
	}
}

// numLeaves counts the tensor leaves the template describes.
func (t *Template) numLeaves() int {
	if t.kind == leafKind {
		return 1
	}
	n := 0
	for _, e := range t.elems {
		n += e.numLeaves()
	}
	return n
}

// sortedKeys returns m's keys in traversal order.
func sortedKeys(m Map) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// asDense returns v as a tensor leaf. Go numbers become scalar tensors
// when numbers is true (Stack accepts them, as Nx does).
func asDense(v any, numbers bool) (*tensor.Dense, bool) {
	switch x := v.(type) {
	case *tensor.Dense:
		return x, x != nil
	}
	if !numbers {
		return nil, false
	}
	switch v.(type) {
	case float32, float64, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool:
		return tensor.New(tensor.FromScalar(v)), true
	}
	return nil, false
}

// Leaves returns the tensors of container c in traversal order: c itself
// for a tensor, elements in order for a Tuple, values in sorted key order
// for a Map, recursively.
func Leaves(c any) ([]*tensor.Dense, error) {
	return appendLeaves(nil, c)
}

func appendLeaves(dst []*tensor.Dense, c any) ([]*tensor.Dense, error) {
	switch x := c.(type) {
	case *tensor.Dense:
		if x == nil {
			return dst, fmt.Errorf("%w: nil *tensor.Dense", ErrUnsupported)
		}
		return append(dst, x), nil
	case Tuple:
		var err error
		for _, e := range x {
			if dst, err = appendLeaves(dst, e); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case Map:
		var err error
		for _, k := range sortedKeys(x) {
			if dst, err = appendLeaves(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("%w: %T is not a container (want *tensor.Dense, batch.Tuple or batch.Map)", ErrUnsupported, c)
	}
}

// Traverse returns a container with the structure of c in which every
// tensor leaf is replaced by fn's result for it, in traversal order.
func Traverse(c any, fn func(*tensor.Dense) (any, error)) (any, error) {
	switch x := c.(type) {
	case *tensor.Dense:
		if x == nil {
			return nil, fmt.Errorf("%w: nil *tensor.Dense", ErrUnsupported)
		}
		return fn(x)
	case Tuple:
		out := make(Tuple, len(x))
		for i, e := range x {
			v, err := Traverse(e, fn)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case Map:
		out := make(Map, len(x))
		for _, k := range sortedKeys(x) {
			v, err := Traverse(x[k], fn)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: %T is not a container (want *tensor.Dense, batch.Tuple or batch.Map)", ErrUnsupported, c)
	}
}

// rebuild returns a container shaped like t whose leaves are taken from
// leaves in traversal order.
func (t *Template) rebuild(leaves []*tensor.Dense) (any, []*tensor.Dense) {
	switch t.kind {
	case leafKind:
		return leaves[0], leaves[1:]
	case tupleKind:
		out := make(Tuple, len(t.elems))
		for i, e := range t.elems {
			out[i], leaves = e.rebuild(leaves)
		}
		return out, leaves
	default:
		out := make(Map, len(t.elems))
		for i, e := range t.elems {
			out[t.keys[i]], leaves = e.rebuild(leaves)
		}
		return out, leaves
	}
}

// lastLeaf remembers the most recent tensor template. Servings see the same
// input type request after request; reusing one immutable template saves
// an allocation per request and makes Merge's template check a pointer
// comparison.
var lastLeaf atomic.Pointer[Template]

// leafTemplate returns the template of a tensor row of dtype dt and shape
// rowShape (which it may keep).
func leafTemplate(dt tensor.Dtype, rowShape []int) *Template {
	if t := lastLeaf.Load(); t != nil && t.dtype == dt && slices.Equal(t.shape, rowShape) {
		return t
	}
	t := &Template{kind: leafKind, dtype: dt, shape: rowShape}
	lastLeaf.Store(t)
	return t
}

// describe builds the row template of entry c and collects its leaves.
//
// With stacked, c is one row: every leaf's full shape is the row shape and
// rows is 1. Otherwise (concatenate) every leaf must have a first axis, all
// leaves the same length along it, and the row shape drops it.
func describe(c any, stacked bool, leaves []*tensor.Dense) (t *Template, rows int, out []*tensor.Dense, err error) {
	rows = -1
	t, out, err = describeInto(c, stacked, leaves, &rows, c)
	if err != nil {
		return nil, 0, leaves, err
	}
	if len(out) == len(leaves) {
		return nil, 0, leaves, fmt.Errorf("%w: %s", ErrEmptyContainer, show(c))
	}
	if stacked {
		return t, 1, out, nil
	}
	if rows < 0 {
		return nil, 0, leaves, fmt.Errorf("%w: %s", ErrEmptyContainer, show(c))
	}
	return t, rows, out, nil
}

func describeInto(c any, stacked bool, leaves []*tensor.Dense, rows *int, whole any) (*Template, []*tensor.Dense, error) {
	if d, ok := asDense(c, stacked); ok {
		shape := d.Shape()
		if stacked {
			return leafTemplate(d.Dtype(), shape), append(leaves, d), nil
		}
		if len(shape) == 0 || d.IsScalar() {
			return nil, leaves, fmt.Errorf("%w in %s", ErrScalar, show(whole))
		}
		if *rows >= 0 && shape[0] != *rows {
			return nil, leaves, fmt.Errorf("%w, got %d and %d in %s", ErrUnequalRows, shape[0], *rows, show(whole))
		}
		*rows = shape[0]
		return leafTemplate(d.Dtype(), shape[1:]), append(leaves, d), nil
	}
	switch x := c.(type) {
	case Tuple:
		t := &Template{kind: tupleKind, elems: make([]*Template, len(x))}
		for i, e := range x {
			var err error
			if t.elems[i], leaves, err = describeInto(e, stacked, leaves, rows, whole); err != nil {
				return nil, leaves, err
			}
		}
		return t, leaves, nil
	case Map:
		keys := sortedKeys(x)
		t := &Template{kind: mapKind, keys: keys, elems: make([]*Template, len(keys))}
		for i, k := range keys {
			var err error
			if t.elems[i], leaves, err = describeInto(x[k], stacked, leaves, rows, whole); err != nil {
				return nil, leaves, err
			}
		}
		return t, leaves, nil
	}
	if stacked {
		return nil, leaves, fmt.Errorf("%w: %T is not a container (want *tensor.Dense, batch.Tuple, batch.Map or a Go number)", ErrUnsupported, c)
	}
	return nil, leaves, fmt.Errorf("%w: %T is not a container (want *tensor.Dense, batch.Tuple or batch.Map)", ErrUnsupported, c)
}

// show describes a container in error messages without printing data.
func show(c any) string {
	switch x := c.(type) {
	case *tensor.Dense:
		if x == nil {
			return "nil tensor"
		}
		return fmt.Sprintf("tensor %v%v", x.Dtype(), []int(x.Shape()))
	case Tuple:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case Map:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + show(x[k])
		}
		return "map{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprintf("%T", c)
	}
}
