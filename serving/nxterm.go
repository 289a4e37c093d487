package serving

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// Terms of Nx's distributed protocol that both directions share: the
// module and function Nx callers spawn, the exceptions a Go serving exits
// with so that an Elixir caller shows them as Elixir shows its own, and a
// bounded printer for the reasons an Nx serving exits with.

const (
	// NxModule is the module Nx callers spawn on the serving's node, and
	// the remote-spawn behaviour ergonx nodes provide under that name.
	NxModule = "Elixir.Nx.Serving"
	// nxFunction is the function they spawn: /3 in Nx v0.5 ([Ref, Name,
	// Input]), /4 from v0.6 ([ClientPid, Ref, Name, Input]).
	nxFunction = "__distributed_batched_run__"
)

// nxException returns the term of an Elixir exception struct of module
// (e.g. "Elixir.RuntimeError") with message: what a failing Nx batch or
// callback exits with, so that an Elixir caller prints
// "** (RuntimeError) message".
func nxException(module, message string) etf.Term {
	return etf.Map{
		etf.Atom("__struct__"):    etf.Atom(module),
		etf.Atom("__exception__"): true,
		etf.Atom("message"):       []byte(message),
	}
}

// nxExitReason is the exit reason of a spawned Nx request that failed
// with err, in the form Nx's caller expects: noproc when the serving is
// not (or no longer) there, so that the caller retries another member;
// otherwise {Exception, Stacktrace} as a crashed Nx task exits, an
// ArgumentError for input the serving cannot take, a RuntimeError for the
// rest.
func nxExitReason(err error) etf.Term {
	if errors.Is(err, ErrNoProc) {
		return etf.Atom("noproc")
	}
	module := "Elixir.RuntimeError"
	if errors.Is(err, ErrWire) || errors.Is(err, ErrNotBatch) || errors.Is(err, ErrEmptyBatch) ||
		errors.Is(err, ErrBatchKey) || errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnsupportedType) {
		module = "Elixir.ArgumentError"
	}
	return etf.Tuple{nxException(module, "ergonx: "+err.Error()), etf.List{}}
}

// errNxClosures explains why a real %Nx.Batch{} cannot be served here.
var errNxClosures = fmt.Errorf("%w: the input is an %%Nx.Batch{}, whose rows are closures that only run on the BEAM; "+
	"call Nx.Serving.batched_run with a tensor (or a tuple or map of tensors): an ergonx serving without "+
	"ClientPreprocessing takes the tensor's rows as its batch", ErrWire)

// nxInput decodes the input an Nx caller sent: tensors and tuples and maps
// of them (and ergonx's own batch form). A tensor or container becomes a
// batch of its rows when the serving has no client preprocessing, which
// expects a batch; with one, the preprocessing gets the decoded value.
func nxInput(s *Serving, t etf.Term) (any, error) {
	if isNxBatch(t) {
		return nil, errNxClosures
	}
	v, err := wire.Decode(t)
	if err != nil {
		return nil, fmt.Errorf("%w: input from an Nx caller: %v", ErrWire, err)
	}
	if s.pre != nil {
		return v, nil
	}
	switch v.(type) {
	case *tensor.Dense, batch.Tuple, batch.Map:
		b, err := batch.Concatenate(v)
		if err != nil {
			return nil, fmt.Errorf("%w: input from an Nx caller: %v", ErrWire, err)
		}
		return b, nil
	}
	return v, nil
}

// isNxBatch reports whether t is a real %Nx.Batch{}: its stack holds
// {Closures, Size} tuples, where ergonx's own batch form holds containers.
func isNxBatch(t etf.Term) bool {
	m, ok := t.(etf.Map)
	if !ok || m[etf.Atom("__struct__")] != etf.Atom("Elixir.Nx.Batch") {
		return false
	}
	stack, _ := m[etf.Atom("stack")].(etf.List)
	for _, e := range stack {
		if entry, ok := e.(etf.Tuple); ok && len(entry) == 2 {
			return true
		}
	}
	return false
}

// nxWireInput is input in the form a stock Nx serving's client
// preprocessing can take: a batch becomes its rows, materialised without
// padding; tensors and containers stay as they are. Never ergonx's own
// batch map: Nx would crash on it.
func nxWireInput(input any) ([]byte, error) {
	if b, ok := input.(*batch.Batch); ok {
		rows, err := b.Materialize()
		if err != nil {
			return nil, err
		}
		if b.Padding() > 0 {
			if rows, err = batch.SliceRows(rows, 0, b.Size()); err != nil {
				return nil, err
			}
		}
		input = rows
	}
	return wire.Marshal(input)
}

// logTermBytes is the most of a term a log line or an error message
// shows.
const logTermBytes = 256

// describeTerm prints t in Erlang's syntax for an error message, at most
// limit bytes and a few levels deep: a reason from another node may be
// huge or deeply nested, and must never make a message (or a log line)
// large. An Elixir exception {%{__struct__: M, message: Msg}, Stack}
// prints as "M: Msg".
func describeTerm(t etf.Term, limit int) string {
	if mod, msg, ok := elixirException(t); ok {
		s := strings.TrimPrefix(mod, "Elixir.") + ": " + msg
		return truncate(s, limit)
	}
	var b strings.Builder
	writeTerm(&b, t, 6, limit)
	return truncate(b.String(), limit)
}

func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// elixirException reads {Exception, Stacktrace} or a bare exception
// struct.
func elixirException(t etf.Term) (module, message string, ok bool) {
	if tup, isTuple := t.(etf.Tuple); isTuple && len(tup) == 2 {
		t = tup[0]
	}
	m, isMap := t.(etf.Map)
	if !isMap {
		return "", "", false
	}
	mod, ok1 := m[etf.Atom("__struct__")].(etf.Atom)
	_, ok2 := m[etf.Atom("__exception__")]
	if !ok1 || !ok2 {
		return "", "", false
	}
	switch msg := m[etf.Atom("message")].(type) {
	case []byte:
		return string(mod), string(msg), true
	case string:
		return string(mod), msg, true
	}
	return string(mod), "", true
}

// writeTerm writes t, stopping at depth levels or once b holds limit
// bytes.
func writeTerm(b *strings.Builder, t etf.Term, depth, limit int) {
	if b.Len() >= limit {
		return
	}
	if depth == 0 {
		b.WriteString("...")
		return
	}
	seq := func(open, close string, items []etf.Term) {
		b.WriteString(open)
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			if b.Len() >= limit {
				b.WriteString("...")
				break
			}
			writeTerm(b, it, depth-1, limit)
		}
		b.WriteString(close)
	}
	switch v := t.(type) {
	case etf.Atom:
		b.WriteString(string(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("nil")
	case etf.Tuple:
		seq("{", "}", v)
	case etf.List:
		seq("[", "]", v)
	case etf.ListImproper:
		seq("[", "]", v)
	case etf.Map:
		b.WriteString("#{")
		i := 0
		for k, val := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if b.Len() >= limit {
				b.WriteString("...")
				break
			}
			writeTerm(b, k, depth-1, limit)
			b.WriteString(" => ")
			writeTerm(b, val, depth-1, limit)
			i++
		}
		b.WriteString("}")
	case []byte:
		n := min(len(v), 64)
		if utf8.Valid(v[:n]) {
			fmt.Fprintf(b, "<<%q", v[:n])
		} else {
			fmt.Fprintf(b, "<<%d bytes", len(v))
		}
		if n < len(v) {
			fmt.Fprintf(b, "...(%d bytes)", len(v))
		}
		b.WriteString(">>")
	case string:
		b.WriteString(strconv.Quote(truncate(v, 64)))
	case int, int64, uint64, int32, uint32, uint8, uint16, int8, int16, float64, float32, *big.Int:
		fmt.Fprint(b, v)
	case etf.Pid, etf.Ref, etf.Alias:
		fmt.Fprint(b, v)
	default:
		fmt.Fprintf(b, "<%T>", v)
	}
}
