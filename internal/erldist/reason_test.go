package erldist_test

import (
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/internal/erldist"
)

func TestReasonsRoundTrip(t *testing.T) {
	// Atoms stay plain strings, as ergo's reasons are.
	r, err := erldist.TermReason(etf.Atom("normal"))
	require.NoError(t, err)
	assert.Equal(t, "normal", r)
	r, err = erldist.TermReason(true)
	require.NoError(t, err)
	assert.Equal(t, "true", r)
	assert.Equal(t, true, erldist.ReasonTerm("true"))
	assert.Equal(t, etf.Atom("noproc"), erldist.ReasonTerm("noproc"))

	// Any other term, of any size.
	big := etf.Tuple{etf.Atom("result"), make([]byte, 1<<20), etf.List{1, 2}}
	r, err = erldist.TermReason(big)
	require.NoError(t, err)
	assert.Equal(t, etf.Tuple{etf.Atom("result"), make([]byte, 1<<20), etf.List{1, 2}}, erldist.ReasonTerm(r))

	// The same from term_to_binary bytes, checked, not decoded.
	raw, err := wire.EncodeTerm(big)
	require.NoError(t, err)
	r2, err := erldist.RawTermReason(raw)
	require.NoError(t, err)
	assert.Equal(t, r, r2)
	rawAtom, err := wire.EncodeTerm(etf.Atom("shutdown"))
	require.NoError(t, err)
	r, err = erldist.RawTermReason(rawAtom)
	require.NoError(t, err)
	assert.Equal(t, "shutdown", r)
	_, err = erldist.RawTermReason([]byte{131, 104, 2, 97})
	assert.ErrorIs(t, err, wire.ErrMalformed)

	// A plain string that cannot be an atom is the binary it travels as.
	long := strings.Repeat("x", 256)
	assert.Equal(t, []byte(long), erldist.ReasonTerm(long))
	assert.Equal(t, []byte("\xff\xfe"), erldist.ReasonTerm("\xff\xfe"))

	// A value that is no Erlang term is an error.
	_, err = erldist.TermReason(make(chan int))
	assert.ErrorIs(t, err, wire.ErrUnsupportedType)
}
