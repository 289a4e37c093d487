package erldist

import (
	"context"
	"net"
	"strconv"
	"time"

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
func (r *hintRegistrar) Resolve(peer string) (node.Route, error) {
	route, err := r.Registrar.Resolve(peer)
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
