package dense_test

import (
	"bytes"
	"reflect"
	"testing"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/internal/dense"
)

var (
	dtypes = []tensor.Dtype{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64,
		tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.Complex64, tensor.Complex128}
	shapes = [][]int{{}, {0}, {1}, {5}, {2, 3}, {3, 0}, {2, 1, 4}, {1, 2, 1, 2}, {1, 2, 1, 2, 1}, {3, 0, 2, 1, 1, 2},
		{1, 1, 1, 1, 1, 1, 1, 1, 1, 2}}
)

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// New builds what tensor.New builds with a backing slice, field for
// field, for every supported dtype and every rank.
func TestNewIsWhatTensorNewMakes(t *testing.T) {
	for _, dt := range dtypes {
		for _, shape := range shapes {
			back := reflect.MakeSlice(reflect.SliceOf(dt.Type), elements(shape), elements(shape)).Interface()
			want := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(back))
			raw := want.Raw
			if len(raw) == 0 {
				raw = []byte{}
			}
			got := dense.New(dt, shape, raw)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("%v%v:\nwant %#v\ngot  %#v", dt, shape, *want, *got)
			}
		}
	}
}

// Zeros has the shape, strides, dtype and zeroed memory that tensor.New
// gives a tensor of that dtype and shape.
func TestZerosIsWhatTensorNewMakes(t *testing.T) {
	for _, dt := range dtypes {
		for _, shape := range shapes {
			if len(shape) == 0 {
				continue // tensor.New makes a scalar of WithShape()
			}
			want := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
			got := dense.Zeros(dt, shape)
			if !reflect.DeepEqual(want.Shape(), got.Shape()) || !reflect.DeepEqual(want.Strides(), got.Strides()) ||
				want.Dtype() != got.Dtype() || !bytes.Equal(want.Raw, got.Raw) || len(want.Raw) != len(got.Raw) {
				t.Fatalf("%v%v:\nwant %v %v %v\ngot  %v %v %v", dt, shape, want.Shape(), want.Strides(), want.Raw,
					got.Shape(), got.Strides(), got.Raw)
			}
		}
	}
}

// A view has the prototype's shape and strides in memory of its own, and
// the memory it was given.
func TestViewsAreIndependentOfTheirPrototype(t *testing.T) {
	p := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	other := tensor.New(tensor.WithShape(6), tensor.WithBacking([]float32{7, 8, 9, 10, 11, 12}))
	views := dense.NewViews(1)
	for _, v := range []*tensor.Dense{dense.View(p, other.Raw), views.At(0, p, other.Raw)} {
		if got := v.Data().([]float32); !reflect.DeepEqual(got, []float32{7, 8, 9, 10, 11, 12}) {
			t.Fatalf("view data %v", got)
		}
		if err := v.Reshape(3, 2); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Shape(), tensor.Shape{2, 3}) || !reflect.DeepEqual(p.Strides(), []int{3, 1}) {
			t.Fatalf("reshaping a view changed its prototype: %v %v", p.Shape(), p.Strides())
		}
	}
	if dense.Supported(tensor.Bool) || !dense.Supported(tensor.Float32) {
		t.Fatal("Supported is wrong about bool or float32")
	}
}
