package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/internal/erltest"
	"github.com/ergonx/ergonx/serving"
)

// elixirSnippet returns the first ```elixir block of the README's
// "Erlang and Elixir" section: the one that calls `ergonx node --serve`.
func elixirSnippet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	i := strings.Index(readme, "\n## Erlang and Elixir\n")
	require.GreaterOrEqual(t, i, 0, "the README has no Erlang and Elixir section")
	m := regexp.MustCompile("(?ms)^```elixir\n(.*?)^```").FindStringSubmatch(readme[i:])
	require.NotNil(t, m, "no elixir block in the section")
	return m[1]
}

// The README's Elixir snippet, run as written by Elixir against `ergonx
// node --serve` (this package's runNode, as the CLI runs it): it finds
// the digits serving through Nx.Serving.PG, calls it with Nx's protocol,
// and prints the digits the Go model predicts and the node that answered.
// Real Nx cannot be installed here (no Hex): the Elixir node loads
// tests/testdata/nx's stand-in, Nx's distributed protocol in Erlang
// (Elixir.Nx.Serving) and the few Nx functions the snippet uses.
func TestREADMEElixirSnippetCallsErgonxNode(t *testing.T) {
	erltest.Require(t)
	elixir, err := exec.LookPath("elixir")
	require.NoError(t, err, "elixir is not installed: apt-get install elixir (CI's .ci/run does)")
	snippet := elixirSnippet(t)

	// A private EPMD port for both sides: ergonx honours ERL_EPMD_PORT as
	// erl does, and starts an EPMD on it if none runs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	t.Setenv(actors.EPMDPortEnv, strconv.Itoa(port))

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runNode(ctx, &out, nodeOptions{clusterOptions: clusterOptions{name: "ergonx@localhost", cookie: "ergonx"},
			serve: true, batchSize: 64, batchTimeout: 5 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("ergonx node did not stop")
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `members of "digits": ergonx@localhost`) },
		time.Minute, 10*time.Millisecond, "ergonx node --serve did not start: %s", out.String())

	beams := t.TempDir()
	erltest.Compile(t, beams, "../../tests/testdata/nx/Elixir.Nx.Serving.erl")
	cmd := exec.Command(elixir, "--sname", "client", "--cookie", "ergonx", "--erl", "-pa "+beams,
		"-r", filepath.Join("..", "..", "tests", "testdata", "nx", "nx_standin.exs"), "-e", snippet)
	cmd.Env = append(os.Environ(), actors.EPMDPortEnv+"="+strconv.Itoa(port))
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "elixir: %s", got)
	t.Logf("elixir printed:\n%s", got)

	m, err := loadModel("")
	require.NoError(t, err)
	img := make([]float32, 2*64)
	for i := range img {
		img[i] = 0.5
	}
	logits, err := m.Predict(tensor.New(tensor.WithShape(2, 64), tensor.WithBacking(img)))
	require.NoError(t, err)
	want := argmaxRows(logits.Data().([]float32), 10)
	assert.Contains(t, string(got), fmt.Sprintf("digits: [%d, %d]", want[0], want[1]))
	assert.Contains(t, string(got), "answered by ergonx@localhost")
}

func argmaxRows(v []float32, cols int) []int {
	var out []int
	for r := 0; r*cols < len(v); r++ {
		best := 0
		for c := 1; c < cols; c++ {
			if v[r*cols+c] > v[r*cols+best] {
				best = c
			}
		}
		out = append(out, best)
	}
	return out
}

// elixirServingSnippet returns the second ```elixir block of the README's
// "Erlang and Elixir" section: the Nx serving that Go calls.
func elixirServingSnippet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	i := strings.Index(readme, "\n## Erlang and Elixir\n")
	require.GreaterOrEqual(t, i, 0)
	ms := regexp.MustCompile("(?ms)^```elixir\n(.*?)^```").FindAllStringSubmatch(readme[i:], 2)
	require.Len(t, ms, 2, "two elixir blocks in the section")
	return ms[1][1]
}

// The README's "Go calls Elixir" snippets: the Elixir serving, started as
// written (on the Nx stand-in), answers a Go node's serving.BatchedRun
// of serving.Distributed("double") with the doubled rows.
func TestREADMEElixirServingIsCalledFromGo(t *testing.T) {
	erltest.Require(t)
	elixir, err := exec.LookPath("elixir")
	require.NoError(t, err, "elixir is not installed: apt-get install elixir (CI's .ci/run does)")
	snippet := elixirServingSnippet(t)

	epmd := erltest.StartEPMD(t)
	beams := t.TempDir()
	erltest.Compile(t, beams, "../../tests/testdata/nx/Elixir.Nx.Serving.erl")
	cmd := exec.Command(elixir, "--sname", "elixir@localhost", "--cookie", "ergonx", "--erl", "-pa "+beams,
		"-r", filepath.Join("..", "..", "tests", "testdata", "nx", "nx_standin.exs"),
		"-e", snippet+"\nIO.puts(\"SERVING\")\nProcess.sleep(:infinity)")
	cmd.Env = append(os.Environ(), actors.EPMDPortEnv+"="+strconv.Itoa(epmd.Port))
	var eout syncBuffer
	cmd.Stdout, cmd.Stderr = &eout, &eout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	require.Eventually(t, func() bool { return strings.Contains(eout.String(), "SERVING") },
		time.Minute, 10*time.Millisecond, "the Elixir serving did not start: %s", eout.String())

	nd, err := startClusterNode("go@localhost", "ergonx", node.Options{Registrar: epmd.Registrar()})
	require.NoError(t, err)
	t.Cleanup(func() { nd.Stop(); nd.Wait() })
	require.NoError(t, nd.Connect("elixir@localhost"))
	require.Eventually(t, func() bool { return pg.Lookup(nd, "").Count("double") == 1 },
		30*time.Second, 10*time.Millisecond, "the Go node did not see the Elixir serving's group")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	out, err := serving.BatchedRun(ctx, nd, serving.Distributed("double"), in)
	require.NoError(t, err, "elixir output: %s", eout.String())
	d := out.(*tensor.Dense)
	assert.Equal(t, tensor.Shape{2, 3}, d.Shape())
	assert.Equal(t, []float32{2, 4, 6, 8, 10, 12}, d.Data())
}
