package batch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

func TestSliceRowsSharesMemory(t *testing.T) {
	m := mat(3, 2, 1, 2, 3, 4, 5, 6)
	c, err := SliceRows(m, 1, 2)
	require.NoError(t, err)
	d := c.(*tensor.Dense)
	data, shape := ints(t, d)
	assert.Equal(t, []int{2, 2}, shape)
	assert.Equal(t, []int64{3, 4, 5, 6}, data)
	assert.False(t, d.IsView())

	d.Data().([]int64)[0] = 42
	assert.Equal(t, int64(42), m.Data().([]int64)[2])
}

func TestSliceRowsWholeReturnsSame(t *testing.T) {
	m := mat(3, 2, 1, 2, 3, 4, 5, 6)
	c, err := SliceRows(m, 0, 3)
	require.NoError(t, err)
	assert.Same(t, m, c)
}

func TestSliceRowsOutOfRange(t *testing.T) {
	_, err := SliceRows(mat(3, 1, 1, 2, 3), 2, 2)
	require.ErrorIs(t, err, ErrRows)
	assert.Equal(t, "batch: rows out of range: rows [2,4) of a tensor with 3 rows", err.Error())
	_, err = SliceRows(tensor.New(tensor.FromScalar(1.0)), 0, 1)
	require.ErrorIs(t, err, ErrRows)
}

func TestSliceRowsEmptyRange(t *testing.T) {
	c, err := SliceRows(mat(3, 2, 1, 2, 3, 4, 5, 6), 1, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 2}, []int(c.(*tensor.Dense).Shape()))
}

func TestConcatRowsContainers(t *testing.T) {
	c, err := ConcatRows(Tuple{vec(1), vec(10)}, Tuple{vec(2, 3), vec(20, 30)})
	require.NoError(t, err)
	tu := c.(Tuple)
	a, _ := ints(t, tu[0].(*tensor.Dense))
	b, _ := ints(t, tu[1].(*tensor.Dense))
	assert.Equal(t, []int64{1, 2, 3}, a)
	assert.Equal(t, []int64{10, 20, 30}, b)
}

func TestRows(t *testing.T) {
	n, err := Rows(Map{"x": mat(2, 2, 1, 2, 3, 4), "y": vec(5, 6)})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = Rows(Tuple{vec(1), vec(1, 2)})
	require.ErrorIs(t, err, ErrUnequalRows)
}

func TestSlicerRows(t *testing.T) {
	out := mat(4, 2, 1, 2, 3, 4, 5, 6, 7, 8)
	s, err := NewSlicer(out)
	require.NoError(t, err)
	assert.Equal(t, 4, s.Len())

	for start := 0; start < 4; start++ {
		c, err := s.Rows(start, 1)
		require.NoError(t, err)
		data, shape := ints(t, c.(*tensor.Dense))
		assert.Equal(t, []int{1, 2}, shape)
		assert.Equal(t, []int64{int64(2*start + 1), int64(2*start + 2)}, data)
	}
	c, err := s.Rows(1, 2)
	require.NoError(t, err)
	data, _ := ints(t, c.(*tensor.Dense))
	assert.Equal(t, []int64{3, 4, 5, 6}, data)

	whole, err := s.Rows(0, 4)
	require.NoError(t, err)
	assert.Same(t, out, whole)

	_, err = s.Rows(3, 2)
	require.ErrorIs(t, err, ErrRows)
}

func TestSlicerContainers(t *testing.T) {
	s, err := NewSlicer(Tuple{mat(3, 1, 1, 2, 3), Map{"x": vec(10, 20, 30)}})
	require.NoError(t, err)
	c, err := s.Rows(2, 1)
	require.NoError(t, err)
	tu := c.(Tuple)
	a, _ := ints(t, tu[0].(*tensor.Dense))
	x, _ := ints(t, tu[1].(Map)["x"].(*tensor.Dense))
	assert.Equal(t, []int64{3}, a)
	assert.Equal(t, []int64{30}, x)
}

// Many goroutines slicing one output get their own rows.
func TestSlicerConcurrent(t *testing.T) {
	xs := make([]int64, 64)
	for i := range xs {
		xs[i] = int64(i)
	}
	s, err := NewSlicer(vec(xs...))
	require.NoError(t, err)
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		go func(i int) {
			c, err := s.Rows(i, 1)
			if err == nil && c.(*tensor.Dense).Data().([]int64)[0] != int64(i) {
				err = assert.AnError
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 64; i++ {
		require.NoError(t, <-errs)
	}
}

// RowMajorBytes hands out a plain tensor's own memory and lays any other
// out in logical order; AppendRowMajor always appends a copy.
func TestRowMajorBytes(t *testing.T) {
	m := mat(2, 2, 1, 2, 3, 4)
	raw, err := RowMajorBytes(m)
	require.NoError(t, err)
	assert.Same(t, &m.Raw[0], &raw[0], "a plain tensor's own memory")

	require.NoError(t, m.T())
	raw, err = RowMajorBytes(m)
	require.NoError(t, err)
	got, err := typedBacking(tensor.Int64, raw)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 3, 2, 4}, got)

	out, err := AppendRowMajor([]byte{9}, mat(1, 2, 5, 6))
	require.NoError(t, err)
	assert.Len(t, out, 1+16)
	assert.Equal(t, byte(9), out[0])
}

// Slicers of outputs of one dtype and shape share their small prototypes
// and still hand out each output's own rows; a view reshaped by its
// reader changes no other reader's rows.
func TestSlicersOfOneShapeShareSmallPrototypes(t *testing.T) {
	a, err := NewSlicer(mat(3, 2, 1, 2, 3, 4, 5, 6))
	require.NoError(t, err)
	b, err := NewSlicer(mat(3, 2, 10, 20, 30, 40, 50, 60))
	require.NoError(t, err)
	pa, err := a.prototypes(1)
	require.NoError(t, err)
	pb, err := b.prototypes(1)
	require.NoError(t, err)
	assert.Same(t, pa[0], pb[0], "one prototype for every [1 2] int64 view")

	ra, err := a.Rows(2, 1)
	require.NoError(t, err)
	rb, err := b.Rows(1, 1)
	require.NoError(t, err)
	require.NoError(t, ra.(*tensor.Dense).Reshape(2))
	data, shape := ints(t, rb.(*tensor.Dense))
	assert.Equal(t, []int{1, 2}, shape)
	assert.Equal(t, []int64{30, 40}, data)
	data, shape = ints(t, ra.(*tensor.Dense))
	assert.Equal(t, []int{2}, shape)
	assert.Equal(t, []int64{5, 6}, data)
	again, err := a.Rows(0, 1)
	require.NoError(t, err)
	data, shape = ints(t, again.(*tensor.Dense))
	assert.Equal(t, []int{1, 2}, shape)
	assert.Equal(t, []int64{1, 2}, data)

	// Rows too large to share get a prototype of their own slicer.
	big := make([]int64, 2*(maxSharedPrototypeBytes/8))
	c, err := NewSlicer(vec(big...))
	require.NoError(t, err)
	n := len(big) - 1
	pc, err := c.prototypes(n)
	require.NoError(t, err)
	assert.Nil(t, sharedPrototype(c.leaves[0], n, c.rowLen[0]))
	assert.Equal(t, []int{n}, []int(pc[0].Shape()))
}
