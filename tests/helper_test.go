package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/pg"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// Helper processes: the test binary runs itself again (os.Args[0]) with
// -test.run naming one helper test and helperEnv naming the mode; TestMain
// then starts no pool and runs only that test, which reports on stdout, one
// line at a time, and never returns until its parent kills it (or closes
// its stdin, or a minute passes: a helper never outlives a lost parent).

// helperEnv, when set, makes this test binary a helper process.
const helperEnv = "ERGONX_TEST_HELPER"

// Environment of a node helper.
const (
	helperPeersEnv   = "ERGONX_TEST_PEERS"   // name=port,... nodes of the parent to route to
	helperServingEnv = "ERGONX_TEST_SERVING" // the serving's name
	helperServeEnv   = "ERGONX_TEST_SERVE"   // batches to run before hanging
)

// helper is a running helper process.
type helper struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.Closer
	lines chan string // stdout, line by line; closed at EOF

	mu     sync.Mutex
	stderr bytes.Buffer // guarded by mu
	killed bool         // guarded by mu
}

// startHelper runs the helper test named test in a new process of this
// binary with mode and env. When the test ends the helper is killed and
// waited for, and, if the test failed, its stderr is logged.
func startHelper(t testing.TB, test, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.timeout=2m", "-test.count=1")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	h := &helper{t: t, cmd: cmd, lines: make(chan string, 1024)}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	h.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.stderr.Write(p)
	})
	require.NoError(t, cmd.Start())
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		h.kill()
		_ = h.stdin.Close()
		for range h.lines { // until EOF: the reader goroutine ends
		}
		_ = cmd.Wait()
		if t.Failed() {
			h.mu.Lock()
			t.Logf("helper %s stderr:\n%s", test, h.stderr.String())
			h.mu.Unlock()
		}
	})
	return h
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// kill sends SIGKILL to the helper (once).
func (h *helper) kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.killed {
		h.killed = true
		_ = h.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// expect returns the fields of the next line of the helper's stdout that
// starts with word, failing the test if the helper exits or none comes
// within limit. Lines before it are skipped; a line starting with one of
// forbidden fails the test.
func (h *helper) expect(limit time.Duration, word string, forbidden ...string) []string {
	h.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.t.Fatalf("the helper exited before printing %q; stderr:\n%s", word, h.stderr.String())
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			for _, bad := range forbidden {
				if f[0] == bad {
					h.t.Fatalf("the helper printed %q while %q was expected", line, word)
				}
			}
			if f[0] == word {
				return f
			}
		case <-timer.C:
			h.t.Fatalf("the helper did not print %q within %v", word, limit)
		}
	}
}

// helperLife blocks a helper until its stdin closes (its parent is gone or
// done with it) or a minute passes, then exits the process.
func helperLife() {
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
		os.Exit(0)
	case <-time.After(time.Minute):
		os.Exit(1)
	}
}

// TestHelperNodeProcess is the node of TestKilledNodeProcessUnderLoad in
// a process of its own: it starts an ergonx node (routes to the parent's
// nodes from helperPeersEnv), the cluster application and a doubler
// serving named helperServingEnv that runs helperServeEnv batches, then
// hangs in every execution. It prints "NODE name port" once the serving
// runs and "HUNG" when the first execution hangs, and serves until killed.
func TestHelperNodeProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "node" {
		t.Skip("runs only as a helper process of TestKilledNodeProcessUnderLoad")
	}
	for _, peer := range strings.Split(os.Getenv(helperPeersEnv), ",") {
		name, port, ok := strings.Cut(peer, "=")
		p, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil {
			t.Fatalf("bad peer %q", peer)
		}
		testnode.Registrar.Add(name, "127.0.0.1", uint16(p))
	}
	serve, err := strconv.Atoi(os.Getenv(helperServeEnv))
	require.NoError(t, err)
	nd, err := testnode.StartE(testnode.Options{})
	require.NoError(t, err)
	require.NoError(t, ergonxcluster.Start(nd, pg.Options{DiscoveryInterval: discovery}))
	d := newDoubler(nd)
	var hang sync.Once
	handled := 0 // HandleBatch runs on the serving's process, one batch at a time
	m := serving.ModuleFuncs{HandleBatchFunc: func(b *batch.Batch, _ int, state any) (serving.ExecFunc, any, error) {
		if handled++; handled > serve {
			return func() (any, any, error) {
				hang.Do(func() { fmt.Println("HUNG") })
				select {} // until SIGKILL
			}, state, nil
		}
		return d.execute(b), state, nil
	}}
	_, err = serving.Start(nd, serving.Options{
		Name: os.Getenv(helperServingEnv), BatchSize: 4, BatchTimeout: time.Millisecond,
		Serving: serving.NewModule(m, nil).DistributedPostprocessing(func(r any) (any, error) {
			return batch.Tuple{r, []byte(nd.Name())}, nil
		}),
	})
	require.NoError(t, err)
	route, err := testnode.Registrar.Resolve(nd.Name())
	require.NoError(t, err)
	fmt.Println("NODE", nd.Name(), route.Port)
	helperLife()
}

// TestHelperEncoderLoop encodes, in a process of its own, a nested empty
// list (printing "NESTED" when that returns), then a top-level one on a
// goroutine (printing "RETURNED" if that ever returns) while it watches the
// heap: it prints "GROWING" once the heap has grown by 16 MiB, which a
// one-byte term never needs.
func TestHelperEncoderLoop(t *testing.T) {
	if os.Getenv(helperEnv) != "encoder" {
		t.Skip("runs only as a helper process of TestErgoEncoderLoopsOnTopLevelEmptyList")
	}
	encode := func(term etf.Term) {
		buf := lib.TakeBuffer()
		require.NoError(t, etf.Encode(term, buf, etf.EncodeOptions{}))
	}
	encode(etf.Tuple{etf.List{}})
	fmt.Println("NESTED")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	go func() {
		encode(etf.List{})
		fmt.Println("RETURNED")
	}()
	sample := time.NewTicker(5 * time.Millisecond)
	for range sample.C {
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base+16<<20 {
			fmt.Println("GROWING", (ms.HeapAlloc-base)>>20, "MiB")
			helperLife()
		}
	}
}
