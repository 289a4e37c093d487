// Package wire encodes the inputs and outputs that cross nodes as Erlang
// terms, in Nx's own term shape, so that the same messages serve
// ergonx↔ergonx and ergonx↔Erlang/Elixir: Encode and Decode build and
// read ergo's etf terms, Marshal and Unmarshal write and read the
// external term format (term_to_binary's bytes) directly.
//
// # Term shapes
//
// A tensor is the Elixir struct %Nx.Tensor{} on Nx.BinaryBackend:
//
//	%{'__struct__' => 'Elixir.Nx.Tensor',
//	  data => %{'__struct__' => 'Elixir.Nx.BinaryBackend', state => <<Bytes>>},
//	  type => {Kind, Bits},          % {f,32}, {s,64}, {u,8}, {c,128}...
//	  shape => {D0, D1, ...},        % {} for a scalar
//	  names => [nil, ...],           % one per axis; [] for a scalar
//	  vectorized_axes => []}
//
// Bytes are the elements in row-major order, little-endian (complex
// numbers as real then imaginary part), as Nx.BinaryBackend keeps them.
// vectorized_axes is not in Nx 0.5's struct but is in every later one,
// which reads it with tensor.vectorized_axes; an extra key does not
// bother Nx 0.5, a missing one crashes Nx ≥ 0.6. Decode accepts it
// missing or [].
//
// gorgonia dtypes map to Nx types as Float32 ↔ {f,32}, Float64 ↔ {f,64},
// Int8…Int64 ↔ {s,8}…{s,64}, Uint8…Uint64 ↔ {u,8}…{u,64}, Complex64 ↔
// {c,64}, Complex128 ↔ {c,128}; one way only: Int → {s,64} and Uint →
// {u,64} (on 64-bit hosts), Bool → {u,8}. Nx types without a gorgonia
// dtype ({f,16}, {bf,16}, {f,8}, 2- and 4-bit integers) fail to decode
// with ErrUnsupportedType. Axis names are not kept: gorgonia has none;
// Encode writes nil for every axis and Decode accepts any atom.
//
// Containers follow Nx's: a batch.Tuple is a tuple, a batch.Map a map
// with atom keys, nested freely. A *batch.Batch is
//
//	%{'__struct__' => 'Elixir.Nx.Batch', size => Size, pad => Pad,
//	  key => KeyAtom, stack => [Container]}
//
// where the one container holds the batch's Size rows materialised, without
// padding (stack is [] for an empty batch). This is ergonx's own wire form:
// Nx's %Nx.Batch{} keeps closures in its stack, which cannot travel. It
// decodes back to a batch with the same rows, padding and key.
//
// Go numeric slices ([]float32, []float64, []int64, []int32) are 1-D
// tensors of their element type: they decode as a *tensor.Dense of shape
// (n), as Nx has no other shape for them (serving's typed servings take
// either as a row).
//
// Plain values travel as ETF has them, for client info and metadata: nil
// as the atom nil (Elixir's nil), bools and other atoms as atoms, Go
// integers as integers, floats as floats, Go strings as Erlang strings
// (STRING_EXT, a charlist on the Erlang side), []byte as binaries.
//
// # Why Nx's shape
//
// An Elixir node can send and receive the same messages as a Go node, and
// the Elixir side needs no code to read them: a decoded term is an
// %Nx.Tensor{} it can compute with.
//
// # ergo traps this package steps around
//
// ergo v1.999.224's etf package has sharp edges; the encoder here never
// produces what trips them, and the decoder tolerates what they produce:
//
//   - Its encoder loops forever, eating memory, on a top-level empty list
//     (etf.List{}, an empty slice). Encode never returns a list: the only
//     lists it writes (names, stack, vectorized_axes) are inside maps.
//   - It writes Go nil as [] (an empty list), which decodes as etf.List{}
//     and, at the top level, does not decode at all. Encode writes nil as
//     the atom nil.
//   - It decodes the atoms true and false as Go bools (in their short form
//     only): atoms are read here from either.
//   - It decodes integers 0..255 as int, others as int64, uint64 or
//     *big.Int: Decode returns int64 (uint64 above math.MaxInt64).
//   - It drops map entries whose key is a tuple and fails a whole message
//     whose map has a list or binary key: map keys here are atoms only.
//   - It encodes a remote message after Send has returned, in a connection
//     goroutine, and on an encoding error (an atom over 255 characters, a
//     string over 65535 bytes) only logs and drops the message. Encode
//     checks those limits first, and copies tensor data so that a term
//     never aliases memory its sender may change.
//   - Its decoder fails on strings of 65534 and 65535 bytes: strings here
//     stop at MaxStringBytes (65533).
//   - It puts every binary of a received message in a new slice: Decode
//     reuses that memory for tensors instead of copying it again.
//
// # Marshal and Unmarshal
//
// ergonx nodes exchange inputs and results as binaries: Marshal writes a
// value's term in the external term format without building the term,
// and Unmarshal reads the Go value straight from the bytes, without
// ergo's decoder (whose maps keyed by interfaces and term trees cost
// several times the decoding itself). They accept, refuse and return
// what Encode and Decode do, with the same errors; tests hold them to
// the former implementations, which went through ergo's etf package.
//
// Marshal writes what ergo's encoder writes, but for the order of map
// keys and SMALL_ATOM_UTF8_EXT for true and false. A tensor's keys are in
// an order that puts its data at a multiple of its element alignment
// from the start of the binary; Marshal's buffer and the copies that ergo
// makes of binaries are 8-byte aligned, so Unmarshal uses the data in
// place. Unmarshal reads every encoding Erlang may use for the same terms
// (atoms in their four encodings, integers wider than needed, large
// tuples, keys in any order), and refuses what ergo's decoder would
// silently have changed: duplicate map keys, tuple map keys (ergo drops
// the entry), improper lists, negative bignums of 64 bits (ergo wraps
// them around). It allocates as it reads, so a length that claims more
// than the bytes hold cannot make it allocate much.
//
// # Any term: EncodeTerm, TermDecoder, RawTerm
//
// Besides the Nx shapes, the package has a general codec of the external
// term format for any ergo term, built for bytes from the network (the
// distribution layer, internal/erldist, uses it for every message):
// EncodeTerm and AppendTerm write etf terms and the Go values ergo's
// encoder accepts; DecodeTerm and TermDecoder read them back into the Go
// types ergo's decoder gives (so code written against ergo's terms keeps
// working), resolving atom cache references through a table the caller
// gives, checking every length against the bytes before allocating,
// bounding nesting and decoded size, and never panicking (fuzzed); a
// RawTerm (bytes term_to_binary gave) is spliced into a term unchanged.
// See term.go for the exact type mapping.
//
// # Memory and concurrency
//
// Encode and Decode are safe for concurrent use. Encode copies tensor data
// once (Options.Share avoids it for tensors nobody writes again); a batch
// costs one copy, its materialisation. Decode copies nothing when the
// received binaries are aligned for their element type, and consumes the
// term it is given (Options.Copy leaves the term alone); Unmarshal
// likewise uses the bytes it is given as tensor memory. Marshal copies
// everything once, into the binary it returns. Every limit
// (MaxDepth, MaxRank, MaxElements, MaxTensorBytes, MaxAtomBytes,
// MaxStringBytes) holds in both directions, so everything Encode returns
// decodes.
package wire
