package batch

import (
	"testing"
)

// fuzzBatch concatenates entries whose row counts come from sizes (each
// byte mod 5, so empty entries occur too), numbering rows 1, 2, 3...
func fuzzBatch(t *testing.T, sizes []byte, pad uint8) (*Batch, int) {
	b := New()
	next := int64(1)
	for _, s := range sizes {
		n := int(s % 5)
		xs := make([]int64, n)
		for i := range xs {
			xs[i] = next
			next++
		}
		if err := b.Concatenate(vec(xs...)); err != nil {
			t.Fatalf("concatenate: %v", err)
		}
	}
	if err := b.Pad(int(pad % 8)); err != nil {
		t.Fatal(err)
	}
	return b, int(next - 1)
}

// checkRows asserts that b materialises to rows first..first+size-1
// followed by exactly b.Padding() zeros.
func checkRows(t *testing.T, b *Batch, first int64) {
	t.Helper()
	if len(b.entries) == 0 {
		return // nothing to materialise; sizes are checked by the caller
	}
	data, shape := ints(t, realise(t, b))
	if shape[0] != b.Size()+b.Padding() {
		t.Fatalf("materialised %d rows, want size %d + pad %d", shape[0], b.Size(), b.Padding())
	}
	for i, v := range data {
		want := first + int64(i)
		if i >= b.Size() {
			want = 0
		}
		if v != want {
			t.Fatalf("row %d = %d, want %d (rows %v, size %d, pad %d)", i, v, want, data, b.Size(), b.Padding())
		}
	}
}

// Split: sizes add up, rows stay in order, padding adds up and stays at the
// end, and the original is untouched.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{2, 3}, uint8(3), uint16(5))
	f.Add([]byte{2, 3}, uint8(1), uint16(1))
	f.Add([]byte{4, 0, 1, 4}, uint8(0), uint16(4))
	f.Add([]byte{1}, uint8(7), uint16(30))
	f.Add([]byte{}, uint8(2), uint16(1))
	f.Fuzz(func(t *testing.T, sizes []byte, pad uint8, n16 uint16) {
		b, size := fuzzBatch(t, sizes, pad)
		n := int(n16%64) + 1
		left, right, err := b.Split(n)
		if err != nil {
			t.Fatal(err)
		}
		if left.Size()+right.Size() != size {
			t.Fatalf("sizes %d+%d, want %d", left.Size(), right.Size(), size)
		}
		if left.Size() != min(n, size) {
			t.Fatalf("left size %d, want %d", left.Size(), min(n, size))
		}
		if left.Padding()+right.Padding() != b.Padding() {
			t.Fatalf("pads %d+%d, want %d", left.Padding(), right.Padding(), b.Padding())
		}
		if n < size && (left.Padding() != 0 || right.Padding() != b.Padding()) {
			t.Fatalf("n < size: pads %d|%d, want 0|%d", left.Padding(), right.Padding(), b.Padding())
		}
		if n >= size && left.Size()+left.Padding() != min(n, size+b.Padding()) {
			t.Fatalf("n >= size: left has %d rows, want %d", left.Size()+left.Padding(), min(n, size+b.Padding()))
		}
		checkRows(t, left, 1)
		checkRows(t, right, int64(left.Size()+1))
		checkRows(t, b, 1)
	})
}

// Merging the halves of any sequence of splits gives back the same rows,
// and padding stays at the end.
func FuzzSplitMerge(f *testing.F) {
	f.Add([]byte{2, 3, 1}, uint8(2), []byte{1, 2})
	f.Add([]byte{4, 4, 4}, uint8(0), []byte{3, 3, 3, 3})
	f.Add([]byte{1}, uint8(5), []byte{9})
	f.Fuzz(func(t *testing.T, sizes []byte, pad uint8, cuts []byte) {
		b, size := fuzzBatch(t, sizes, pad)
		var parts []*Batch
		rest := b
		for _, c := range cuts {
			left, right, err := rest.Split(int(c%8) + 1)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, left)
			rest = right
		}
		parts = append(parts, rest)
		m, err := Merge(parts...)
		if err != nil {
			t.Fatal(err)
		}
		if m.Size() != size || m.Padding() != b.Padding() {
			t.Fatalf("merged size %d pad %d, want %d and %d", m.Size(), m.Padding(), size, b.Padding())
		}
		checkRows(t, m, 1)
	})
}

// Pad sets the padding, whatever it was.
func FuzzPad(f *testing.F) {
	f.Add([]byte{3}, uint8(2), uint8(5))
	f.Add([]byte{1, 1}, uint8(7), uint8(0))
	f.Fuzz(func(t *testing.T, sizes []byte, pad, again uint8) {
		b, _ := fuzzBatch(t, sizes, pad)
		if err := b.Pad(int(again % 8)); err != nil {
			t.Fatal(err)
		}
		if b.Padding() != int(again%8) {
			t.Fatalf("padding %d, want %d", b.Padding(), again%8)
		}
		checkRows(t, b, 1)
	})
}
