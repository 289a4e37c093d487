package batch

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

// Checklist §4.1 item 1.
func TestStackAndConcatenate(t *testing.T) {
	b, err := Stack(vec(1, 2, 3), vec(4, 5, 6))
	require.NoError(t, err)
	assert.Equal(t, 2, b.Size())

	require.NoError(t, b.Concatenate(mat(2, 3, 11, 12, 13, 14, 15, 16)))
	assert.Equal(t, 4, b.Size())

	data, shape := ints(t, realise(t, b))
	assert.Equal(t, []int{4, 3}, shape)
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16}, data)
}

// Checklist §4.1 item 2.
func TestMergeEmptyList(t *testing.T) {
	m, err := Merge()
	require.NoError(t, err)
	assert.Equal(t, New(), m)
}

// Checklist §4.1 item 3: merging adds paddings up.
func TestMergePads(t *testing.T) {
	a, b := New(), New()
	require.NoError(t, a.Pad(2))
	require.NoError(t, b.Pad(3))
	m, err := Merge(a, b)
	require.NoError(t, err)
	assert.Equal(t, 5, m.Padding())
}

// Checklist §4.1 item 4.
func TestMergeWithEmptyBatch(t *testing.T) {
	b, err := Stack(vec(1, 2, 3), vec(4, 5, 6))
	require.NoError(t, err)

	m, err := Merge(New(), b)
	require.NoError(t, err)
	assert.Equal(t, b, m)

	m, err = Merge(b, New())
	require.NoError(t, err)
	assert.Equal(t, b, m)
}

// fiveRows is Nx's split fixture: concatenate [1,2] and [3,4,5], with pad.
func fiveRows(t *testing.T, pad int) *Batch {
	t.Helper()
	b, err := Concatenate(vec(1, 2), vec(3, 4, 5))
	require.NoError(t, err)
	require.NoError(t, b.Pad(pad))
	b.SetKey("another")
	return b
}

// Checklist §4.1 item 5: split with n >= size shares the padding.
func TestSplitNGreaterOrEqualSize(t *testing.T) {
	for _, tc := range []struct {
		n                 int
		leftPad, rightPad int
		leftData          []int64
		leftRows          int
	}{
		{5, 0, 3, []int64{1, 2, 3, 4, 5}, 5},
		{6, 1, 2, []int64{1, 2, 3, 4, 5, 0}, 6},
		{10, 3, 0, []int64{1, 2, 3, 4, 5, 0, 0, 0}, 8},
	} {
		b := fiveRows(t, 3)
		left, right, err := b.Split(tc.n)
		require.NoError(t, err)

		assert.Equal(t, 5, left.Size(), "split %d", tc.n)
		assert.Equal(t, tc.leftPad, left.Padding(), "split %d", tc.n)
		data, shape := ints(t, realise(t, left))
		assert.Equal(t, tc.leftData, data, "split %d", tc.n)
		assert.Equal(t, []int{tc.leftRows}, shape, "split %d", tc.n)

		assert.Equal(t, 0, right.Size(), "split %d", tc.n)
		assert.Equal(t, tc.rightPad, right.Padding(), "split %d", tc.n)

		assert.Same(t, left.Template(), right.Template(), "split %d", tc.n)
		assert.Equal(t, "another", left.Key(), "split %d", tc.n)
		assert.Equal(t, "another", right.Key(), "split %d", tc.n)

		// b itself is untouched.
		assert.Equal(t, 5, b.Size())
		assert.Equal(t, 3, b.Padding())
	}
}

// Checklist §4.1 item 6: split with n < size, straddling entries lazily.
func TestSplitNLessThanSize(t *testing.T) {
	for _, tc := range []struct {
		n           int
		left, right []int64
	}{
		{1, []int64{1}, []int64{2, 3, 4, 5, 0}},
		{2, []int64{1, 2}, []int64{3, 4, 5, 0}},
		{3, []int64{1, 2, 3}, []int64{4, 5, 0}},
		{4, []int64{1, 2, 3, 4}, []int64{5, 0}},
	} {
		b := fiveRows(t, 1)
		left, right, err := b.Split(tc.n)
		require.NoError(t, err)
		assert.Equal(t, 0, left.Padding(), "split %d", tc.n)
		assert.Equal(t, 1, right.Padding(), "split %d", tc.n)
		assert.Equal(t, tc.n, left.Size())
		assert.Equal(t, 5-tc.n, right.Size())
		l, _ := ints(t, realise(t, left))
		r, _ := ints(t, realise(t, right))
		assert.Equal(t, tc.left, l, "split %d", tc.n)
		assert.Equal(t, tc.right, r, "split %d", tc.n)
		assert.Same(t, left.Template(), right.Template(), "split %d", tc.n)
		assert.Equal(t, "another", left.Key())
		assert.Equal(t, "another", right.Key())
	}
}

// Checklist §4.1 item 7: split of composite entries.
func TestSplitComposite(t *testing.T) {
	b, err := Concatenate(
		Tuple{vec(11, 12), vec(21, 22)},
		Tuple{vec(13, 14, 15), vec(23, 24, 25)},
	)
	require.NoError(t, err)
	require.NoError(t, b.Pad(1))

	left, right, err := b.Split(3)
	require.NoError(t, err)

	lc, err := left.Materialize()
	require.NoError(t, err)
	lt := lc.(Tuple)
	a, _ := ints(t, lt[0].(*tensor.Dense))
	c, _ := ints(t, lt[1].(*tensor.Dense))
	assert.Equal(t, []int64{11, 12, 13}, a)
	assert.Equal(t, []int64{21, 22, 23}, c)

	assert.Equal(t, 2, right.Size())
	assert.Equal(t, 1, right.Padding())
	rc, err := right.Materialize()
	require.NoError(t, err)
	rt := rc.(Tuple)
	a, _ = ints(t, rt[0].(*tensor.Dense))
	c, _ = ints(t, rt[1].(*tensor.Dense))
	assert.Equal(t, []int64{14, 15, 0}, a)
	assert.Equal(t, []int64{24, 25, 0}, c)
}

// Checklist §4.1 item 8.
func TestMaterializeEmptyBatch(t *testing.T) {
	_, err := New().Materialize()
	require.ErrorIs(t, err, ErrEmpty)
	assert.Equal(t, "batch: cannot materialise a batch without entries (size 0, pad 0): stack or concatenate entries first", err.Error())

	// Padding alone is not enough.
	b := New()
	require.NoError(t, b.Pad(2))
	_, err = b.Materialize()
	require.ErrorIs(t, err, ErrEmpty)
}

// Checklist §4.1 item 9.
func TestStackIncompatible(t *testing.T) {
	_, err := Stack(vec(1, 2, 3), vec(1, 2))
	require.ErrorIs(t, err, ErrIncompatible)
	var ie *IncompatibleError
	require.True(t, errors.As(err, &ie))
	assert.Equal(t, "int64[3]", ie.Want.String())
	assert.Equal(t, "int64[2]", ie.Got.String())
	assert.Equal(t, 1, ie.Index)
	assert.Contains(t, err.Error(), "the head of the list has template int64[3] but list element 1 has template int64[2]")
}

// Checklist §4.1 item 10.
func TestConcatenateIncompatible(t *testing.T) {
	_, err := Concatenate(mat(1, 3, 1, 2, 3), mat(1, 2, 1, 2))
	require.ErrorIs(t, err, ErrIncompatible)
	assert.Contains(t, err.Error(), "int64[3]")
	assert.Contains(t, err.Error(), "int64[2]")
}

// Entries that do not match the batch they are added to are rejected, and
// the batch is left as it was.
func TestStackOntoIncompatibleBatch(t *testing.T) {
	b, err := Stack(vec(1, 2, 3))
	require.NoError(t, err)
	err = b.Stack(vec(1, 2))
	require.ErrorIs(t, err, ErrIncompatible)
	var ie *IncompatibleError
	require.True(t, errors.As(err, &ie))
	assert.Equal(t, -1, ie.Index)
	assert.Contains(t, err.Error(), "the batch has template int64[3] but the head of the list has template int64[2]")
	assert.Equal(t, 1, b.Size())
}

// No type promotion: an int64 row and a float32 row are incompatible.
func TestNoTypePromotion(t *testing.T) {
	f := tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{1, 2, 3}))
	_, err := Stack(vec(1, 2, 3), f)
	require.ErrorIs(t, err, ErrIncompatible)
	assert.Contains(t, err.Error(), "float32[3]")
}

func TestConcatenateScalar(t *testing.T) {
	s := tensor.New(tensor.FromScalar(int64(1)))
	_, err := Concatenate(s)
	require.ErrorIs(t, err, ErrScalar)
	assert.Equal(t, "batch: cannot concatenate scalar tensor in tensor int64[]", err.Error())
}

func TestConcatenateEmptyContainer(t *testing.T) {
	_, err := Concatenate(Tuple{})
	require.ErrorIs(t, err, ErrEmptyContainer)
	_, err = Stack(Map{})
	require.ErrorIs(t, err, ErrEmptyContainer)
}

func TestConcatenateUnequalRowsInContainer(t *testing.T) {
	_, err := Concatenate(Tuple{vec(1, 2), vec(1, 2, 3)})
	require.ErrorIs(t, err, ErrUnequalRows)
	assert.Contains(t, err.Error(), "got 3 and 2")
}

func TestUnsupportedValue(t *testing.T) {
	_, err := Concatenate("text")
	require.ErrorIs(t, err, ErrUnsupported)
	_, err = Stack([]float32{1})
	require.ErrorIs(t, err, ErrUnsupported)
}

func TestMergeIncompatible(t *testing.T) {
	a, err := Stack(vec(1, 2, 3))
	require.NoError(t, err)
	b, err := Stack(vec(1, 2))
	require.NoError(t, err)
	_, err = Merge(a, b)
	require.ErrorIs(t, err, ErrIncompatible)
	assert.Contains(t, err.Error(), "cannot merge batches due to incompatible templates int64[3] and int64[2]")
}

// Later Nx: merge checks batch keys.
func TestMergeDifferentKeys(t *testing.T) {
	a, err := Stack(vec(1))
	require.NoError(t, err)
	b, err := Stack(vec(2))
	require.NoError(t, err)
	b.SetKey("other")
	_, err = Merge(a, b)
	require.ErrorIs(t, err, ErrKeyMismatch)
	assert.Equal(t, `batch: cannot merge batches with different batch keys: "default" and "other"`, err.Error())
}

func TestKeyDefaultsAndSticks(t *testing.T) {
	b := New()
	assert.Equal(t, DefaultKey, b.Key())
	b.SetKey("double")
	require.NoError(t, b.Stack(vec(1)))
	m, err := Merge(b, b)
	require.NoError(t, err)
	assert.Equal(t, "double", m.Key())
}

func TestSplitInvalid(t *testing.T) {
	b := fiveRows(t, 0)
	_, _, err := b.Split(0)
	require.ErrorIs(t, err, ErrInvalidSplit)
	_, _, err = b.Split(-1)
	require.ErrorIs(t, err, ErrInvalidSplit)
}

func TestPadInvalid(t *testing.T) {
	require.ErrorIs(t, New().Pad(-1), ErrInvalidPad)
}

// Pad sets the padding; it does not add to it.
func TestPadSets(t *testing.T) {
	b, err := Stack(vec(1, 2, 3))
	require.NoError(t, err)
	require.NoError(t, b.Pad(3))
	require.NoError(t, b.Pad(1))
	data, shape := ints(t, realise(t, b))
	assert.Equal(t, []int{2, 3}, shape)
	assert.Equal(t, []int64{1, 2, 3, 0, 0, 0}, data)
}

// Adding to a batch that was split off another must not write into the
// entries the other one still reads.
func TestAppendAfterSplitDoesNotAlias(t *testing.T) {
	b := fiveRows(t, 0)
	left, right, err := b.Split(10)
	require.NoError(t, err)
	require.NoError(t, left.Concatenate(vec(9)))
	require.NoError(t, right.Concatenate(vec(7)))
	l, _ := ints(t, realise(t, left))
	bd, _ := ints(t, realise(t, b))
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 9}, l)
	assert.Equal(t, []int64{1, 2, 3, 4, 5}, bd)
}

// Views (here a transposed tensor) are copied in row-major order.
func TestMaterializeView(t *testing.T) {
	m := mat(2, 3, 1, 2, 3, 4, 5, 6)
	require.NoError(t, m.T())
	b, err := Concatenate(m)
	require.NoError(t, err)
	data, shape := ints(t, realise(t, b))
	assert.Equal(t, []int{3, 2}, shape)
	assert.Equal(t, []int64{1, 4, 2, 5, 3, 6}, data)
}

func TestStackNumbers(t *testing.T) {
	b, err := Stack(1.5, 2.5)
	require.NoError(t, err)
	d := realise(t, b)
	assert.Equal(t, []int{2}, []int(d.Shape()))
	assert.Equal(t, []float64{1.5, 2.5}, d.Data())
}

func TestMapTraversesInSortedKeyOrder(t *testing.T) {
	b, err := Stack(Map{"b": vec(1), "a": vec(2, 3)})
	require.NoError(t, err)
	assert.Equal(t, "map{a: int64[2], b: int64[1]}", b.Template().String())
	c, err := b.Materialize()
	require.NoError(t, err)
	m := c.(Map)
	a, shape := ints(t, m["a"].(*tensor.Dense))
	assert.Equal(t, []int64{2, 3}, a)
	assert.Equal(t, []int{1, 2}, shape)
}

func TestString(t *testing.T) {
	b := fiveRows(t, 2)
	assert.Equal(t, "#batch<size: 5, pad: 2>", b.String())
}

// Row slices of other tensors are views whose memory starts at their first
// row and may run on past their last; only their own rows are used.
func TestMaterializeRowSliceViews(t *testing.T) {
	m := mat(3, 2, 1, 2, 3, 4, 5, 6)
	head, err := m.Slice(tensor.S(0, 2))
	require.NoError(t, err)
	tail, err := m.Slice(tensor.S(1, 3))
	require.NoError(t, err)
	require.True(t, head.IsView())
	b, err := Concatenate(head, tail)
	require.NoError(t, err)
	data, shape := ints(t, realise(t, b))
	assert.Equal(t, []int{4, 2}, shape)
	assert.Equal(t, []int64{1, 2, 3, 4, 3, 4, 5, 6}, data)

	c, err := SliceRows(head, 1, 1)
	require.NoError(t, err)
	data, _ = ints(t, c.(*tensor.Dense))
	assert.Equal(t, []int64{3, 4}, data)
}

// Merging a one-entry batch with empty ones gives an equal batch too.
func TestMergeWithEmptyBatchOneEntry(t *testing.T) {
	b, err := Stack(vec(1, 2, 3))
	require.NoError(t, err)
	m, err := Merge(New(), b, New())
	require.NoError(t, err)
	assert.Equal(t, b, m)
	assert.NotSame(t, b, m)
}

// Column-major tensors and views of transposed ones are laid out in their
// logical (row-major) order.
func TestMaterializeColumnMajorAndTransposedViews(t *testing.T) {
	cm := tensor.New(tensor.AsFortran([]int64{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), tensor.WithShape(3, 4))
	b, err := Concatenate(cm)
	require.NoError(t, err)
	data, shape := ints(t, realise(t, b))
	assert.Equal(t, []int{3, 4}, shape)
	assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, data)

	m := mat(3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	require.NoError(t, m.T()) // lazily transposed: logically 4×3
	v, err := m.Slice(tensor.S(0, 2))
	require.NoError(t, err)
	b, err = Concatenate(v)
	require.NoError(t, err)
	data, shape = ints(t, realise(t, b))
	assert.Equal(t, []int{2, 3}, shape)
	assert.Equal(t, []int64{1, 5, 9, 2, 6, 10}, data)
}

// Template.Tensor describes templates of one tensor, and only those.
func TestTemplateTensor(t *testing.T) {
	b, err := Stack(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float64, 6))))
	require.NoError(t, err)
	dt, shape, ok := b.Template().Tensor()
	require.True(t, ok)
	assert.Equal(t, tensor.Float64, dt)
	assert.Equal(t, []int{2, 3}, shape)
	shape[0] = 99 // a copy
	_, again, _ := b.Template().Tensor()
	assert.Equal(t, []int{2, 3}, again)

	pair, err := Stack(Tuple{tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{1})),
		tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{2}))})
	require.NoError(t, err)
	_, _, ok = pair.Template().Tensor()
	assert.False(t, ok)
	_, _, ok = New().Template().Tensor()
	assert.False(t, ok, "an empty batch has no template")
}
