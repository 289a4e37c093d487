package wire

import (
	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// encodeBatch builds the %Nx.Batch{} term of b: ergonx's wire form, not
// Nx's (whose stack holds closures), with the rows materialised into one
// container and the padding as a count.
func (o Options) encodeBatch(b *batch.Batch, depth int) (etf.Term, error) {
	if b == nil {
		return nil, errorf(ErrUnsupportedType, "nil *batch.Batch")
	}
	if depth >= MaxDepth {
		return nil, tooDeep()
	}
	key := b.Key()
	if err := checkAtom(key); err != nil {
		err.Msg = "batch key: " + err.Msg
		return nil, err
	}
	stack := emptyList
	if b.Template() != nil {
		rows, err := unpadded(b)
		if err != nil {
			return nil, &Error{Kind: ErrUnsupportedType, Path: ".stack[0]", Msg: "cannot materialise the batch", Err: err}
		}
		// The rows are new memory that only this term will hold: no
		// need to copy them again.
		c, err := Options{Share: true}.encode(rows, depth+1)
		if err != nil {
			return nil, atKey(atIndex(err, 0), "stack")
		}
		stack = etf.List{c}
	}
	return etf.Map{
		keyStruct: atomNxBatch,
		keySize:   b.Size(),
		keyPad:    b.Padding(),
		keyKey:    etf.Atom(key),
		keyStack:  stack,
	}, nil
}

// unpadded materialises the rows of b without its padding.
func unpadded(b *batch.Batch) (any, error) {
	if b.Padding() == 0 {
		return b.Materialize()
	}
	if b.Size() > 0 {
		// Splitting at Size leaves every row, and no padding, on the
		// left; nothing is copied until Materialize.
		left, _, err := b.Split(b.Size())
		if err != nil {
			return nil, err
		}
		return left.Materialize()
	}
	// Entries of zero rows: the padding rows are all there is. Split
	// leaves one of them on the left (materialising them all could take
	// gigabytes), and no row is kept.
	left, _, err := b.Split(1)
	if err != nil {
		return nil, err
	}
	c, err := left.Materialize()
	if err != nil {
		return nil, err
	}
	return batch.SliceRows(c, 0, 0)
}

// decodeBatch decodes an %Nx.Batch{} map (its __struct__ already checked)
// inside depth containers.
func (dec *decoder) decodeBatch(m etf.Map, depth int) (*batch.Batch, error) {
	if depth >= MaxDepth {
		return nil, tooDeep()
	}
	sizeT, okSize := m[keySize]
	padT, okPad := m[keyPad]
	keyT, okKey := m[keyKey]
	stackT, okStack := m[keyStack]
	switch {
	case !okSize:
		return nil, errorf(ErrMalformed, "Nx.Batch without a size key")
	case !okPad:
		return nil, errorf(ErrMalformed, "Nx.Batch without a pad key")
	case !okKey:
		return nil, errorf(ErrMalformed, "Nx.Batch without a key key")
	case !okStack:
		return nil, errorf(ErrMalformed, "Nx.Batch without a stack key")
	}
	if len(m) != 5 {
		err := unknownKey(m, "Nx.Batch", keyStruct, keySize, keyPad, keyKey, keyStack)
		err.Msg += " (ergonx sends batches as size, pad, key and stack, the rows; Nx's own batches hold closures and cannot travel)"
		return nil, err
	}
	size, err := batchCount(sizeT, "size")
	if err != nil {
		return nil, err
	}
	pad, err := batchCount(padT, "pad")
	if err != nil {
		return nil, err
	}
	key, ok := atomText(keyT)
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.Batch key is %s, want an atom", showTerm(keyT))
	}
	if err := checkAtom(key); err != nil {
		err.Msg = "batch key: " + err.Msg
		return nil, err
	}
	list, ok := stackT.(etf.List)
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.Batch stack is %s, want a list of containers", showTerm(stackT))
	}
	entries := make([]any, len(list))
	for i, e := range list {
		v, err := dec.decode(e, depth+1)
		if err != nil {
			return nil, atKey(atIndex(err, i), "stack")
		}
		entries[i] = v
	}
	b := batch.New()
	if len(entries) > 0 {
		if err := b.Concatenate(entries...); err != nil {
			return nil, &Error{Kind: ErrMalformed, Path: ".stack", Msg: "the rows do not make a batch", Err: err}
		}
	}
	if b.Size() != size {
		return nil, errorf(ErrMalformed, "Nx.Batch size is %d but its stack holds %d rows", size, b.Size())
	}
	if err := checkPadded(entries, size, pad); err != nil {
		return nil, err
	}
	if err := b.Pad(pad); err != nil {
		return nil, &Error{Kind: ErrMalformed, Msg: "Nx.Batch pad", Err: err}
	}
	b.SetKey(key)
	return b, nil
}

// batchCount decodes a batch's size or pad.
func batchCount(t etf.Term, what string) (int, *Error) {
	n, res := termInt(t)
	switch {
	case res == intNotInt:
		return 0, errorf(ErrMalformed, "Nx.Batch %s is %s, want an integer", what, showTerm(t))
	case res == intTooLarge || n > MaxElements:
		return 0, errorf(ErrTooLarge, "Nx.Batch %s is %s, limit %d (MaxElements)", what, showTerm(t), int64(MaxElements))
	case n < 0:
		return 0, errorf(ErrMalformed, "Nx.Batch %s is %d, want >= 0", what, n)
	}
	return int(n), nil
}

// checkPadded makes sure that materialising the batch, padding included,
// builds no tensor past MaxElements: a few bytes of pad count must not
// make a receiver allocate gigabytes.
func checkPadded(entries []any, size, pad int) *Error {
	if len(entries) == 0 {
		return nil
	}
	leaves, err := batch.Leaves(entries[0])
	if err != nil {
		return nil // Concatenate accepted it; cannot happen
	}
	for _, d := range leaves {
		if err := checkPaddedLeaf(d, size, pad); err != nil {
			return err
		}
	}
	return nil
}

// checkPaddedLeaf is checkPadded for one tensor of the batch's rows.
func checkPaddedLeaf(d *tensor.Dense, size, pad int) *Error {
	shape := d.Shape()
	if len(shape) == 0 {
		return nil
	}
	rows := int64(size) + int64(pad) // at most 2*MaxElements
	perRow := int64(1)
	for _, n := range shape[1:] {
		perRow *= int64(n) // the tensor passed checkShape: no overflow
	}
	if perRow > 0 && rows > MaxElements/perRow {
		return errorf(ErrTooLarge, "Nx.Batch of %d rows and %d padding rows would materialise tensors of %d×%d elements, limit %d (MaxElements)",
			size, pad, rows, perRow, int64(MaxElements))
	}
	return nil
}
