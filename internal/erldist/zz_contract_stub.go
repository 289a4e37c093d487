// Package erldist: TEMPORARY stub of the contract the erldist branch
// implements, so that the serving side compiles before the merge. Deleted
// at the merge.
package erldist

import (
	"context"
	"errors"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

var errStub = errors.New("erldist: stub")

var ErrNoConnection = errors.New("erldist: noconnection")

func TermReason(t etf.Term) (string, error)  { return "", errStub }
func RawTermReason(b []byte) (string, error) { return "", errStub }
func ReasonTerm(reason string) etf.Term      { return etf.Atom(reason) }
func AwaitSpawnReply(p gen.Process)          {}

type SpawnReply struct {
	Pid etf.Pid
	Err error
}

type Spawn struct{}

func (s *Spawn) Cancel()                  {}
func (s *Spawn) Down() <-chan etf.Term    { return nil }
func (s *Spawn) Reply() <-chan SpawnReply { return nil }
func (s *Spawn) Pid() (etf.Pid, bool)     { return etf.Pid{}, false }

func SpawnMonitor(ctx context.Context, from gen.Process, peer, module, function string, args []etf.Term) (*Spawn, error) {
	return nil, errStub
}
