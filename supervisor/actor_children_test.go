package supervisor_test

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/supervisor"
)

// recorder is an actors.Actor behaviour that reports the exit signals it
// gets (when it traps exits) and the reason it terminates with.
type recorder struct {
	name  string
	trap  bool
	notes chan<- string
}

func (r *recorder) Init(p gen.Process, _ ...etf.Term) error {
	p.SetTrapExit(r.trap)
	return nil
}

func (r *recorder) HandleMessage(p gen.Process, _ etf.Pid, msg etf.Term) string {
	if ex, ok := msg.(gen.MessageExit); ok {
		from := "another process"
		if ex.Pid == p.Self() {
			from = "itself"
		}
		r.notes <- r.name + " exit " + ex.Reason + " from " + from
		return ex.Reason
	}
	return ""
}

func (r *recorder) Terminate(_ gen.Process, reason string) {
	r.notes <- r.name + " terminate " + reason
}

// Children that run on actors.Actor are stopped through their own loop
// (supervisor.LoopStopper), never by ergo's Kill, whose reads of the
// process race with ergo's cleanup: one that traps exits gets the exit
// signal shutdown as from itself (what ergo's Process.Exit gives), one
// that does not ends with shutdown — not ergo's "kill" or "shutdown" at
// random.
func TestActorChildrenStopThroughTheirLoopWithShutdown(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	notes := make(chan string, 8)
	child := func(name string, trap bool) supervisor.ChildSpec {
		return supervisor.ChildSpec{Name: name, Start: func() gen.ProcessBehavior {
			return actors.NewActor(&recorder{name: name, trap: trap, notes: notes})
		}}
	}
	spec := supervisor.Spec{Strategy: supervisor.OneForAll, Children: []supervisor.ChildSpec{child("trapping", true), child("plain", false)}}
	sup, err := supervisor.Start(nd, "actor-children", spec)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, supervisor.Stop(ctx, sup))
	var got []string
	for range 3 {
		select {
		case n := <-notes:
			got = append(got, n)
		case <-ctx.Done():
			t.Fatalf("only %q before the timeout", got)
		}
	}
	assert.Equal(t, []string{
		"plain terminate shutdown",
		"trapping exit shutdown from itself", "trapping terminate shutdown",
	}, got)
}
