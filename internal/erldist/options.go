package erldist

import (
	"log/slog"
	"time"

	"github.com/ergonx/ergonx/actors/wire"
)

// Options tune the distribution layer. The zero value is valid: every
// zero field takes the default named in its comment.
type Options struct {
	// TickTime is net_ticktime: a connection is closed (its processes
	// get noconnection) when nothing arrives on it for TickTime, and a
	// tick is sent every TickTime/4 when nothing else was. Default
	// DefaultTickTime (OTP's 60 s); use the same value on every node of
	// a cluster.
	TickTime time.Duration

	// HandshakeTimeout bounds a connection handshake, either way.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// FragmentSize is the largest distribution packet sent: a message
	// whose encoding is larger travels in fragments of this size (to
	// peers that accept fragments), interleaved with other senders'
	// messages. Default DefaultFragmentSize.
	FragmentSize int

	// MaxMessageSize is the largest message (control message and
	// payload, reassembled) accepted from a peer, and the decoded-size
	// budget of its terms. A larger one is dropped (and logged); the
	// connection stays. Default DefaultMaxMessageSize.
	MaxMessageSize int

	// MaxFragmentBytes caps the bytes of partly received fragmented
	// messages held per connection. A sequence that would pass it is
	// dropped (and logged). Default DefaultMaxFragmentBytes.
	MaxFragmentBytes int

	// MaxTermDepth bounds the nesting of received terms. Default
	// wire.DefaultTermDepth.
	MaxTermDepth int

	// Logger receives the layer's warnings (malformed packets, dropped
	// messages, closed connections), rate-limited. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultTickTime         = 60 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultFragmentSize     = 64 << 10
	DefaultMaxMessageSize   = 1 << 30
	DefaultMaxFragmentBytes = 1 << 30
)

func (o Options) withDefaults() Options {
	if o.TickTime <= 0 {
		o.TickTime = DefaultTickTime
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.FragmentSize <= 0 {
		o.FragmentSize = DefaultFragmentSize
	}
	if o.FragmentSize < 1024 {
		o.FragmentSize = 1024
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxFragmentBytes <= 0 {
		o.MaxFragmentBytes = DefaultMaxFragmentBytes
	}
	if o.MaxTermDepth <= 0 {
		o.MaxTermDepth = wire.DefaultTermDepth
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
