package erldist

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// Proto runs established connections, as a node.ProtoInterface: ergo
// calls Init once the handshake is done, Serve on a goroutine of its own
// (which reads until the connection ends), then Terminate. One Proto may
// serve any number of connections and nodes.
type Proto struct {
	opts Options
}

var _ node.ProtoInterface = (*Proto)(nil)

// NewProto returns a Proto with opts.
func NewProto(opts Options) *Proto { return &Proto{opts: opts.withDefaults()} }

// New returns the handshake and proto of one node, sharing opts. Set
// them as node.Options.Handshake and .Proto (actors.NodeOptions does),
// and wrap the node's registrar with the handshake's Registrar.
func New(opts Options) (*Handshake, *Proto) {
	return NewHandshake(opts), NewProto(opts)
}

// Init makes the connection ergo will register and serve. For a dial
// that found the peer already connected (see Handshake.Start), it returns
// that connection: ergo then keeps the registered one and closes the
// socket of the redundant dial.
func (p *Proto) Init(ctx context.Context, rw lib.NetReadWriter, nodename string, details node.HandshakeDetails) (node.ConnectionInterface, error) {
	res, _ := details.Custom.(*handshakeResult)
	if res == nil {
		// ergo's handshake with this proto.
		res = &handshakeResult{peerFlags: flagsFromErgo(details.Flags), release: func() {}}
	}
	if res.reuse != nil {
		res.release()
		return res.reuse, nil
	}
	if details.Buffer != nil {
		// Bytes ergo's handshake read past its end belong to the stream.
		rw = &prefixed{NetReadWriter: rw, rest: append([]byte(nil), details.Buffer.B...)}
		lib.ReleaseBuffer(details.Buffer)
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{
		opts:         p.opts,
		log:          newLogLimiter(p.opts.Logger),
		local:        nodename,
		peer:         details.Name,
		st:           stateOf(nodename),
		peerFlags:    res.peerFlags,
		peerCreation: details.Creation,
		passThrough:  !res.peerFlags.has(flagDistHdrAtomCache),
		dialedAddr:   res.dialed,
		nc:           rw,
		ctx:          cctx,
		cancel:       cancel,
		release:      res.release,
		done:         make(chan struct{}),
		spawnIn:      make(map[etf.Ref]spawnInbound),
		spawnOut:     make(map[etf.Ref]*Spawn),
		noUnlink:     make(map[[2]etf.Pid]int),
	}
	c.w = newWriter(rw, p.opts.FragmentSize, res.peerFlags.has(flagFragments) && !c.passThrough)
	// ergo registers the connection between Init and Serve (see coreLock).
	c.coreRelease = holdCore(registrationWindow)
	if tcp, ok := rw.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	return c, nil
}

// Serve reads and routes the connection's messages until it ends, with
// the writer and the watchdog (ticks, and the peer's silence) beside it.
func (p *Proto) Serve(ci node.ConnectionInterface, router node.CoreRouter) {
	c, ok := ci.(*conn)
	if !ok {
		return
	}
	if !c.serving.CompareAndSwap(false, true) {
		// ergo registered a reused connection a second time (its first
		// registration went away meanwhile): let this Serve last as long
		// as the connection does.
		<-c.done
		return
	}
	c.coreRelease()
	c.router = router
	c.procs, _ = router.(processFinder)
	c.st.add(c)
	c.release()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if err := c.w.run(); err != nil {
			c.abort("write failed: " + err.Error())
		}
	}()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		c.watchdog()
	}()

	err := c.readLoop()
	if err != nil && !errors.Is(err, io.EOF) && c.ctx.Err() == nil {
		c.log.log.Debug("erldist: connection closed", "local", c.local, "peer", c.peer, "error", err)
	}
	// Gone from the registry before ergo unregisters it, so that nothing
	// new finds a dying connection.
	c.st.remove(c)
	c.abort("read ended")
	c.w.close()
	<-writerDone
	<-watchDone
	c.failSpawns()
	// ergo unregisters the connection between Serve and Terminate.
	c.coreRelease = holdCore(0)
}

// Terminate is called by ergo after Serve, once the connection is
// unregistered (its processes' monitors and links got noconnection).
func (p *Proto) Terminate(ci node.ConnectionInterface) {
	c, ok := ci.(*conn)
	if !ok {
		return
	}
	c.abort("terminated")
	c.w.close()
	c.doneOnce.Do(func() {
		c.coreRelease()
		close(c.done)
	})
}

// watchdog ticks: every TickTime/4 it queues a tick if nothing was
// written, and closes the connection when nothing (not even a tick) was
// read for TickTime, as OTP's net_ticktime does.
func (c *conn) watchdog() {
	interval := c.opts.TickTime / 4
	t := time.NewTicker(interval)
	defer t.Stop()
	last, silent := c.packets.Load(), 0
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.w.tick()
		if now := c.packets.Load(); now != last {
			last, silent = now, 0
			continue
		}
		if silent++; silent >= 4 {
			c.log.warn("silent", "erldist: the peer sent nothing for the tick time; closing the connection",
				"local", c.local, "peer", c.peer, "tick_time", c.opts.TickTime)
			c.abort("the peer is silent")
			return
		}
	}
}

// prefixed reads rest before the connection.
type prefixed struct {
	lib.NetReadWriter
	rest []byte
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		return n, nil
	}
	return p.NetReadWriter.Read(b)
}

func (p *prefixed) Close() error {
	if cl, ok := p.NetReadWriter.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
