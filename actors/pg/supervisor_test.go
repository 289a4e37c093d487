package pg

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type scopeSup struct {
	gen.Supervisor
	spec gen.SupervisorChildSpec
}

func (s *scopeSup) Init(...etf.Term) (gen.SupervisorSpec, error) {
	return gen.SupervisorSpec{
		Children: []gen.SupervisorChildSpec{s.spec},
		Strategy: gen.SupervisorStrategy{
			Type:      gen.SupervisorStrategyOneForOne,
			Intensity: 5,
			Period:    5,
			Restart:   gen.SupervisorStrategyRestartPermanent,
		},
	}, nil
}

// Under a supervisor, a crashed scope comes back empty under its name;
// Lookup finds the new incarnation and the old handle reports ErrStopped.
func TestChildSpecRestarts(t *testing.T) {
	nd := newNode(t)
	spec, err := ChildSpec(nd, Options{Name: "supervised.scope"})
	require.NoError(t, err)
	assert.Equal(t, "supervised.scope", spec.Name)
	assert.Equal(t, uint16(MailboxSize), spec.Options.MailboxSize)
	sup, err := nd.Spawn("", gen.ProcessOptions{}, &scopeSup{spec: spec})
	require.NoError(t, err)
	t.Cleanup(func() {
		// ergo gives children their supervisor's context: killing the
		// supervisor stops the scope for good (Stop would be undone by a
		// restart).
		s := Lookup(nd, "supervised.scope")
		sup.Kill()
		if s != nil {
			within(t, s.Done(), "the supervised scope to stop")
		}
	})

	first := Lookup(nd, "supervised.scope")
	require.NotNil(t, first)
	p := spawn(t, nd).Self()
	require.NoError(t, first.Join("g", p))

	// Crash it: a panic in a callback stops the process with "panic".
	require.NoError(t, first.proc.Send(first.pid, hook(func() { panic("test crash") })))
	within(t, first.Done(), "the scope to crash")
	assert.ErrorIs(t, first.Join("g", p), ErrStopped)

	var second *Scope
	waitFor(t, "the supervisor to restart the scope", func() bool {
		second = Lookup(nd, "supervised.scope")
		return second != nil && second != first
	})
	assert.Nil(t, second.Members("g"), "a restarted scope starts empty")
	require.NoError(t, second.Join("g", p))
	assert.Equal(t, []etf.Pid{p}, second.Members("g"))
}
