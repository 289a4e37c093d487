package actors

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"

	"github.com/ergonx/ergonx/internal/erldist"
)

// NodeOptions returns base with the settings every ergonx node needs:
//
//   - System.DisableAnonMetrics is always set. Without it ergo looks up
//     metrics.ergo.services and sends it a UDP packet; no ergonx node may
//     talk to anything but its peers.
//
//   - The Erlang distribution is ergonx's own (internal/erldist) wherever
//     base leaves Handshake or Proto nil: handshake version 6 both ways
//     (OTP 25 accepts nothing older), every control message OTP 25 sends,
//     exit reasons that are terms of any size, spawn requests with any
//     option list, one ordered writer per connection (the messages of one
//     sender to one receiver arrive in the order sent; large messages are
//     fragmented without holding up small ones) and one reader. ergo's own
//     proto/dist reorders messages with its default handlers and corrupts
//     its stream with large packets; see the erldist package doc.
//
//   - The registrar (when base has one) is wrapped so that the handshake
//     knows whom ergo dials (concurrent dials of one node share one
//     connection).
//
// Everything else in base is kept. StartNode applies it; pass the result
// to node.Start yourself only with ErlangApp among the applications.
func NodeOptions(base node.Options) node.Options {
	base.System.DisableAnonMetrics = true
	if base.Handshake == nil || base.Proto == nil {
		hs, proto := erldist.New(erldist.Options{})
		if base.Handshake == nil {
			base.Handshake = hs
		}
		if base.Proto == nil {
			base.Proto = proto
		}
	}
	if hs, ok := base.Handshake.(*erldist.Handshake); ok && base.Registrar != nil {
		base.Registrar = hs.Registrar(base.Registrar)
	}
	return base
}

// EPMDPortEnv is the environment variable that moves EPMD to another port
// (Erlang's own: erl reads it too). Default 4369.
const EPMDPortEnv = "ERL_EPMD_PORT"

// EPMDRegistrar returns the registrar StartNode uses by default: an EPMD
// client on port ERL_EPMD_PORT (4369 when unset) that, if no EPMD runs
// there, starts one embedded in the process, listening on bind. bind ""
// means loopback only (127.0.0.1): other machines then cannot resolve
// this machine's nodes. Give an address ("0.0.0.0" for every interface)
// for a cluster across machines; erl's own epmd, when it runs first,
// listens on every interface.
func EPMDRegistrar(bind string) node.Registrar {
	if bind == "" {
		bind = "127.0.0.1"
	}
	port := uint16(dist.DefaultEPMDPort)
	if v, err := strconv.ParseUint(os.Getenv(EPMDPortEnv), 10, 16); err == nil && v > 0 {
		port = uint16(v)
	}
	return dist.CreateRegistrarWithLocalEPMD(bind, port)
}

// StartNode starts an ergo node named name ("name@host") the way
// ergo.StartNode does — an EPMD registrar (EPMDRegistrar: with an EPMD
// embedded on loopback if none runs) unless opts has a registrar or
// StaticRoutesOnly, one listener on a free port unless opts has some —
// but with NodeOptions applied (ergonx's Erlang distribution, no
// anonymous metrics), ErlangApp instead of ergo's erlang application,
// and without ergo's system application (anonymous metrics only),
// so that Erlang nodes get pong from net_adm:ping and quick answers from
// rpc and erpc. opts.Applications start after it. Stop the node
// with Stop and Wait.
func StartNode(name, cookie string, opts node.Options) (node.Node, error) {
	return StartNodeWithContext(context.Background(), name, cookie, opts)
}

// StartNodeWithContext is StartNode with a context whose end stops the
// node.
func StartNodeWithContext(ctx context.Context, name, cookie string, opts node.Options) (node.Node, error) {
	env := make(map[gen.EnvKey]any, len(opts.Env)+1)
	for k, v := range opts.Env {
		env[k] = v
	}
	env[node.EnvKeyVersion] = node.Version{Release: ergo.Version, Prefix: ergo.VersionPrefix, OTP: ergo.VersionOTP}
	opts.Env = env
	if !opts.StaticRoutesOnly && opts.Registrar == nil {
		opts.Registrar = EPMDRegistrar("")
	}
	if len(opts.Listeners) == 0 {
		opts.Listeners = []node.Listener{node.DefaultListener()}
	}
	opts = NodeOptions(opts)
	apps := opts.Applications
	// ergo's system application is left out: its only child runs the
	// anonymous metrics that NodeOptions disables, and its processes are
	// ergo gen.Servers that format any message they do not know with %v
	// for a log line (a 100 MB binary sent to system_metrics took
	// minutes and gigabytes to log).
	opts.Applications = []gen.ApplicationBehavior{ErlangApp()}
	// ergo's node start writes a package-level variable that connections
	// read as they come and go: erldist.StartNode keeps them apart. The
	// caller's applications start afterwards, outside that lock (they
	// may connect to other nodes), in order, as ergo would start them.
	nd, err := erldist.StartNode(func() (node.Node, error) { return node.StartWithContext(ctx, name, cookie, opts) })
	if err != nil {
		return nil, fmt.Errorf("actors: start node %s: %w", name, err)
	}
	for _, app := range apps {
		appName, err := nd.ApplicationLoad(app)
		if err == nil {
			_, err = nd.ApplicationStart(appName)
		}
		if err != nil {
			nd.Stop()
			return nil, fmt.Errorf("actors: start node %s: application %s: %w", name, appName, err)
		}
	}
	return nd, nil
}

// StopNode stops nd and waits for it: it first stops nd routing what its
// connections receive and waits for the routing under way to end
// (erldist.Quiesce), then stops the node. Stopped with Stop alone, a node
// whose peers are still sending may route a message to a process ergo
// is cleaning up, a data race inside ergo v1.999.224 (node/core.go
// reads the mailbox that the cleanup clears without its lock).
func StopNode(nd node.Node) {
	erldist.Quiesce(nd.Name())
	nd.Stop()
	nd.Wait()
}
