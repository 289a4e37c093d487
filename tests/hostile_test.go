package tests

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/erltest"
	"github.com/ergonx/ergonx/serving"
)

// Issue 11: a hostile Erlang node sends every process registered on a Go
// node a list nested a million deep and a 100 MB binary (and an empty
// tuple, a bare atom, a huge tuple). The distribution layer refuses the
// deep term before decoding it (depth bound), the binary reaches its
// process and is logged as a short prefix; no process dies, and callers
// on other nodes, Go and Erlang, still get their rows.
func TestHostileTermsToEveryRegisteredName(t *testing.T) {
	ix := newInterop(t)
	victim, caller := ix.goNode(), ix.goNode()
	_, err := serving.Start(victim, serving.Options{Name: "dbl", Serving: doublerServing(), BatchTimeout: time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, caller.Connect(victim.Name()))
	waitMembers(t, "dbl", 1, caller)
	attacker := ix.erlNode("v10")
	ix.connect(attacker, victim)

	var names []string
	for _, p := range victim.ProcessList() {
		if n := p.Name(); n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	require.Contains(t, names, serving.EndpointName)
	require.Contains(t, names, "dbl")
	t.Logf("%d registered names: %v", len(names), names)

	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = erltest.Atom(n)
	}
	sent := attacker.MustEval(t, fmt.Sprintf(`Victim = %s,
		Deep = lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 1000000)),
		Big = binary:copy(<<0>>, 100 * 1024 * 1024),
		Wide = list_to_tuple(lists:seq(1, 100000)),
		Names = [%s],
		[begin
			{N, Victim} ! Deep,
			{N, Victim} ! Big,
			{N, Victim} ! {},
			{N, Victim} ! N,
			{N, Victim} ! Wide
		 end || N <- Names],
		length(Names)`, erltest.Atom(victim.Name()), joinComma(quoted)))
	assert.Equal(t, len(names), sent)

	// Every name still runs, and a round trip through the same connection
	// after the attack shows the victim read everything sent before it.
	assert.Equal(t, etf.Atom("pong"), attacker.MustEval(t, fmt.Sprintf("net_adm:ping(%s)", erltest.Atom(victim.Name()))))
	for _, n := range names {
		assert.NotNil(t, victim.ProcessByName(n), "process %s died", n)
	}
	in, err := batch.Concatenate(tensor.New(tensor.WithShape(2, 1), tensor.WithBacking([]float32{3, 4})))
	require.NoError(t, err)
	out, err := serving.BatchedRun(testCtx(t), caller, serving.Distributed("dbl"), in)
	require.NoError(t, err)
	assert.Equal(t, []float32{6, 8}, out.(*tensor.Dense).Data())
	res := attacker.MustEval(t, fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, dbl}, %s)", erlTensor(1, 2, 1)))
	assert.Equal(t, []float32{2, 4}, decodeTensor(t, res).Data())
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
