package erldist

import (
	"errors"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors/wire"
)

var errShape = errors.New("unexpected shape")

// sharedBinariesMax is the largest message whose binaries are decoded as
// slices of it rather than copies: a binary kept long after its message
// (in a process's state, say) keeps at most this much memory alive.
const sharedBinariesMax = 64 << 10

// decoder decodes the message data, which lives in memory of its own (a
// packet, or a reassembled message) that nothing changes afterwards.
func (c *conn) decoder(atoms []etf.Atom, data []byte) wire.TermDecoder {
	return wire.TermDecoder{MaxDepth: c.opts.MaxTermDepth, MaxSize: c.opts.MaxMessageSize, AtomCache: atoms,
		ShareBinaries: len(data) <= sharedBinariesMax}
}

// dispatch decodes one message (control message, then payload) and routes
// it through ergo's core. A message that cannot be decoded, or whose
// control message is unknown or has the wrong shape, is logged and
// dropped; the connection goes on.
func (c *conn) dispatch(data []byte, atoms []etf.Atom) {
	d := c.decoder(atoms, data)
	op, ctrl, rest, ok := c.readControl("control message", data, data, d)
	if ok {
		c.runControl(op, ctrl, rest, d, data)
	}
}

// dispatchPassThrough handles a pass-through message (type 112): the
// control message and the payload each start with the version byte.
func (c *conn) dispatchPassThrough(data []byte) {
	const what = "pass-through message"
	if data[0] != 131 {
		c.malformed(what, data, errShape)
		return
	}
	d := c.decoder(nil, data)
	op, ctrl, rest, ok := c.readControl(what, data, data[1:], d)
	if !ok {
		return
	}
	if len(rest) > 0 {
		if rest[0] != 131 {
			c.malformed(what, data, errShape)
			return
		}
		rest = rest[1:]
	}
	c.runControl(op, ctrl, rest, d, data)
}

// readControl decodes the control message at the start of term (part of
// the message data): a tuple whose first element is the operation. What
// follows it is the payload, if any. A malformed one is logged.
func (c *conn) readControl(what string, data, term []byte, d wire.TermDecoder) (int, etf.Tuple, []byte, bool) {
	t, rest, err := d.Decode(term)
	if err != nil {
		c.malformed(what, data, err)
		return 0, nil, nil, false
	}
	c.msgsIn.Add(1)
	ctrl, ok := t.(etf.Tuple)
	if !ok || len(ctrl) == 0 {
		c.malformed(what, data, errShape)
		return 0, nil, nil, false
	}
	op, ok := ctrl[0].(int)
	if !ok {
		c.malformed(what, data, errShape)
		return 0, nil, nil, false
	}
	return op, ctrl, rest, true
}

// runControl carries out a control message; one it cannot is logged and
// dropped, and the connection goes on.
func (c *conn) runControl(op int, ctrl etf.Tuple, payload []byte, d wire.TermDecoder, data []byte) {
	if err := c.control(op, ctrl, payload, d); err != nil {
		c.log.warn(fmt.Sprintf("control:%d", op), "erldist: a control message from the peer is dropped; the connection stays",
			"local", c.local, "peer", c.peer, "op", op, "error", err, "bytes", len(data), "prefix", prefix(data))
	}
}

// shape checks ctrl's length and the types of its elements (nil: any).
func shape(ctrl etf.Tuple, kinds ...string) error {
	if len(ctrl) != len(kinds) {
		return fmt.Errorf("%w: %d elements, want %d", errShape, len(ctrl), len(kinds))
	}
	for i, k := range kinds {
		var ok bool
		switch k {
		case "pid":
			_, ok = ctrl[i].(etf.Pid)
		case "ref":
			_, ok = ctrl[i].(etf.Ref)
		case "atom":
			_, ok = ctrl[i].(etf.Atom)
		case "proc": // a pid or a registered name
			switch ctrl[i].(type) {
			case etf.Pid, etf.Atom:
				ok = true
			}
		default:
			ok = true
		}
		if !ok {
			return fmt.Errorf("%w: element %d is a %T, want a %s", errShape, i+1, ctrl[i], k)
		}
	}
	return nil
}

// control routes one control message; rest is what follows it (the
// payload, for the operations that have one).
func (c *conn) control(op int, ctrl etf.Tuple, rest []byte, d wire.TermDecoder) error {
	if c.ctx.Err() != nil {
		// The local node is stopping (or the connection closing): its
		// processes are being cleaned up, and ergo's core routes a
		// message to a process it is cleaning up without a lock (a data
		// race). Nothing is routed any more.
		return nil
	}
	if !c.gate.enter() {
		return nil // quiesced: the node is about to stop (quiesce.go)
	}
	defer c.gate.leave()
	switch op {
	case opSend, opSendTT, opSendSender, opSendSenderTT, opRegSend, opRegSendTT, opAliasSend, opAliasSendTT:
		return c.send(op, ctrl, rest, d)
	case opLink:
		if err := shape(ctrl, "", "pid", "pid"); err != nil {
			return err
		}
		_ = c.router.RouteLink(ctrl[1].(etf.Pid), ctrl[2].(etf.Pid))
	case opUnlink:
		if err := shape(ctrl, "", "pid", "pid"); err != nil {
			return err
		}
		c.unlinkSilently(ctrl[2].(etf.Pid), ctrl[1].(etf.Pid))
	case opUnlinkID:
		if err := shape(ctrl, "", "", "pid", "pid"); err != nil {
			return err
		}
		from, to := ctrl[2].(etf.Pid), ctrl[3].(etf.Pid)
		c.unlinkSilently(to, from)
		// The acknowledgement goes before anything else to the sender
		// (it is queued now, in the order of this connection).
		return c.queue(to, etf.Tuple{opUnlinkIDAck, ctrl[1], to, from}, nil, false)
	case opUnlinkIDAck, opNodeLink, opGroupLeader:
		// The core removed the link when this node unlinked; ergo has no
		// node links or group leaders to set.
	case opExit, opExitTT, opExit2, opExit2TT:
		n := 4
		if op == opExitTT || op == opExit2TT {
			n = 5
		}
		if len(ctrl) != n {
			return fmt.Errorf("%w: %d elements", errShape, len(ctrl))
		}
		if err := shape(ctrl[:3], "", "pid", "pid"); err != nil {
			return err
		}
		c.exit(op == opExit || op == opExitTT, ctrl[1].(etf.Pid), ctrl[2].(etf.Pid), reasonFromTerm(ctrl[n-1]))
	case opPayloadExit, opPayloadExitTT, opPayloadExit2, opPayloadExit2TT:
		if len(ctrl) < 3 {
			return fmt.Errorf("%w: %d elements", errShape, len(ctrl))
		}
		if err := shape(ctrl[:3], "", "pid", "pid"); err != nil {
			return err
		}
		reason, _, err := reasonFromBody(rest, d)
		if err != nil {
			return err
		}
		c.exit(op == opPayloadExit || op == opPayloadExitTT, ctrl[1].(etf.Pid), ctrl[2].(etf.Pid), reason)
	case opMonitorP:
		if err := shape(ctrl, "", "pid", "proc", "ref"); err != nil {
			return err
		}
		from, ref := ctrl[1].(etf.Pid), ctrl[3].(etf.Ref)
		switch to := ctrl[2].(type) {
		case etf.Pid:
			_ = c.router.RouteMonitor(from, to, ref)
		case etf.Atom:
			_ = c.router.RouteMonitorReg(from, gen.ProcessID{Name: string(to), Node: c.local}, ref)
		}
	case opDemonitorP:
		if err := shape(ctrl, "", "pid", "proc", "ref"); err != nil {
			return err
		}
		_ = c.router.RouteDemonitor(ctrl[1].(etf.Pid), ctrl[3].(etf.Ref))
	case opMonitorPExit:
		if err := shape(ctrl, "", "proc", "pid", "ref", ""); err != nil {
			return err
		}
		c.down(ctrl[1], ctrl[3].(etf.Ref), reasonFromTerm(ctrl[4]))
	case opPayloadMonitorPExit:
		if err := shape(ctrl, "", "proc", "pid", "ref"); err != nil {
			return err
		}
		reason, _, err := reasonFromBody(rest, d)
		if err != nil {
			return err
		}
		c.down(ctrl[1], ctrl[3].(etf.Ref), reason)
	case opSpawnRequest, opSpawnRequestTT:
		return c.spawnRequest(op, ctrl, rest, d)
	case opSpawnReply, opSpawnReplyTT:
		n := 5
		if op == opSpawnReplyTT {
			n = 6
		}
		if len(ctrl) != n {
			return fmt.Errorf("%w: %d elements", errShape, len(ctrl))
		}
		if err := shape(ctrl[:5], "", "ref", "pid", "", ""); err != nil {
			return err
		}
		c.spawnReply(ctrl[1].(etf.Ref), ctrl[2].(etf.Pid), ctrl[4])
	default:
		return fmt.Errorf("unknown control message %d", op)
	}
	return nil
}

// send routes the SEND family: the message is the payload.
func (c *conn) send(op int, ctrl etf.Tuple, rest []byte, d wire.TermDecoder) error {
	var err error
	switch op {
	case opSend:
		err = shape(ctrl, "", "", "pid")
	case opSendTT:
		err = shape(ctrl, "", "", "pid", "")
	case opSendSender:
		err = shape(ctrl, "", "pid", "pid")
	case opSendSenderTT:
		err = shape(ctrl, "", "pid", "pid", "")
	case opRegSend:
		err = shape(ctrl, "", "pid", "", "atom")
	case opRegSendTT:
		err = shape(ctrl, "", "pid", "", "atom", "")
	case opAliasSend:
		err = shape(ctrl, "", "pid", "ref")
	case opAliasSendTT:
		err = shape(ctrl, "", "pid", "ref", "")
	}
	if err != nil {
		return err
	}
	if (op == opRegSend || op == opRegSendTT) && ctrl[3] == etf.Atom("global_name_server") {
		// OTP's global talks to its peers' global_name_server on
		// connect (with maps keyed by tuples, which no Go map holds).
		// This layer takes no part in global: its messages are dropped
		// unread (actors' stub of that name only ignores them).
		return nil
	}
	msg, _, err := d.Decode(rest)
	if err != nil {
		return fmt.Errorf("the message: %w", err)
	}
	switch op {
	case opSend, opSendTT:
		_ = c.router.RouteSend(etf.Pid{}, ctrl[2].(etf.Pid), msg)
	case opSendSender, opSendSenderTT:
		_ = c.router.RouteSend(ctrl[1].(etf.Pid), ctrl[2].(etf.Pid), msg)
	case opRegSend, opRegSendTT:
		_ = c.router.RouteSendReg(ctrl[1].(etf.Pid), gen.ProcessID{Name: string(ctrl[3].(etf.Atom)), Node: c.local}, msg)
	case opAliasSend, opAliasSendTT:
		_ = c.router.RouteSendAlias(ctrl[1].(etf.Pid), etf.Alias(ctrl[2].(etf.Ref)), msg)
	}
	return nil
}

// exit delivers an exit signal from the remote from to the local to:
// one of a link (EXIT: link is true) or of exit/2 (EXIT2). It keeps
// Erlang's rules where ergo's core does not: a normal exit signal does
// not kill a process that does not trap exits (it only ends the link),
// and exit/2 with kill cannot be trapped.
func (c *conn) exit(link bool, from, to etf.Pid, reason string) {
	var p gen.Process
	if c.procs != nil {
		p = c.procs.ProcessByPid(to)
	}
	if link {
		if reason == "normal" && p != nil && !p.TrapExit() {
			c.unlinkSilently(to, from)
			return
		}
		_ = c.router.RouteExit(to, from, reason)
		return
	}
	switch {
	case p == nil:
	case reason == "kill":
		p.Kill()
	case p.TrapExit():
		_ = c.router.RouteSend(from, to, gen.MessageExit{Pid: from, Reason: reason})
	case reason == "normal":
	default:
		_ = p.Exit(reason)
	}
}

// unlinkSilently removes the link between local and remote in ergo's core
// without sending an unlink back (the peer unlinked, or the link ended).
func (c *conn) unlinkSilently(local, remote etf.Pid) {
	key := [2]etf.Pid{local, remote}
	c.mu.Lock()
	c.noUnlink[key]++
	c.mu.Unlock()
	_ = c.router.RouteUnlink(local, remote)
	// RouteUnlink calls Unlink, which used the mark; if it did not (the
	// pair is on no connection any more), drop the mark.
	c.mu.Lock()
	if c.noUnlink[key] > 0 {
		if c.noUnlink[key]--; c.noUnlink[key] == 0 {
			delete(c.noUnlink, key)
		}
	}
	c.mu.Unlock()
}

// down delivers a DOWN: to the SpawnMonitor waiting on ref, else through
// the core.
func (c *conn) down(proc etf.Term, ref etf.Ref, reason string) {
	if s := c.takeSpawn(ref, true); s != nil {
		s.deliverDown(reason)
		return
	}
	switch p := proc.(type) {
	case etf.Pid:
		_ = c.router.RouteMonitorExit(p, reason, ref)
	case etf.Atom:
		_ = c.router.RouteMonitorExitReg(gen.ProcessID{Name: string(p), Node: c.peer}, reason, ref)
	}
}
