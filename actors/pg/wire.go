package pg

import (
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/internal/safelog"
)

// The messages scopes exchange, shaped exactly as OTP 25's pg.erl sends
// them so that an Erlang or Elixir pg scope of the same name can take part:
//
//	{discover, ScopePid}                           plain message
//	{'$gen_cast', {sync, ScopePid, [{Group, [Pid]}]}} gen_server cast
//	{join, ScopePid, Group, PidOrPids}             plain message
//	{leave, ScopePid, PidOrPids, [Group]}          plain message
//
// Groups are atoms. PidOrPids is a bare pid when there is one, a list
// otherwise, as pg sends what its caller passed to pg:join/leave.
var (
	atomDiscover = etf.Atom("discover")
	atomSync     = etf.Atom("sync")
	atomJoin     = etf.Atom("join")
	atomLeave    = etf.Atom("leave")
)

// groupPids is one entry of a sync: a group and this node's members of it,
// one entry per join.
type groupPids struct {
	group string
	pids  []etf.Pid
}

func discoverMsg(self etf.Pid) etf.Tuple {
	return etf.Tuple{atomDiscover, self}
}

// syncMsg is the body of the cast (ServerProcess.Cast adds '$gen_cast').
// The group list may be empty: it is nested in a tuple, which ergo encodes
// correctly (only a top-level empty list hangs its encoder).
func syncMsg(self etf.Pid, groups []groupPids) etf.Tuple {
	list := make(etf.List, 0, len(groups))
	for _, g := range groups {
		pids := make(etf.List, len(g.pids))
		for i, p := range g.pids {
			pids[i] = p
		}
		list = append(list, etf.Tuple{etf.Atom(g.group), pids})
	}
	return etf.Tuple{atomSync, self, list}
}

func joinMsg(self etf.Pid, group string, pids []etf.Pid) etf.Tuple {
	return etf.Tuple{atomJoin, self, etf.Atom(group), pidOrPids(pids)}
}

// leaveMsg lists groups once per membership removed: a dead pid that had
// joined g twice is announced as {leave, Self, Pid, [g, g]}, which makes a
// pg peer remove both entries.
func leaveMsg(self etf.Pid, pids []etf.Pid, groups []string) etf.Tuple {
	gl := make(etf.List, len(groups))
	for i, g := range groups {
		gl[i] = etf.Atom(g)
	}
	return etf.Tuple{atomLeave, self, pidOrPids(pids), gl}
}

func pidOrPids(pids []etf.Pid) etf.Term {
	if len(pids) == 1 {
		return pids[0]
	}
	l := make(etf.List, len(pids))
	for i, p := range pids {
		l[i] = p
	}
	return l
}

// checkGroup reports whether group can be an Erlang atom on the wire.
func checkGroup(group string) error {
	if !utf8.ValidString(group) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrGroupName, group)
	}
	if n := utf8.RuneCountInString(group); n > 255 {
		return fmt.Errorf("%w: %d characters, at most 255", ErrGroupName, n)
	}
	return nil
}

// errBareEmptyList and errMapOnWire are what checkWire finds; they never
// leave the package (the scope logs and drops such a message).
var (
	errBareEmptyList = errors.New("pg: a bare empty list would hang ergo's encoder")
	errMapOnWire     = errors.New("pg: maps are not sent by pg scopes")
)

// checkWire guards every message the scope sends to another node against
// two ergo v1.999.224 traps: its ETF encoder loops forever, growing its
// buffer, on a top-level empty list (etf.List{}, []T{} or a nil slice),
// wedging the connection's sender goroutine; and a map key that is a
// tuple or list is silently dropped on decode. pg's protocol has no maps
// at all, so any map means a bug.
func checkWire(msg etf.Term) error {
	switch m := msg.(type) {
	case nil:
		return errBareEmptyList
	case etf.List:
		if len(m) == 0 {
			return errBareEmptyList
		}
	case []etf.Pid:
		if len(m) == 0 {
			return errBareEmptyList
		}
	case []etf.Term:
		if len(m) == 0 {
			return errBareEmptyList
		}
	}
	return checkNoMaps(msg)
}

func checkNoMaps(t etf.Term) error {
	switch v := t.(type) {
	case etf.Map:
		return errMapOnWire
	case etf.Tuple:
		for _, e := range v {
			if err := checkNoMaps(e); err != nil {
				return err
			}
		}
	case etf.List:
		for _, e := range v {
			if err := checkNoMaps(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Parsed forms of incoming messages. Parsing keeps at most a limit of
// pids per message (the most a peer may hold, Options.MaxPeerMembers) and
// counts the rest in over, so that a message listing millions of pids
// costs no more memory than the limit.
type (
	discoverIn struct{ peer etf.Pid }
	joinIn     struct {
		peer  etf.Pid
		group string
		pids  []etf.Pid
		over  int // pids beyond the limit, not parsed
	}
	leaveIn struct {
		peer   etf.Pid
		pids   []etf.Pid
		groups []string // groups of other term types are left out
	}
	syncIn struct {
		peer   etf.Pid
		groups map[string][]etf.Pid // groups of other term types are left out
		over   int                  // pids beyond the limit, not parsed
	}
)

// errNotPG says a message is not one of pg's; errOtherGroup that it names
// a group this scope does not keep (not an atom).
var (
	errNotPG      = errors.New("pg: not a pg protocol message")
	errOtherGroup = errors.New("pg: group is not an atom; ignored")
)

// parseInfo decodes a plain message from a peer scope: discover (also the
// {discover, Peer, Version} form that OTP 26+ accepts), join or leave. It
// keeps at most limit pids of a join or leave.
func parseInfo(msg etf.Term, limit int) (any, error) {
	t, ok := msg.(etf.Tuple)
	if !ok || len(t) < 2 {
		return nil, errNotPG
	}
	tag, ok := t[0].(etf.Atom)
	if !ok {
		return nil, errNotPG
	}
	peer, ok := t[1].(etf.Pid)
	if !ok {
		return nil, errNotPG
	}
	switch {
	case tag == atomDiscover && (len(t) == 2 || len(t) == 3):
		return discoverIn{peer: peer}, nil
	case tag == atomJoin && len(t) == 4:
		pids, over, ok := parsePids(t[3], limit)
		if !ok {
			return nil, errNotPG
		}
		group, ok := parseGroup(t[2])
		if !ok {
			return nil, fmt.Errorf("%w: join of %v", errOtherGroup, safelog.T(t[2]))
		}
		return joinIn{peer: peer, group: group, pids: pids, over: over}, nil
	case tag == atomLeave && len(t) == 4:
		pids, _, ok := parsePids(t[2], limit)
		if !ok {
			return nil, errNotPG
		}
		gl, ok := t[3].(etf.List)
		if !ok {
			return nil, errNotPG
		}
		groups := make([]string, 0, len(gl))
		for _, g := range gl {
			if name, ok := parseGroup(g); ok {
				groups = append(groups, name)
			}
		}
		return leaveIn{peer: peer, pids: pids, groups: groups}, nil
	}
	return nil, errNotPG
}

// parseSync decodes the body of a {'$gen_cast', {sync, Peer, Groups}}.
// Entries for the same group are merged. It keeps at most limit pids in
// all, counting the rest in over. It returns errOtherGroup (with the
// parsed message) when it left groups out.
func parseSync(msg etf.Term, limit int) (syncIn, error) {
	t, ok := msg.(etf.Tuple)
	if !ok || len(t) != 3 || t[0] != atomSync {
		return syncIn{}, errNotPG
	}
	peer, ok := t[1].(etf.Pid)
	if !ok {
		return syncIn{}, errNotPG
	}
	list, ok := t[2].(etf.List)
	if !ok {
		return syncIn{}, errNotPG
	}
	in := syncIn{peer: peer, groups: make(map[string][]etf.Pid, min(len(list), limit))}
	var skipped etf.List
	skippedN := 0
	kept := 0
	for _, e := range list {
		entry, ok := e.(etf.Tuple)
		if !ok || len(entry) != 2 {
			return syncIn{}, errNotPG
		}
		pids, over, ok := parsePids(entry[1], limit-kept)
		if !ok {
			return syncIn{}, errNotPG
		}
		group, ok := parseGroup(entry[0])
		if !ok {
			if skippedN++; len(skipped) < 4 {
				skipped = append(skipped, entry[0])
			}
			continue
		}
		in.over += over
		if len(pids) > 0 {
			kept += len(pids)
			in.groups[group] = append(in.groups[group], pids...)
		}
	}
	if skippedN > 0 {
		return in, fmt.Errorf("%w: %d groups in sync, such as %v", errOtherGroup, skippedN, safelog.T(skipped))
	}
	return in, nil
}

// parseGroup accepts atoms. ergo decodes the atoms true and false as Go
// bools, so those are atoms too.
func parseGroup(t etf.Term) (string, bool) {
	switch g := t.(type) {
	case etf.Atom:
		return string(g), true
	case bool:
		if g {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// parsePids accepts a pid or a proper list of pids (possibly empty). It
// returns at most limit of them and the number of the others (which it
// checks are pids, but does not copy).
func parsePids(t etf.Term, limit int) (pids []etf.Pid, over int, ok bool) {
	limit = max(limit, 0)
	switch v := t.(type) {
	case etf.Pid:
		if limit == 0 {
			return nil, 1, true
		}
		return []etf.Pid{v}, 0, true
	case etf.List:
		pids = make([]etf.Pid, 0, min(len(v), limit))
		for _, e := range v {
			p, ok := e.(etf.Pid)
			if !ok {
				return nil, 0, false
			}
			if len(pids) < limit {
				pids = append(pids, p)
			}
		}
		return pids, len(v) - len(pids), true
	}
	return nil, 0, false
}

// sortedGroups turns group → pids into sync entries sorted by group, so
// that what a scope sends does not depend on map order.
func sortedGroups(m map[string][]etf.Pid) []groupPids {
	out := make([]groupPids, 0, len(m))
	for g, pids := range m {
		out = append(out, groupPids{group: g, pids: pids})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].group < out[j].group })
	return out
}
