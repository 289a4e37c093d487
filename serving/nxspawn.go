package serving

import (
	"context"
	"errors"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/internal/erldist"
)

// nxAwait waits for the DOWN of a spawned Nx request. TEMPORARY: adapted
// to erldist.Spawn at the merge.
func nxAwait(ctx context.Context, sp *erldist.Spawn) (etf.Term, error) {
	return nil, errors.New("not yet")
}
