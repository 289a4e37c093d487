package wire_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math"
	"math/big"
	"runtime"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
)

// fromErlang is term_to_binary (OTP 25.2, default options) of
//
//	{atom, true, false, 0, 255, 256, -1, 2147483647, 2147483648,
//	 -2147483649, 18446744073709551615, 18446744073709551616,
//	 -9223372036854775808, 1.5, "str", <<"bin">>, [], [1,2|3],
//	 #{a => 1, <<"k">> => [x]}, list_to_pid("<0.85.7>"),
//	 list_to_ref("#Ref<0.1.2.3>"), 'ünïcödé', <<1:3>>, fun lists:map/2,
//	 {}, [1000,2000], "", [<<>>]}
//
// OTP writes its atoms as Latin-1 ATOM_EXT there, the non-ASCII one too.
var fromErlang = []byte{131, 104, 28, 100, 0, 4, 97, 116, 111, 109, 100, 0, 4, 116, 114, 117, 101, 100, 0, 5, 102, 97, 108, 115, 101, 97, 0, 97, 255, 98, 0, 0, 1, 0, 98, 255, 255, 255, 255, 98, 127, 255, 255, 255, 110, 4, 0, 0, 0, 0, 128, 110, 4, 1, 1, 0, 0, 128, 110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 255, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128, 70, 63, 248, 0, 0, 0, 0, 0, 0, 107, 0, 3, 115, 116, 114, 109, 0, 0, 0, 3, 98, 105, 110, 106, 108, 0, 0, 0, 2, 97, 1, 97, 2, 97, 3, 116, 0, 0, 0, 2, 100, 0, 1, 97, 97, 1, 109, 0, 0, 0, 1, 107, 108, 0, 0, 0, 1, 100, 0, 1, 120, 106, 88, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 85, 0, 0, 0, 7, 0, 0, 0, 0, 90, 0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 100, 0, 7, 252, 110, 239, 99, 246, 100, 233, 77, 0, 0, 0, 1, 3, 32, 113, 100, 0, 5, 108, 105, 115, 116, 115, 100, 0, 3, 109, 97, 112, 97, 2, 104, 0, 108, 0, 0, 0, 2, 98, 0, 0, 3, 232, 98, 0, 0, 7, 208, 106, 106, 108, 0, 0, 0, 1, 109, 0, 0, 0, 0, 106}

func fromErlangTerm() etf.Term {
	big64, _ := new(big.Int).SetString("18446744073709551616", 10)
	return etf.Tuple{
		etf.Atom("atom"), true, false, 0, 255, int64(256), int64(-1), int64(2147483647), int64(2147483648),
		int64(-2147483649), uint64(math.MaxUint64), big64, int64(math.MinInt64), 1.5, "str", []byte("bin"),
		etf.List{}, etf.List{1, 2, 3},
		etf.Map{etf.Atom("a"): 1, etf.String("k"): etf.List{etf.Atom("x")}},
		etf.Pid{Node: "nonode@nohost", ID: 85 | 7<<32},
		etf.Ref{Node: "nonode@nohost", ID: [5]uint32{3, 2, 1}},
		etf.Atom("ünïcödé"), []byte{1}, etf.Export{Module: "lists", Function: "map", Arity: 2},
		etf.Tuple{}, etf.List{int64(1000), int64(2000)}, etf.List{}, etf.List{[]byte{}},
	}
}

func TestDecodeTermReadsWhatErlangWrites(t *testing.T) {
	got, err := wire.DecodeTerm(fromErlang)
	require.NoError(t, err)
	// <<1:3>> is the byte 0b001_00000 with 3 bits used: ergo (and this
	// decoder) shift the used bits down, to 1.
	want := fromErlangTerm()
	assert.Equal(t, want, got)

	// The same term compressed (term_to_binary(T, [compressed])).
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(fromErlang[1:])
	require.NoError(t, zw.Close())
	compressed := binary.BigEndian.AppendUint32([]byte{131, 80}, uint32(len(fromErlang)-1))
	compressed = append(compressed, z.Bytes()...)
	got, err = wire.DecodeTerm(compressed)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// An improper list as etf.ListImproper when asked.
	got, err = wire.TermDecoder{ImproperLists: true}.DecodeTerm(fromErlang)
	require.NoError(t, err)
	assert.Equal(t, etf.ListImproper{1, 2, 3}, got.(etf.Tuple)[17])
}

// Byte for byte what term_to_binary(T, [{minor_version, 2}]) gives for
// {a, 1, 300, -5, "ab", <<1,2>>, [x|y], #{k => v}, 1.0e10, 4294967296,
// {}, [], true}.
func TestEncodeTermWritesWhatErlangWrites(t *testing.T) {
	want := []byte{131, 104, 13, 119, 1, 97, 97, 1, 98, 0, 0, 1, 44, 98, 255, 255, 255, 251, 107, 0, 2, 97, 98, 109, 0, 0, 0, 2, 1, 2, 108, 0, 0, 0, 1, 119, 1, 120, 119, 1, 121, 116, 0, 0, 0, 1, 119, 1, 107, 119, 1, 118, 70, 66, 2, 160, 95, 32, 0, 0, 0, 110, 5, 0, 0, 0, 0, 0, 1, 104, 0, 106, 119, 4, 116, 114, 117, 101}
	got, err := wire.EncodeTerm(etf.Tuple{
		etf.Atom("a"), 1, 300, int8(-5), "ab", []byte{1, 2}, etf.ListImproper{etf.Atom("x"), etf.Atom("y")},
		etf.Map{etf.Atom("k"): etf.Atom("v")}, 1.0e10, uint64(4294967296), etf.Tuple{}, etf.List{}, true,
	})
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestEncodeTermRoundTrips(t *testing.T) {
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890123456789", 10)
	long := strings.Repeat("x", 70000) // past STRING_EXT: a list of bytes
	in := etf.Tuple{
		nil, etf.Atom(strings.Repeat("é", 255)), huge, float32(0.5), etf.String("bin"), etf.Charlist("héllo"),
		[]int{1, 2}, []string{}, map[string]int{"k": 3}, etf.Alias{Node: "n@h", Creation: 9, ID: [5]uint32{1, 2, 3, 4, 5}},
		etf.Port{Node: "n@h", ID: 7, Creation: 3},
		etf.Function{Arity: 1, Index: 4, Module: "m", OldIndex: 2, OldUnique: 99, Pid: etf.Pid{Node: "n@h", ID: 1, Creation: 1},
			FreeVars: []etf.Term{etf.Atom("v")}},
		long,
	}
	b, err := wire.EncodeTerm(in)
	require.NoError(t, err)
	got, err := wire.DecodeTerm(b)
	require.NoError(t, err)
	codes := etf.List{int('h'), int('é'), int('l'), int('l'), int('o')}
	longList := make(etf.List, len(long))
	for i := range longList {
		longList[i] = int('x')
	}
	want := etf.Tuple{
		etf.List{}, etf.Atom(strings.Repeat("é", 255)), huge, 0.5, []byte("bin"), codes,
		etf.List{1, 2}, etf.List{}, etf.Map{"k": 3}, etf.Ref{Node: "n@h", Creation: 9, ID: [5]uint32{1, 2, 3, 4, 5}},
		etf.Port{Node: "n@h", ID: 7, Creation: 3}, in[11], longList,
	}
	assert.Equal(t, want, got)
}

func TestRawTermIsSplicedAsIs(t *testing.T) {
	inner, err := wire.RawTermOf(etf.Tuple{etf.Atom("big"), make([]byte, 1000)})
	require.NoError(t, err)
	b, err := wire.EncodeTerm(etf.List{inner, 1})
	require.NoError(t, err)
	assert.True(t, bytes.Contains(b, inner[1:]), "the raw bytes are in place")
	got, err := wire.DecodeTerm(b)
	require.NoError(t, err)
	assert.Equal(t, etf.List{etf.Tuple{etf.Atom("big"), make([]byte, 1000)}, 1}, got)

	// Broken raw terms fail the encoding, never the peer's decoder.
	for name, raw := range map[string]wire.RawTerm{
		"empty":         {},
		"no version":    {104, 0},
		"truncated":     inner[:len(inner)-1],
		"trailing":      append(append(wire.RawTerm{}, inner...), 97),
		"atom cache":    {131, 82, 0},
		"unknown tag":   {131, 200},
		"huge list":     {131, 108, 255, 255, 255, 255, 106},
		"bad inflation": {131, 80, 0, 0, 0, 5, 1, 2, 3},
	} {
		_, err := wire.EncodeTerm(etf.Tuple{raw})
		assert.ErrorIs(t, err, wire.ErrMalformed, name)
	}
}

func TestEncodeTermRefusesWhatErlangCannotHold(t *testing.T) {
	type point struct{ X int }
	for name, tc := range map[string]struct {
		v    etf.Term
		kind error
	}{
		"struct":      {etf.Tuple{1, point{1}}, wire.ErrUnsupportedType},
		"channel":     {make(chan int), wire.ErrUnsupportedType},
		"NaN":         {math.NaN(), wire.ErrUnsupportedType},
		"long atom":   {etf.Atom(strings.Repeat("a", 256)), wire.ErrTooLarge},
		"bad UTF-8":   {etf.Atom("\xff"), wire.ErrMalformed},
		"short tail":  {etf.ListImproper{1}, wire.ErrMalformed},
		"nil big int": {(*big.Int)(nil), wire.ErrUnsupportedType},
	} {
		_, err := wire.EncodeTerm(tc.v)
		assert.ErrorIs(t, err, tc.kind, name)
	}
	// A value nested past the depth limit.
	var deep etf.Term = 1
	for range wire.DefaultTermDepth + 1 {
		deep = etf.Tuple{deep}
	}
	_, err := wire.EncodeTerm(deep)
	assert.ErrorIs(t, err, wire.ErrTooLarge)
}

// A list nested a million deep is 6 MB of bytes: refused at the depth
// limit, by the decoder and by Skip, without overflowing the stack.
func TestDecodeTermRefusesDeepNestingWithoutRecursingFurther(t *testing.T) {
	const n = 1_000_000
	b := make([]byte, 0, 6*n+2)
	b = append(b, 131)
	for range n {
		b = append(b, 108, 0, 0, 0, 1)
	}
	b = append(b, 106)
	for range n {
		b = append(b, 106)
	}
	_, err := wire.DecodeTerm(b)
	assert.ErrorIs(t, err, wire.ErrTooLarge)
	_, _, err = wire.TermDecoder{}.Skip(b[1:])
	assert.ErrorIs(t, err, wire.ErrTooLarge)

	// Within a smaller limit, a shallower one too.
	_, err = wire.TermDecoder{MaxDepth: 3}.DecodeTerm([]byte{131, 104, 1, 104, 1, 104, 1, 104, 1, 97, 1})
	assert.ErrorIs(t, err, wire.ErrTooLarge)
	got, err := wire.TermDecoder{MaxDepth: 4}.DecodeTerm([]byte{131, 104, 1, 104, 1, 104, 1, 104, 1, 97, 1})
	require.NoError(t, err)
	assert.Equal(t, etf.Tuple{etf.Tuple{etf.Tuple{etf.Tuple{1}}}}, got)
}

// Lengths that claim more than the bytes hold are refused before anything
// is allocated for them.
func TestDecodeTermChecksClaimsBeforeAllocating(t *testing.T) {
	claims := map[string][]byte{
		"list":        {131, 108, 255, 255, 255, 255, 106},
		"large tuple": {131, 105, 255, 255, 255, 255},
		"map":         {131, 116, 255, 255, 255, 255},
		"binary":      {131, 109, 255, 255, 255, 255, 1},
		"large big":   {131, 111, 255, 255, 255, 255, 0, 1},
		"string":      {131, 107, 255, 255, 1},
		"atom":        {131, 118, 255, 255, 97},
		"compressed":  {131, 80, 255, 255, 255, 255, 120, 156},
		"fun":         {131, 112, 255, 255, 255, 255},
	}
	for name, b := range claims {
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, err = wire.DecodeTerm(b)
		}
		runtime.ReadMemStats(&after)
		assert.Error(t, err, name)
		assert.Less(t, (after.TotalAlloc-before.TotalAlloc)/10, uint64(2048), "%s: only the error is allocated", name)
	}
	// The decoded-size budget.
	b := append([]byte{131, 109, 0, 0, 4, 0}, make([]byte, 1024)...)
	_, err := wire.TermDecoder{MaxSize: 1023}.DecodeTerm(b)
	assert.ErrorIs(t, err, wire.ErrTooLarge)
	_, err = wire.TermDecoder{MaxSize: 1024}.DecodeTerm(b)
	assert.NoError(t, err)
}

func TestDecodeTermResolvesAtomCacheReferences(t *testing.T) {
	d := wire.TermDecoder{AtomCache: []etf.Atom{"zero", "true"}}
	got, rest, err := d.Decode([]byte{104, 2, 82, 0, 82, 1, 99})
	require.NoError(t, err)
	assert.Equal(t, etf.Tuple{etf.Atom("zero"), true}, got)
	assert.Equal(t, []byte{99}, rest)
	_, _, err = d.Decode([]byte{82, 2})
	assert.ErrorIs(t, err, wire.ErrMalformed)

	rest, cached, err := d.Skip([]byte{104, 2, 82, 0, 97, 1, 99})
	require.NoError(t, err)
	assert.True(t, cached)
	assert.Equal(t, []byte{99}, rest)
	_, cached, err = d.Skip([]byte{104, 1, 97, 1})
	require.NoError(t, err)
	assert.False(t, cached)
}

func TestDecodeTermRefusesMalformedTerms(t *testing.T) {
	for name, b := range map[string][]byte{
		"no version":       {104, 0},
		"trailing":         {131, 97, 1, 97},
		"NaN":              {131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0},
		"bad UTF-8 atom":   {131, 119, 1, 0xff},
		"duplicate key":    {131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2},
		"tuple key":        {131, 116, 0, 0, 0, 1, 104, 0, 97, 1},
		"unknown tag":      {131, 200},
		"pid without node": {131, 88, 97, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"six-word ref":     {131, 90, 0, 6, 119, 1, 110, 0, 0, 0, 0},
	} {
		_, err := wire.DecodeTerm(b)
		assert.Error(t, err, name)
	}
}

func BenchmarkEncodeTermMessage(b *testing.B) {
	msg := etf.Tuple{etf.Atom("ergonx_run"), etf.Pid{Node: "a@localhost", ID: 1234, Creation: 1},
		etf.List{etf.Tuple{int64(42), etf.Atom("digits"), make([]byte, 256)}}}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = wire.AppendTerm(buf[:0], msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTermMessage(b *testing.B) {
	msg := etf.Tuple{etf.Atom("ergonx_run"), etf.Pid{Node: "a@localhost", ID: 1234, Creation: 1},
		etf.List{etf.Tuple{int64(42), etf.Atom("digits"), make([]byte, 256)}}}
	enc, err := wire.EncodeTerm(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.DecodeTerm(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// With ShareBinaries a decoded binary is a slice of the input (capped, so
// that appending to it copies); without, a copy.
func TestShareBinariesAliasesTheInput(t *testing.T) {
	enc, err := wire.EncodeTerm(etf.Tuple{[]byte("abc"), 1})
	require.NoError(t, err)
	in := enc[1:] // Decode takes the term without its version byte
	for _, share := range []bool{false, true} {
		got, rest, err := wire.TermDecoder{ShareBinaries: share}.Decode(in)
		require.NoError(t, err)
		require.Empty(t, rest)
		bin := got.(etf.Tuple)[0].([]byte)
		require.Equal(t, []byte("abc"), bin)
		assert.Equal(t, len(bin), cap(bin))
		i := bytes.Index(in, []byte("abc"))
		in[i] = 'x'
		assert.Equal(t, share, bin[0] == 'x', "share=%v: the binary follows the input", share)
		in[i] = 'a'
	}
}
