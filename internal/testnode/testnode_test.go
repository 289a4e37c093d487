package testnode

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

type echo struct {
	gen.Server
	got chan etf.Term
}

func (e *echo) HandleInfo(_ *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	e.got <- m
	return gen.ServerStatusOK
}

// Two test nodes reach each other through static routes, with no EPMD.
func TestMeshDeliversRemoteMessages(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	Mesh(t, a, b)

	e := &echo{got: make(chan etf.Term, 1)}
	if _, err := b.Spawn("echo", gen.ProcessOptions{}, e); err != nil {
		t.Fatal(err)
	}
	sender, err := a.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(gen.ProcessID{Name: "echo", Node: b.Name()}, etf.Atom("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-e.got:
		if m != etf.Atom("hello") {
			t.Fatalf("got %#v, want hello", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message did not arrive within 10 s")
	}
}
