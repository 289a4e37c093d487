package actors

import (
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
)

// NodeOptions returns base with the settings every ergonx node needs:
//
//   - System.DisableAnonMetrics is always set. Without it ergo looks up
//     metrics.ergo.services and sends it a UDP packet; no ergonx node may
//     talk to anything but its peers.
//   - When base.Proto is nil, the Erlang distribution protocol is created
//     with NumHandlers = 1. ergo's default (one handler per CPU) spreads the
//     messages of one connection over several goroutines, and messages
//     between one pair of processes then arrive out of order (1,181 of
//     50,000 in a measurement on a 2-core machine). Servings rely on
//     per-caller order, so ergonx trades that parallelism for order.
//
// Everything else in base is kept. Pass the result to ergo.StartNode.
func NodeOptions(base node.Options) node.Options {
	base.System.DisableAnonMetrics = true
	if base.Proto == nil {
		po := node.DefaultProtoOptions()
		po.NumHandlers = 1
		base.Proto = dist.CreateProto(po)
	}
	return base
}
