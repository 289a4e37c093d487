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

type RawTerm []byte

func TermReason(t etf.Term) (string, error)  { return "", errStub }
func RawTermReason(b []byte) (string, error) { return "", errStub }
func ReasonTerm(reason string) etf.Term      { return etf.Atom(reason) }
func AwaitSpawnReply(p gen.Process)          {}

type Spawn struct{}

func SpawnMonitor(ctx context.Context, from gen.Process, peer, module, function string, args []etf.Term) (*Spawn, error) {
	return nil, errStub
}
