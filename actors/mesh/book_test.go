package mesh

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errRefused = errors.New("connection refused")

func testBook(t *testing.T, opts Options) *book {
	t.Helper()
	o, err := opts.withDefaults()
	require.NoError(t, err)
	return newBook("m@host", o)
}

// A node that went down is tried 100 ms later, then with a doubled wait
// after each failure up to 2 s, and forgotten after 10 minutes.
func TestBookBackoffSchedule(t *testing.T) {
	b := testBook(t, Options{})
	t0 := time.Unix(1000, 0)
	assert.Equal(t, []string{"z@host"}, b.observe(t0, []string{"z@host", "m@host"}))
	assert.Empty(t, b.observe(t0, []string{"z@host"}), "already up")

	b.observe(t0, nil) // a went down at t0
	var attempts []time.Duration
	now := t0
	for now.Sub(t0) < DefaultForgetAfter+time.Minute {
		connect, forgotten := b.due(now)
		if len(forgotten) > 0 {
			assert.Equal(t, []string{"z@host"}, forgotten)
			break
		}
		if len(connect) > 0 {
			require.Equal(t, []string{"z@host"}, connect)
			attempts = append(attempts, now.Sub(t0))
			assert.False(t, b.result(now, "z@host", errRefused))
		}
		now = now.Add(10 * time.Millisecond)
	}
	ms := func(d ...int) []time.Duration {
		out := make([]time.Duration, len(d))
		for i, v := range d {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	require.Greater(t, len(attempts), 6)
	assert.Equal(t, ms(100, 300, 700, 1500, 3100, 5100, 7100), attempts[:7])
	for i := 6; i < len(attempts); i++ {
		assert.Equal(t, 2*time.Second, attempts[i]-attempts[i-1], "capped at MaxBackoff")
	}
	assert.Equal(t, int((DefaultForgetAfter-3100*time.Millisecond)/(2*time.Second))+5, len(attempts))
	assert.Empty(t, b.peers(), "forgotten")
	assert.Equal(t, DefaultForgetAfter, now.Sub(t0))
}

// A reconnection ends the backoff; going down again starts it over.
func TestBookReconnectResets(t *testing.T) {
	b := testBook(t, Options{})
	t0 := time.Unix(1000, 0)
	b.observe(t0, []string{"z@host"})
	b.observe(t0, nil)
	for _, at := range []int{100, 300, 700} {
		now := t0.Add(time.Duration(at) * time.Millisecond)
		connect, _ := b.due(now)
		require.Equal(t, []string{"z@host"}, connect, "at %d ms", at)
		connect, _ = b.due(now)
		assert.Empty(t, connect, "one attempt at a time")
		b.result(now, "z@host", errRefused)
	}
	t1 := t0.Add(1500 * time.Millisecond)
	connect, _ := b.due(t1)
	require.Equal(t, []string{"z@host"}, connect)
	assert.True(t, b.result(t1, "z@host", nil), "up: tell it our list")
	assert.Equal(t, []Peer{{Node: "z@host", Connected: true}}, b.peers())

	t2 := t1.Add(time.Hour)
	b.observe(t2, nil)
	assert.Equal(t, []Peer{{Node: "z@host", Since: t2, Next: t2.Add(100 * time.Millisecond)}}, b.peers())
}

// A learned node is tried at once; learning is bounded by MaxNodes and
// refuses what is not a node name.
func TestBookLearn(t *testing.T) {
	b := testBook(t, Options{MaxNodes: 3})
	t0 := time.Unix(1000, 0)
	b.observe(t0, []string{"a@host"})
	added, dropped := b.learn(t0, []string{"m@host", "a@host", "x@host", "not a node", "@x", "x@", "x@y@z", "y@host", "z@host"})
	assert.Equal(t, 2, added)
	assert.Equal(t, 5, dropped, "4 malformed, d@host for want of room")
	connect, _ := b.due(t0)
	assert.Equal(t, []string{"x@host", "y@host"}, connect)
	b.result(t0, "x@host", errRefused)
	connect, _ = b.due(t0.Add(99 * time.Millisecond))
	assert.Empty(t, connect)
	connect, _ = b.due(t0.Add(100 * time.Millisecond))
	assert.Equal(t, []string{"x@host"}, connect)

	// A node beyond MaxNodes that connects is told our list, not kept.
	assert.Equal(t, []string{"zz@host"}, b.observe(t0, []string{"a@host", "zz@host"}))
	assert.Len(t, b.nodes, 3)
}

// Of two nodes, the one whose name sorts first dials; the other waits
// Grace first, whether the node went down or was learned of.
func TestBookGraceForNodesThatDialFirst(t *testing.T) {
	b := testBook(t, Options{})
	t0 := time.Unix(1000, 0)
	b.observe(t0, []string{"a@host", "z@host"})
	b.observe(t0, nil)
	b.learn(t0, []string{"b@host", "y@host"})
	connect, _ := b.due(t0)
	assert.Equal(t, []string{"y@host"}, connect, "learned, sorts after m: at once")
	connect, _ = b.due(t0.Add(100 * time.Millisecond))
	assert.Equal(t, []string{"z@host"}, connect, "down, sorts after m: after MinBackoff")
	connect, _ = b.due(t0.Add(DefaultGrace - time.Millisecond))
	assert.Empty(t, connect)
	connect, _ = b.due(t0.Add(DefaultGrace))
	assert.Equal(t, []string{"a@host", "b@host"}, connect, "sort before m: after Grace")
	b.result(t0.Add(DefaultGrace), "a@host", errRefused)
	connect, _ = b.due(t0.Add(DefaultGrace + 200*time.Millisecond))
	assert.Equal(t, []string{"a@host"}, connect, "then the usual backoff")
}

func TestBookOthers(t *testing.T) {
	b := testBook(t, Options{})
	t0 := time.Unix(1000, 0)
	b.observe(t0, []string{"c@host", "a@host", "b@host"})
	b.learn(t0, []string{"d@host"})
	assert.Equal(t, []string{"a@host", "c@host"}, b.others("b@host"), "connected ones only")
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, Options{
		Name: DefaultName, Scope: "Elixir.Nx.Serving.PG", ScanInterval: 100 * time.Millisecond,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, ForgetAfter: 10 * time.Minute, MaxNodes: 1024,
		Grace: 2 * time.Second,
	}, o)
	o, err = Options{MinBackoff: 5 * time.Second}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, o.MaxBackoff)
	_, err = Options{Name: fmt.Sprintf("%0300d", 0)}.withDefaults()
	assert.ErrorIs(t, err, ErrName)
}
