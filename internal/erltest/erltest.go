// Package erltest runs real Erlang/OTP nodes for ergonx's interop tests:
// an EPMD of the test's own on a free port (StartEPMD), Erlang nodes
// registered with it (Start) whose Eval evaluates Erlang expressions and
// returns their values as ergo terms, Erlang sources compiled with erlc
// (Compile), and cleanup of all of it when the test ends. Go nodes join
// with the EPMD's Registrar.
//
// It needs erl, erlc and epmd on PATH (Debian's erlang package; CI
// installs it in .ci/run); without them Require fails the test with that
// advice rather than skipping it.
//
// Each Erlang node runs erltest_ctl (embedded here, compiled once per
// source version into the OS temp directory), which reads requests from
// the node's standard input and answers on its standard output, so the
// test's control channel never goes through the distribution under test.
package erltest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"

	"github.com/ergonx/ergonx/actors/wire"
)

//go:embed erltest_ctl.erl
var ctlSource []byte

// EvalTimeout bounds MustEval.
const EvalTimeout = 30 * time.Second

var counter atomic.Int64

// Require fails the test unless erl, erlc and epmd are installed.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"erl", "erlc", "epmd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("erltest: %s not found: install Erlang/OTP (Debian: apt-get install erlang)", tool)
		}
	}
}

// EPMD is an Erlang port mapper daemon of the test's own.
type EPMD struct {
	Port int
	cmd  *exec.Cmd
}

// StartEPMD starts epmd on a free loopback port and stops it when the
// test ends.
func StartEPMD(t testing.TB) *EPMD {
	t.Helper()
	Require(t)
	for range 5 {
		port := freePort(t)
		cmd := exec.Command("epmd", "-port", strconv.Itoa(port), "-address", "127.0.0.1")
		if err := cmd.Start(); err != nil {
			t.Fatalf("erltest: start epmd: %v", err)
		}
		e := &EPMD{Port: port, cmd: cmd}
		if waitListening(port, 10*time.Second) {
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return e
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Fatalf("erltest: epmd did not start")
	return nil
}

// Registrar returns a registrar for one Go node that registers with and
// resolves through this EPMD (ergo's EPMD client; one per node).
func (e *EPMD) Registrar() node.Registrar {
	return dist.CreateRegistrarWithRemoteEPMD("", uint16(e.Port))
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("erltest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(port int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Compile compiles Erlang sources with erlc into dir.
func Compile(t testing.TB, dir string, sources ...string) {
	t.Helper()
	Require(t)
	out, err := exec.Command("erlc", append([]string{"-o", dir}, sources...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("erltest: erlc %v: %v\n%s", sources, err, out)
	}
}

var ctl struct {
	once sync.Once
	dir  string
	err  error
}

// ctlDir compiles erltest_ctl once (per source version) and returns the
// directory of its beam.
func ctlDir() (string, error) {
	ctl.once.Do(func() {
		sum := sha256.Sum256(ctlSource)
		dir := filepath.Join(os.TempDir(), "erltest-"+hex.EncodeToString(sum[:8]))
		if _, err := os.Stat(filepath.Join(dir, "erltest_ctl.beam")); err == nil {
			ctl.dir = dir
			return
		}
		tmp, err := os.MkdirTemp(os.TempDir(), "erltest-build-")
		if err != nil {
			ctl.err = err
			return
		}
		defer os.RemoveAll(tmp)
		src := filepath.Join(tmp, "erltest_ctl.erl")
		if err := os.WriteFile(src, ctlSource, 0o644); err != nil {
			ctl.err = err
			return
		}
		if out, err := exec.Command("erlc", "-o", tmp, src).CombinedOutput(); err != nil {
			ctl.err = fmt.Errorf("erlc erltest_ctl: %v\n%s", err, out)
			return
		}
		_ = os.Remove(src)
		// Another test binary may have made it meanwhile: either is fine.
		if err := os.Rename(tmp, dir); err != nil {
			if _, serr := os.Stat(filepath.Join(dir, "erltest_ctl.beam")); serr != nil {
				ctl.err = err
				return
			}
		}
		ctl.dir = dir
	})
	return ctl.dir, ctl.err
}

// Options start an Erlang node.
type Options struct {
	// Name is the node's name before "@localhost"; "" picks a unique one.
	Name string
	// Cookie is the node's cookie. Required.
	Cookie string
	// EPMD is where the node registers. Required.
	EPMD *EPMD
	// CodePath lists directories of compiled modules (erl -pa).
	CodePath []string
	// Args are more erl arguments.
	Args []string
}

// Node is a running Erlang node.
type Node struct {
	// Name is the node's full name, name@localhost.
	Name string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	ready  chan struct{}

	mu      sync.Mutex // guards the fields below
	nextID  int
	waiting map[int]chan reply
	out     bytes.Buffer // what the node printed besides answers (bounded)
}

type reply struct {
	result etf.Term
	err    error
}

// EvalError is an exception an evaluated expression raised.
type EvalError struct {
	Class  etf.Atom // error, exit or throw
	Reason etf.Term
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("erltest: the expression raised %s: %v", e.Class, e.Reason)
}

// ErrExited is returned by Eval once the node is gone.
var ErrExited = errors.New("erltest: the Erlang node exited")

// Start starts an Erlang node and stops it (kills it, if it does not stop)
// when the test ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	Require(t)
	if opts.Cookie == "" || opts.EPMD == nil {
		t.Fatalf("erltest: Start needs a cookie and an EPMD")
	}
	dir, err := ctlDir()
	if err != nil {
		t.Fatalf("erltest: %v", err)
	}
	name := opts.Name
	if name == "" {
		name = fmt.Sprintf("erl%d_%d", os.Getpid(), counter.Add(1))
	}
	args := []string{"-sname", name + "@localhost", "-setcookie", opts.Cookie, "-noshell", "-start_epmd", "false",
		"-pa", dir}
	for _, p := range opts.CodePath {
		args = append(args, "-pa", p)
	}
	args = append(args, opts.Args...)
	args = append(args, "-s", "erltest_ctl", "start")
	cmd := exec.Command("erl", args...)
	cmd.Env = append(os.Environ(), "ERL_EPMD_PORT="+strconv.Itoa(opts.EPMD.Port))
	if os.Getenv("HOME") == "" {
		cmd.Env = append(cmd.Env, "HOME="+os.TempDir()) // erlexec refuses to start without one
	}
	n := &Node{
		Name: name + "@localhost", cmd: cmd, exited: make(chan struct{}), ready: make(chan struct{}),
		waiting: make(map[int]chan reply),
	}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("erltest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("erltest: %v", err)
	}
	cmd.Stderr = (*lockedWriter)(n)
	if err := cmd.Start(); err != nil {
		t.Fatalf("erltest: start erl: %v", err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		n.read(stdout)
	}()
	go func() {
		<-readDone
		_ = cmd.Wait()
		n.mu.Lock()
		for id, ch := range n.waiting {
			ch <- reply{err: ErrExited}
			delete(n.waiting, id)
		}
		n.mu.Unlock()
		close(n.exited)
	}()
	t.Cleanup(n.Stop)
	select {
	case <-n.ready:
	case <-n.exited:
		t.Fatalf("erltest: node %s exited at start:\n%s", n.Name, n.Output())
	case <-time.After(30 * time.Second):
		n.Kill()
		t.Fatalf("erltest: node %s did not start:\n%s", n.Name, n.Output())
	}
	return n
}

type lockedWriter Node

func (w *lockedWriter) Write(b []byte) (int, error) {
	n := (*Node)(w)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out.Len() < 1<<20 {
		n.out.Write(b)
	}
	return len(b), nil
}

func (n *Node) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "@@erltest ")
		if !ok {
			_, _ = (*lockedWriter)(n).Write([]byte(line + "\n"))
			continue
		}
		if rest == "ready" {
			close(n.ready)
			continue
		}
		idText, b64, _ := strings.Cut(rest, " ")
		id, _ := strconv.Atoi(idText)
		var rep reply
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err == nil {
			rep.result, err = wire.DecodeTerm(raw)
		}
		if err != nil {
			rep.err = fmt.Errorf("erltest: unreadable answer: %w", err)
		}
		n.mu.Lock()
		ch := n.waiting[id]
		delete(n.waiting, id)
		n.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}

// Eval evaluates an Erlang expression (or a comma-separated sequence of
// them, without the final dot) on the node, in a process of its own, and
// returns its value. An exception is an *EvalError.
func (n *Node) Eval(ctx context.Context, expr string) (etf.Term, error) {
	ch := make(chan reply, 1)
	n.mu.Lock()
	n.nextID++
	id := n.nextID
	n.waiting[id] = ch
	n.mu.Unlock()
	line := strconv.Itoa(id) + " " + base64.StdEncoding.EncodeToString([]byte(expr)) + "\n"
	n.mu.Lock()
	_, err := io.WriteString(n.stdin, line)
	n.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrExited, err)
	}
	select {
	case rep := <-ch:
		if rep.err != nil {
			return nil, rep.err
		}
		t, ok := rep.result.(etf.Tuple)
		if !ok || len(t) != 2 {
			return nil, fmt.Errorf("erltest: unexpected answer %v", rep.result)
		}
		if t[0] == etf.Atom("ok") {
			return t[1], nil
		}
		class, _ := t[0].(etf.Atom)
		return nil, &EvalError{Class: class, Reason: t[1]}
	case <-ctx.Done():
		n.mu.Lock()
		delete(n.waiting, id)
		n.mu.Unlock()
		return nil, fmt.Errorf("erltest: %s: %w", expr, ctx.Err())
	}
}

// MustEval is Eval within EvalTimeout that fails the test on an error.
func (n *Node) MustEval(t testing.TB, expr string) etf.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), EvalTimeout)
	defer cancel()
	v, err := n.Eval(ctx, expr)
	if err != nil {
		t.Fatalf("erltest: on %s, %s: %v\nnode output:\n%s", n.Name, expr, err, n.Output())
	}
	return v
}

// Output returns what the node printed besides the answers to Eval (its
// log, crash reports, io:format output) so far.
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// Exited is closed once the node's OS process has ended.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Kill ends the node at once (SIGKILL, as kill -9) and waits for it.
func (n *Node) Kill() {
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// Pause stops the node's OS process (SIGSTOP): its sockets stay open but
// it sends nothing, not even ticks, until Resume.
func (n *Node) Pause() { _ = n.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused node (SIGCONT).
func (n *Node) Resume() { _ = n.cmd.Process.Signal(syscall.SIGCONT) }

// Stop halts the node (its standard input closes), killing it if it has
// not halted within 10 seconds.
func (n *Node) Stop() {
	n.Resume()
	n.mu.Lock()
	_ = n.stdin.Close()
	n.mu.Unlock()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.Kill()
	}
}

// Atom returns s as an Erlang atom literal, quoted.
func Atom(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
