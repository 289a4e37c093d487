package erltest_test

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/erltest"
)

func TestEvalReturnsTermsAndExceptions(t *testing.T) {
	epmd := erltest.StartEPMD(t)
	n := erltest.Start(t, erltest.Options{Cookie: "c", EPMD: epmd})
	assert.Equal(t, etf.Tuple{etf.Atom("ok"), 3, []byte("bin")}, n.MustEval(t, "X = 1 + 2, {ok, X, <<\"bin\">>}"))
	assert.Equal(t, etf.Atom(n.Name), n.MustEval(t, "node()"))
	_, err := n.Eval(t.Context(), "error(boom)")
	var ee *erltest.EvalError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, etf.Atom("error"), ee.Class)
	assert.Equal(t, etf.Atom("boom"), ee.Reason)
}
