package actors_test

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/testnode"
)

// recorder reports what it handles; "stop" stops it, "boom" panics.
type recorder struct {
	trap bool
	got  chan etf.Term
	end  chan string
}

func newRecorder(trap bool) *recorder {
	return &recorder{trap: trap, got: make(chan etf.Term, 16), end: make(chan string, 1)}
}

func (r *recorder) Init(p gen.Process, _ ...etf.Term) error {
	p.SetTrapExit(r.trap)
	return nil
}

func (r *recorder) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	switch msg {
	case etf.Atom("stop"):
		return "normal"
	case etf.Atom("boom"):
		panic("boom")
	}
	r.got <- msg
	return ""
}

func (r *recorder) Terminate(_ gen.Process, reason string) { r.end <- reason }

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing within 10 s")
		var zero T
		return zero
	}
}

// The message that kills an ergo gen.Server, an empty tuple, is just a
// message to an Actor.
func TestActorSurvivesAnEmptyTuple(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(false)
	p, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	require.NoError(t, p.Send(p.Self(), etf.Tuple{}))
	assert.Equal(t, etf.Tuple{}, next(t, r.got))
	require.NoError(t, p.Send(p.Self(), etf.Atom("stop")))
	assert.Equal(t, "normal", next(t, r.end))
}

func TestActorTrapsExitsOnlyWhenAsked(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(true)
	p, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	require.NoError(t, p.Exit("shutdown"))
	exit, ok := next(t, r.got).(gen.MessageExit)
	require.True(t, ok)
	assert.Equal(t, "shutdown", exit.Reason)
	require.NoError(t, p.Send(p.Self(), etf.Atom("stop")))
	assert.Equal(t, "normal", next(t, r.end))

	r = newRecorder(false)
	p, err = nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	require.NoError(t, p.Exit("shutdown"))
	reason := next(t, r.end)
	assert.Contains(t, []string{"shutdown", "kill"}, reason, "ergo also cancels a non-trapping process's context")
}

func TestActorPanicEndsTheProcessCleanly(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(false)
	p, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	require.NoError(t, p.Send(p.Self(), etf.Atom("boom")))
	assert.Equal(t, "panic", next(t, r.end))
}

func TestActorKilledRunsTerminate(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(true)
	p, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	p.Kill()
	assert.Equal(t, "kill", next(t, r.end))
}

func TestActorRefusesDirect(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(false)
	p, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	_, err = p.Direct("hello")
	require.Error(t, err)
	require.NoError(t, p.Send(p.Self(), etf.Atom("stop")))
	next(t, r.end)
}

// A gen_server call is answered (badarg by default), so callers never
// wait for their timeout.
func TestActorAnswersCalls(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(false)
	p, err := nd.Spawn("called", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	out := make(chan etf.Term, 1)
	caller, err := nd.Spawn("", gen.ProcessOptions{}, &callOnce{to: p.Self(), out: out})
	require.NoError(t, err)
	require.NoError(t, caller.Send(caller.Self(), etf.Atom("go")))
	assert.Equal(t, etf.Atom("badarg"), next(t, out))
	require.NoError(t, p.Send(p.Self(), etf.Atom("stop")))
	next(t, r.end)
}

type callOnce struct {
	gen.Server
	to  etf.Pid
	out chan etf.Term
}

func (c *callOnce) HandleInfo(sp *gen.ServerProcess, _ etf.Term) gen.ServerStatus {
	reply, err := sp.CallWithTimeout(c.to, etf.Atom("hello"), 5)
	if err != nil {
		reply = etf.Atom(err.Error())
	}
	c.out <- reply
	return gen.ServerStatusOK
}

// OTP 24+'s call tag [alias | Ref] gets its reply, {[alias | Ref], Reply},
// through the alias; a malformed tag gets none and is a plain message.
func TestActorAnswersAliasCalls(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	r := newRecorder(false)
	p, err := nd.Spawn("called", gen.ProcessOptions{}, actors.NewActor(r))
	require.NoError(t, err)
	w := newRecorder(false)
	waiter, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(w))
	require.NoError(t, err)
	alias, err := waiter.CreateAlias()
	require.NoError(t, err)
	ref := etf.Ref(alias)
	for _, tag := range []etf.Term{
		etf.ListImproper{etf.Atom("alias"), ref}, // as a local sender builds it
		etf.List{etf.Atom("alias"), ref},         // as it arrives from another node
	} {
		require.NoError(t, waiter.Send(p.Self(), etf.Tuple{etf.Atom("$gen_call"), etf.Tuple{waiter.Self(), tag}, etf.Atom("q")}))
		assert.Equal(t, etf.Tuple{etf.ListImproper{etf.Atom("alias"), ref}, etf.Atom("badarg")}, next(t, w.got))
	}
	bad := etf.Tuple{etf.Atom("$gen_call"), etf.Tuple{waiter.Self(), etf.List{etf.Atom("other"), ref}}, etf.Atom("q")}
	require.NoError(t, waiter.Send(p.Self(), bad))
	assert.Equal(t, bad, next(t, r.got))
}
