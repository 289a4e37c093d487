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
//
//   - When base.Proto is nil, the Erlang distribution protocol is created
//     with NumHandlers = 1. ergo's default (one handler per CPU) spreads the
//     messages of one connection over several goroutines, and messages
//     between one pair of processes then arrive out of order (1,181 of
//     50,000 in a measurement on a 2-core machine). Servings rely on
//     per-caller order, so ergonx trades that parallelism for order.
//
//   - The fragmentation unit is FragmentationUnit (60,000 bytes) instead
//     of ergo's 65,000. ergo's link flusher writes any packet over 64,000
//     bytes straight to the socket, ahead of the smaller packets still
//     in its buffer: the peer reads a corrupted stream ("Malformed Dist
//     proto") and the connection drops with the messages on it
//     (reproduced by tests.TestErgoFlusherCorruptsLargePackets). With a
//     smaller unit every packet goes through the buffer, in order.
//
// Everything else in base is kept. Pass the result to ergo.StartNode.
func NodeOptions(base node.Options) node.Options {
	base.System.DisableAnonMetrics = true
	if base.Proto == nil {
		base.Proto = dist.CreateProto(ProtoOptions())
	}
	return base
}

// FragmentationUnit is the largest distribution packet ergonx nodes send;
// see NodeOptions.
const FragmentationUnit = 60_000

// ProtoOptions returns the distribution protocol options of ergonx nodes
// (see NodeOptions), for callers that build their own dist.CreateProto.
func ProtoOptions() node.ProtoOptions {
	po := node.DefaultProtoOptions()
	po.NumHandlers = 1
	po.FragmentationUnit = FragmentationUnit
	return po
}
