package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/ergonx/ergonx/models/digits"
)

// usageError is a bad flag, flag value or argument: the command ran
// nothing (exit code exitUsage).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errInterrupted is returned by commands that a signal stopped before
// they were done (exit code exitInterrupted).
var errInterrupted = errors.New("interrupted")

// noArgs refuses positional arguments: every command takes flags only.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q: %s takes flags only", args[0], cmd.CommandPath())
	}
	return nil
}

// checks collects flag checks; first returns the first failure.
type checks []error

func (c *checks) add(err error) {
	if err != nil {
		*c = append(*c, err)
	}
}

func (c checks) first() error {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

// atLeast checks an integer flag against its lowest useful value.
func atLeast[T int | int64 | float64](flag string, v, lo T) error {
	if v < lo {
		return usagef("--%s %v: must be at least %v", flag, v, lo)
	}
	return nil
}

// positive checks a duration flag that must be > 0.
func positive(flag string, d time.Duration) error {
	if d <= 0 {
		return usagef("--%s %v: must be a positive duration such as 5ms or 2s", flag, d)
	}
	return nil
}

// notNegative checks a duration flag where 0 means "none".
func notNegative(flag string, d time.Duration) error {
	if d < 0 {
		return usagef("--%s %v: must be 0 or positive", flag, d)
	}
	return nil
}

// oneOf checks a flag against its allowed values.
func oneOf(flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usagef("--%s %q: use %s", flag, v, strings.Join(allowed, ", "))
}

// checkNodeName checks a node name: name@host, both parts non-empty.
func checkNodeName(flag, name string) error {
	local, host, ok := strings.Cut(name, "@")
	if !ok || local == "" || host == "" || strings.ContainsAny(name, " =,") || strings.Count(name, "@") != 1 {
		return usagef("--%s %q: want a node name name@host, such as a@localhost", flag, name)
	}
	return nil
}

// peer is a static route to a node: its name and address, for clusters
// without EPMD.
type peer struct {
	name string
	host string
	port uint16
}

// parsePeer reads --peer name@host=ip:port.
func parsePeer(s string) (peer, error) {
	bad := func(why string) (peer, error) {
		return peer{}, usagef("--peer %q: %s; want name@host=ip:port, such as b@localhost=127.0.0.1:15001", s, why)
	}
	name, addr, ok := strings.Cut(s, "=")
	if !ok {
		return bad("no '='")
	}
	if err := checkNodeName("peer", name); err != nil {
		return bad("the name is not name@host")
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return bad("the address is not ip:port")
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return bad("the port is not 1 to 65535")
	}
	return peer{name: name, host: host, port: uint16(port)}, nil
}

// checkListen checks a TCP listen address host:port.
func checkListen(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return usagef("--%s %q: want host:port, such as 127.0.0.1:8080 (port 0: any free port)", flag, addr)
	}
	return nil
}

// loadModel loads the digits model: the weights in path, or the
// repository's pretrained ones when path is "".
func loadModel(path string) (*digits.Model, error) {
	if path == "" {
		return digits.Pretrained()
	}
	m, err := digits.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--weights %s: %w", path, err)
	}
	return m, nil
}

// weightsFlag adds --weights to a command.
func weightsFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "weights", "", "digits model weights (safetensors, as `ergonx train --out` writes); default: the repository's")
}

// Progress modes (--progress).
const (
	progressAuto   = "auto"
	progressAlways = "always"
	progressNever  = "never"
)

// progressFlags adds --progress and its old spelling --quiet.
func progressFlags(f *pflag.FlagSet, mode *string, quiet *bool) {
	f.StringVar(mode, "progress", progressAuto, "progress bar on stderr: auto (only when stderr is a terminal), always or never")
	f.BoolVar(quiet, "quiet", false, "no progress bar (--progress never)")
}

// checkProgress validates --progress.
func checkProgress(mode string) error {
	return oneOf("progress", mode, progressAuto, progressAlways, progressNever)
}

// showProgress tells whether to draw a bar on w: a bar redraws its line
// with carriage returns, which only a terminal understands, so "auto"
// draws none into a file or a pipe.
func showProgress(mode string, quiet bool, w io.Writer) bool {
	switch {
	case quiet || mode == progressNever:
		return false
	case mode == progressAlways:
		return true
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar is a progress bar that can end early: Interrupt leaves it drawn
// at its last count and ends its line, so that what follows starts on a
// line of its own; Finish clears it.
type bar struct {
	pb *progressbar.ProgressBar
	w  io.Writer
}

// newBar returns a bar of max steps on w, or nil when show is false (the
// methods of a nil bar do nothing).
func newBar(show bool, w io.Writer, max int, description string) *bar {
	if !show {
		return nil
	}
	return &bar{w: w, pb: progressbar.NewOptions(max, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())}
}

func (b *bar) set(n int) {
	if b != nil {
		_ = b.pb.Set(n)
	}
}

func (b *bar) describe(s string) {
	if b != nil {
		b.pb.Describe(s)
	}
}

// end finishes the bar: cleared when the work is done, left at count n
// with its line ended when it was interrupted.
func (b *bar) end(interrupted bool, n int) {
	if b == nil {
		return
	}
	if !interrupted {
		_ = b.pb.Finish()
		return
	}
	// The bar stays as last drawn (at most one throttle period behind n);
	// Exit stops further drawing, and the line ends here.
	_ = b.pb.Exit()
	fmt.Fprintf(b.w, " interrupted at %d\n", n)
}
