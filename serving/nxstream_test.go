package serving

import (
	"context"
	"sync"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
)

// The messages a streaming serving sends an Nx v0.6+ caller (the exit
// reason that ends the stream comes from erldist, merged later; only the
// messages are checked here): {Ref, streaming}, then {Ref, Event} for
// each hook and batch event, in order, values in Nx's term shape.
func TestNxCallerOfAStreamingServingGetsTheEvents(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: addFiveRoundAbout().Streaming("double", "plus_ten"), BatchSize: 2})
	client := etf.Pid{Node: "nx@127.0.0.1", ID: 42}
	ref := etf.Ref{Node: "nx@127.0.0.1", ID: [5]uint32{1, 2, 3}}
	input, err := wire.Encode(row(1, 2))
	require.NoError(t, err)

	var mu sync.Mutex
	var sent []etf.Term
	send := func(to any, msg etf.Term) error {
		assert.Equal(t, client, to)
		mu.Lock()
		sent = append(sent, msg)
		mu.Unlock()
		return nil
	}
	_, _ = serveNx(context.Background(), nd.Name(), nxFunction, []etf.Term{client, ref, etf.Atom(t.Name()), input}, send)

	require.Len(t, sent, 4)
	assert.Equal(t, etf.Tuple{ref, etf.Atom("streaming")}, sent[0])
	decode := func(msg etf.Term, i int) []float32 {
		tup := msg.(etf.Tuple)
		require.Equal(t, ref, tup[0])
		v, err := wire.Decode(tup[1].(etf.Tuple)[i])
		require.NoError(t, err)
		return floats(t, v)
	}
	assert.Equal(t, etf.Atom("double"), sent[1].(etf.Tuple)[1].(etf.Tuple)[0])
	assert.Equal(t, []float32{2, 4}, decode(sent[1], 1))
	assert.Equal(t, etf.Atom("plus_ten"), sent[2].(etf.Tuple)[1].(etf.Tuple)[0])
	assert.Equal(t, []float32{12, 14}, decode(sent[2], 1))
	assert.Equal(t, etf.Atom("batch"), sent[3].(etf.Tuple)[1].(etf.Tuple)[0])
	assert.Equal(t, []float32{6, 7}, decode(sent[3], 1))

	// An Nx v0.5 caller (no client pid) gets no stream; nor does a
	// request refused before its first event.
	sent = nil
	_, _ = serveNx(context.Background(), nd.Name(), nxFunction, []etf.Term{ref, etf.Atom(t.Name()), input}, send)
	three, err := wire.Encode(row(1, 2, 3))
	require.NoError(t, err)
	_, _ = serveNx(context.Background(), nd.Name(), nxFunction, []etf.Term{client, ref, etf.Atom(t.Name()), three}, send)
	assert.Empty(t, sent)
}
