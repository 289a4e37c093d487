package pg

import (
	"errors"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartRegistersDefaultName(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)

	assert.Equal(t, "Elixir.Nx.Serving.PG", DefaultScope)
	assert.Equal(t, DefaultScope, s.Name())
	require.NotNil(t, nd.ProcessByName(DefaultScope))
	assert.Equal(t, s.Pid(), nd.ProcessByName(DefaultScope).Self())
	assert.Same(t, s, Lookup(nd, ""))
	assert.Same(t, s, Lookup(nd, DefaultScope))
	assert.Nil(t, Lookup(nd, "no.such.scope"))

	_, err := Start(nd, Options{})
	assert.ErrorIs(t, err, lib.ErrTaken, "a second scope of the same name")

	_, err = Start(nd, Options{Name: strings.Repeat("x", 256)})
	assert.ErrorIs(t, err, ErrGroupName)
}

func TestJoinLeaveMultiplicity(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	p, q := spawn(t, nd).Self(), spawn(t, nd).Self()

	require.NoError(t, s.Join("g", p, p))
	require.NoError(t, s.Join("g", p))
	require.NoError(t, s.Join("g", q))
	require.NoError(t, s.Join("h", p))
	// Join returns after the table changed: reads see it at once.
	assert.True(t, sameMembers(s.Members("g"), []etf.Pid{p, p, p, q}), "%v", s.Members("g"))
	assert.True(t, sameMembers(s.LocalMembers("g"), []etf.Pid{p, p, p, q}))
	assert.Equal(t, 4, s.Count("g"))
	assert.Equal(t, []string{"g", "h"}, s.Groups())
	assert.Equal(t, []string{"g", "h"}, s.LocalGroups())

	require.NoError(t, s.Leave("g", p))
	assert.True(t, sameMembers(s.Members("g"), []etf.Pid{p, p, q}))
	require.NoError(t, s.Leave("g", p, p, q))
	assert.Nil(t, s.Members("g"))
	assert.Equal(t, []string{"h"}, s.Groups(), "an empty group disappears")
	assert.ErrorIs(t, s.Leave("g", p), ErrNotJoined)
	assert.ErrorIs(t, s.Leave("g"), ErrNotJoined)
	// Leave skips pids that are not members when some are.
	require.NoError(t, s.Join("g", q))
	require.NoError(t, s.Leave("g", p, q))
	assert.Nil(t, s.Members("g"))

	// A pid that left everything stays watched: rejoining and dying still
	// removes it.
	pp := spawn(t, nd)
	require.NoError(t, s.Join("k", pp.Self()))
	require.NoError(t, s.Leave("k", pp.Self()))
	require.NoError(t, s.Join("k", pp.Self(), pp.Self()))
	pp.Kill()
	waitFor(t, "the killed member to leave k", func() bool { return s.Count("k") == 0 })
}

func TestRandomMemberIsWeighted(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	heavy, light := spawn(t, nd).Self(), spawn(t, nd).Self()
	require.NoError(t, s.Join("g", repeatPid(heavy, 9)...))
	require.NoError(t, s.Join("g", light))

	_, ok := s.RandomMember("empty")
	assert.False(t, ok)
	n := 0
	const picks = 10000
	for range picks {
		p, ok := s.RandomMember("g")
		require.True(t, ok)
		if p == heavy {
			n++
		}
	}
	// 9 of 10 entries: expect 9,000; 8,500 is over 15 standard deviations away.
	assert.Greater(t, n, 8500)
	assert.Less(t, n, 9500)

	allocs := testing.AllocsPerRun(100, func() { s.RandomMember("g") })
	assert.Zero(t, allocs, "RandomMember is on every distributed request")
}

func TestJoinRejectsBadArguments(t *testing.T) {
	a := newNode(t)
	b := newNode(t)
	s := startScope(t, a)
	remote := spawn(t, b).Self()
	local := spawn(t, a).Self()

	assert.ErrorIs(t, s.Join("g", remote), ErrNotLocal)
	assert.ErrorIs(t, s.Join("g", local, remote), ErrNotLocal)
	assert.Nil(t, s.Members("g"), "a rejected join changes nothing")
	assert.ErrorIs(t, s.Leave("g", remote), ErrNotLocal)
	assert.ErrorIs(t, s.Join(strings.Repeat("é", 256), local), ErrGroupName)
	assert.ErrorIs(t, s.Join("\xff", local), ErrGroupName)
	require.NoError(t, s.Join(strings.Repeat("é", 255), local), "255 characters is an atom")
	require.NoError(t, s.Join("g"), "joining nobody does nothing")
	assert.Nil(t, s.Members("g"))
}

func TestJoinOfDeadPidIsDropped(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	p := spawn(t, nd)
	pid := p.Self()
	p.Kill()
	p.Wait()
	require.NoError(t, s.Join("g", pid))
	waitFor(t, "the dead pid to be dropped (noproc)", func() bool { return s.Count("g") == 0 })
}

// A gen.Server joins itself from its own callback: Join works from actors.
type selfJoiner struct {
	gen.Server
	scope *Scope
	err   chan error
}

func (j *selfJoiner) HandleInfo(sp *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	j.err <- j.scope.Join(m.(string), sp.Self(), sp.Self())
	return nil
}

func TestJoinFromActor(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	j := &selfJoiner{scope: s, err: make(chan error, 1)}
	p, err := nd.Spawn("", gen.ProcessOptions{}, j)
	require.NoError(t, err)
	require.NoError(t, p.Send(p.Self(), "workers"))
	require.NoError(t, <-j.err)
	assert.Equal(t, []etf.Pid{p.Self(), p.Self()}, s.LocalMembers("workers"))
}

func TestStopEmptiesAndRefuses(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	p := spawn(t, nd).Self()
	require.NoError(t, s.Join("g", p))
	_, events, cancel := s.Monitor("g")
	defer cancel()

	s.Stop()
	s.Stop() // twice is fine
	assert.Nil(t, s.Members("g"))
	assert.Nil(t, s.Groups())
	assert.ErrorIs(t, s.Join("g", p), ErrStopped)
	assert.ErrorIs(t, s.Leave("g", p), ErrStopped)
	_, open := <-events
	assert.False(t, open, "Monitor channels close when the scope stops")
	assert.Nil(t, Lookup(nd, ""))
	members, late, cancelLate := s.Monitor("g")
	assert.Nil(t, members)
	_, open = <-late
	assert.False(t, open)
	cancelLate()

	// The name is free again; the new incarnation starts empty.
	s2 := startScope(t, nd)
	assert.Nil(t, s2.Members("g"))
	assert.Same(t, s2, Lookup(nd, ""))
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrStopped, ErrOverloaded, ErrNotLocal, ErrGroupName, ErrNotJoined}
	for i, a := range all {
		assert.True(t, strings.HasPrefix(a.Error(), "pg: "), a.Error())
		for _, b := range all[i+1:] {
			assert.False(t, errors.Is(a, b))
		}
	}
}
