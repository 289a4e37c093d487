package pg

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	self = etf.Pid{Node: "a@host", ID: 1001, Creation: 7}
	p1   = etf.Pid{Node: "a@host", ID: 1002, Creation: 7}
	p2   = etf.Pid{Node: "a@host", ID: 1003, Creation: 7}
)

// The messages have OTP 25 pg's exact shapes (pg.erl: handle_discover,
// handle_call join_local/leave_local, handle_info 'DOWN').
func TestWireShapes(t *testing.T) {
	A := func(s string) etf.Atom { return etf.Atom(s) }
	tests := []struct {
		name string
		got  etf.Term
		want etf.Term
	}{
		{"{discover, Self}", discoverMsg(self),
			etf.Tuple{A("discover"), self}},
		{"{sync, Self, [{G, Pids}]} (the body of the '$gen_cast')",
			syncMsg(self, []groupPids{{"g", []etf.Pid{p1, p1}}, {"h", []etf.Pid{p2}}}),
			etf.Tuple{A("sync"), self, etf.List{
				etf.Tuple{A("g"), etf.List{p1, p1}},
				etf.Tuple{A("h"), etf.List{p2}},
			}}},
		{"{sync, Self, []} with no members", syncMsg(self, nil),
			etf.Tuple{A("sync"), self, etf.List{}}},
		{"{join, Self, G, Pid} for one pid", joinMsg(self, "g", []etf.Pid{p1}),
			etf.Tuple{A("join"), self, A("g"), p1}},
		{"{join, Self, G, [Pid]} for several", joinMsg(self, "g", []etf.Pid{p1, p1, p2}),
			etf.Tuple{A("join"), self, A("g"), etf.List{p1, p1, p2}}},
		{"{leave, Self, Pid, [G]} after pg:leave", leaveMsg(self, []etf.Pid{p1}, []string{"g"}),
			etf.Tuple{A("leave"), self, p1, etf.List{A("g")}}},
		{"{leave, Self, [Pid], [G]} for several", leaveMsg(self, []etf.Pid{p1, p2}, []string{"g"}),
			etf.Tuple{A("leave"), self, etf.List{p1, p2}, etf.List{A("g")}}},
		{"{leave, Self, Pid, Groups} after a member's DOWN, one group per join",
			leaveMsg(self, []etf.Pid{p1}, []string{"g", "g", "h"}),
			etf.Tuple{A("leave"), self, p1, etf.List{A("g"), A("g"), A("h")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
			assert.NoError(t, checkWire(tt.got))
			// ergo encodes it and decodes it back unchanged.
			assert.Equal(t, tt.want, roundTrip(t, tt.got))
		})
	}
}

// The bytes on the wire are the standard external term format Erlang
// writes for the same terms (SMALL_TUPLE_EXT 104, SMALL_ATOM_UTF8_EXT
// 119, NEW_PID_EXT 88, LIST_EXT 108, NIL_EXT 106).
func TestWireBytes(t *testing.T) {
	atom := func(s string) []byte { return append([]byte{119, byte(len(s))}, s...) }
	pid := func(p etf.Pid) []byte {
		b := append([]byte{88}, atom(string(p.Node))...)
		b = binary.BigEndian.AppendUint32(b, uint32(p.ID))
		b = binary.BigEndian.AppendUint32(b, uint32(p.ID>>32))
		return binary.BigEndian.AppendUint32(b, p.Creation)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		term etf.Term
		want []byte
	}{
		{"discover", discoverMsg(self),
			cat([]byte{104, 2}, atom("discover"), pid(self))},
		{"empty sync: the nested [] is NIL_EXT", syncMsg(self, nil),
			cat([]byte{104, 3}, atom("sync"), pid(self), []byte{106})},
		{"leave", leaveMsg(self, []etf.Pid{p1}, []string{"g"}),
			cat([]byte{104, 4}, atom("leave"), pid(self), pid(p1),
				[]byte{108, 0, 0, 0, 1}, atom("g"), []byte{106})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, encode(t, tt.term))
		})
	}
}

// ergo's encoder never returns on a top-level empty list; checkWire, which
// guards every send, refuses one. Maps (whose tuple keys ergo's decoder
// drops) are refused anywhere.
func TestWireGuard(t *testing.T) {
	for name, bad := range map[string]etf.Term{
		"nil":             nil,
		"etf.List{}":      etf.List{},
		"[]etf.Pid{}":     []etf.Pid{},
		"[]etf.Term(nil)": []etf.Term(nil),
	} {
		assert.ErrorIs(t, checkWire(bad), errBareEmptyList, name)
	}
	assert.ErrorIs(t, checkWire(etf.Tuple{atomSync, self, etf.List{etf.Map{"k": 1}}}), errMapOnWire)
	assert.NoError(t, checkWire(etf.Tuple{atomSync, self, etf.List{}}), "a nested empty list is fine")
}

// Messages as an OTP pg scope sends them are understood, including the
// forms Go never sends (a bare pid in leave from pg:leave/3 with one pid,
// the 3-tuple discover of OTP 26+).
func TestWireParse(t *testing.T) {
	A := func(s string) etf.Atom { return etf.Atom(s) }
	tests := []struct {
		name string
		in   etf.Term
		want any
	}{
		{"discover", etf.Tuple{A("discover"), self}, discoverIn{peer: self}},
		{"discover with a protocol version", etf.Tuple{A("discover"), self, 1}, discoverIn{peer: self}},
		{"join one", etf.Tuple{A("join"), self, A("g"), p1},
			joinIn{peer: self, group: "g", pids: []etf.Pid{p1}}},
		{"join several", etf.Tuple{A("join"), self, A("g"), etf.List{p1, p2, p1}},
			joinIn{peer: self, group: "g", pids: []etf.Pid{p1, p2, p1}}},
		{"join of the atom true (ergo decodes it as a bool)", etf.Tuple{A("join"), self, true, p1},
			joinIn{peer: self, group: "true", pids: []etf.Pid{p1}}},
		{"leave", etf.Tuple{A("leave"), self, p1, etf.List{A("g"), A("g")}},
			leaveIn{peer: self, pids: []etf.Pid{p1}, groups: []string{"g", "g"}}},
		{"leave skips groups that are not atoms", etf.Tuple{A("leave"), self, etf.List{p1}, etf.List{A("g"), etf.Tuple{A("x"), 1}}},
			leaveIn{peer: self, pids: []etf.Pid{p1}, groups: []string{"g"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInfo(tt.in, DefaultMaxPeerMembers)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	for name, bad := range map[string]etf.Term{
		"not a tuple":             A("discover"),
		"unknown tag":             etf.Tuple{A("hello"), self},
		"peer is not a pid":       etf.Tuple{A("discover"), A("x")},
		"join with a non-pid":     etf.Tuple{A("join"), self, A("g"), etf.List{p1, 3}},
		"join arity":              etf.Tuple{A("join"), self, A("g")},
		"leave groups not a list": etf.Tuple{A("leave"), self, p1, A("g")},
	} {
		_, err := parseInfo(bad, DefaultMaxPeerMembers)
		assert.ErrorIs(t, err, errNotPG, name)
	}
	_, err := parseInfo(etf.Tuple{A("join"), self, "a charlist", p1}, DefaultMaxPeerMembers)
	assert.ErrorIs(t, err, errOtherGroup, "groups that are not atoms are ignored")
}

func TestWireParseSync(t *testing.T) {
	A := func(s string) etf.Atom { return etf.Atom(s) }
	in, err := parseSync(etf.Tuple{A("sync"), self, etf.List{
		etf.Tuple{A("g"), etf.List{p1, p1}},
		etf.Tuple{A("h"), etf.List{}},
		etf.Tuple{A("g"), etf.List{p2}}, // merged
	}}, DefaultMaxPeerMembers)
	require.NoError(t, err)
	assert.Equal(t, syncIn{peer: self, groups: map[string][]etf.Pid{"g": {p1, p1, p2}}}, in)

	in, err = parseSync(etf.Tuple{A("sync"), self, etf.List{
		etf.Tuple{[]byte("binary group"), etf.List{p1}},
		etf.Tuple{A("g"), etf.List{p2}},
	}}, DefaultMaxPeerMembers)
	assert.ErrorIs(t, err, errOtherGroup)
	assert.Equal(t, map[string][]etf.Pid{"g": {p2}}, in.groups, "the atom groups are kept")

	for name, bad := range map[string]etf.Term{
		"not sync":     etf.Tuple{A("sink"), self, etf.List{}},
		"not a list":   etf.Tuple{A("sync"), self, A("x")},
		"bad entry":    etf.Tuple{A("sync"), self, etf.List{A("g")}},
		"bad pids":     etf.Tuple{A("sync"), self, etf.List{etf.Tuple{A("g"), A("x")}}},
		"peer not pid": etf.Tuple{A("sync"), 1, etf.List{}},
	} {
		_, err := parseSync(bad, DefaultMaxPeerMembers)
		assert.ErrorIs(t, err, errNotPG, name)
	}
}

func TestCheckGroup(t *testing.T) {
	assert.NoError(t, checkGroup(""))
	assert.NoError(t, checkGroup("Elixir.MyServing"))
	assert.NoError(t, checkGroup(strings.Repeat("ü", 255)))
	assert.ErrorIs(t, checkGroup(strings.Repeat("a", 256)), ErrGroupName)
	assert.ErrorIs(t, checkGroup("bad\xc3"), ErrGroupName)
	// The longest group encodes (as ATOM_UTF8_EXT, 510 bytes).
	assert.NotEmpty(t, encode(t, joinMsg(self, strings.Repeat("ü", 255), []etf.Pid{p1})))
}

// encode runs ergo's encoder with the flags two OTP 25 or ergo nodes
// negotiate.
func encode(t *testing.T, term etf.Term) []byte {
	t.Helper()
	require.NoError(t, checkWire(term), "never encode what could hang the encoder")
	buf := lib.TakeBuffer()
	defer lib.ReleaseBuffer(buf)
	require.NoError(t, etf.Encode(term, buf, etf.EncodeOptions{FlagBigCreation: true, FlagBigPidRef: true}))
	return append([]byte(nil), buf.B...)
}

func roundTrip(t *testing.T, term etf.Term) etf.Term {
	t.Helper()
	got, rest, err := etf.Decode(encode(t, term), nil, etf.DecodeOptions{FlagBigPidRef: true})
	require.NoError(t, err)
	assert.Empty(t, rest)
	return got
}
