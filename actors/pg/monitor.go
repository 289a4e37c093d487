package pg

import (
	"sync"

	"github.com/ergo-services/ergo/etf"
)

// EventKind says whether an Event added or removed members.
type EventKind uint8

const (
	// Joined: the Event's pids joined the group (one entry per join).
	Joined EventKind = iota + 1
	// Left: the Event's pids left the group, died, or were forgotten with
	// their node (one entry per membership removed).
	Left
)

// String returns "joined" or "left".
func (k EventKind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Left:
		return "left"
	}
	return "EventKind(?)"
}

// Event is one change of a group's membership as this node's scope saw
// it, local or remote: the Go form of the {Ref, join|leave, Group, Pids}
// messages of Erlang's pg:monitor/2 (OTP 25.1).
type Event struct {
	Kind  EventKind
	Group string
	// Pids holds one entry per occurrence that joined or left, so a pid
	// that joined three times and then died appears three times in the
	// Left event. The slice belongs to the receiver.
	Pids []etf.Pid
}

// subscription delivers the events of one group to one Monitor caller.
//
// The scope must never block on a subscriber (a slow reader would stall
// every join, leave and DOWN of the node), so publish appends to an
// unbounded queue and a pump goroutine hands events to the reader. Memory
// grows while a subscriber does not read; cancel releases it.
type subscription struct {
	group string
	out   chan Event    // unbuffered; only the pump sends on it and closes it
	wake  chan struct{} // capacity 1: "the queue is not empty"
	done  chan struct{} // closed by stop: the pump ends and closes out
	ended chan struct{} // closed by the pump after out is closed
	once  sync.Once

	mu    sync.Mutex // guards queue
	queue []Event
}

func newSubscription(group string) *subscription {
	s := &subscription{
		group: group,
		out:   make(chan Event),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go s.pump()
	return s
}

// publish queues ev; it never blocks. The caller holds the table's write
// lock, which orders events of one group exactly as the table changed.
func (s *subscription) publish(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending; the pump drains the whole queue
	}
}

// stop ends the pump and waits until the events channel is closed. Events
// not yet received are dropped. Safe to call more than once and from any
// goroutine, except the one that the pump is blocked sending to (stop does
// not need the reader: the pump selects on done).
func (s *subscription) stop() {
	s.once.Do(func() { close(s.done) })
	<-s.ended
}

func (s *subscription) pump() {
	defer close(s.ended)
	defer close(s.out)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.queue = nil // let a burst's backing array go
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		ev := s.queue[0]
		s.queue[0] = Event{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}
