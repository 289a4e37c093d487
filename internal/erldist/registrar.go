package erldist

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// Registrar wraps a node's registrar so that the handshake learns whom
// ergo dials: ergo resolves a node name to a port and then hands the
// handshake only the address. Knowing the name up front lets concurrent
// dials of one node wait for each other and simultaneous dials from both
// sides be settled as OTP settles them. Without it (a static route), dials
// are told apart by address only.
func (h *Handshake) Registrar(inner node.Registrar) node.Registrar {
	if inner == nil {
		return nil
	}
	if r, ok := inner.(*hintRegistrar); ok && r.h == h {
		return r
	}
	return &hintRegistrar{Registrar: inner, h: h}
}

type hintRegistrar struct {
	node.Registrar
	h *Handshake
}

// Resolve resolves through the wrapped registrar and records the answer.
//
// ergo v1.999.224's EPMD client indexes the first byte of EPMD's answer
// without checking that there is one: an EPMD that closes the connection
// without answering (it is stopping) panics it. ergo resolves from inside
// a terminating process's monitor bookkeeping, with a lock held, and its
// recovery takes the same lock again: the node deadlocks at its next stop.
// A panic here is turned into the error it should have been.
func (r *hintRegistrar) Resolve(peer string) (route node.Route, err error) {
	defer func() {
		if p := recover(); p != nil {
			route, err = node.Route{}, fmt.Errorf("%w: resolving %s: the registrar failed: %v", lib.ErrNoRoute, peer, p)
		}
	}()
	route, err = r.Registrar.Resolve(peer)
	if err == nil && route.Port != 0 {
		// ergo dials route.Host; the handshake sees the address it
		// resolved to.
		if ips, lerr := net.LookupHost(route.Host); lerr == nil {
			for _, ip := range ips {
				r.h.hint(net.JoinHostPort(ip, strconv.Itoa(int(route.Port))), peer)
			}
		}
	}
	return route, err
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
