package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/version"
)

// cliEnv makes the test binary run the CLI instead of the tests, so that
// the tests can run `ergonx` as a process of its own (exit codes,
// signals, stderr) without building it first.
const cliEnv = "ERGONX_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cliLimit bounds every wait on a CLI process.
const cliLimit = 2 * time.Minute

// ergonx is a running `ergonx` process.
type ergonx struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// startCLI starts `ergonx args...`; stdin is empty, stdout and stderr are
// pipes (not terminals).
func startCLI(t *testing.T, args ...string) *ergonx {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	p := &ergonx{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *ergonx) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(cliLimit):
		t.Fatalf("ergonx %v did not exit; stdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// waitOutput waits until the process has written what cond looks for.
func (p *ergonx) waitOutput(t *testing.T, what string, cond func(stdout, stderr string) bool) {
	t.Helper()
	deadline := time.After(cliLimit)
	tick := time.NewTicker(10 * time.Millisecond) // polling the buffers, bounded
	defer tick.Stop()
	for !cond(p.stdout.String(), p.stderr.String()) {
		select {
		case <-p.done:
			t.Fatalf("ergonx exited before %s; stdout:\n%s\nstderr:\n%s", what, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("timed out waiting for %s; stdout:\n%s\nstderr:\n%s", what, p.stdout, p.stderr)
		case <-tick.C:
		}
	}
}

// runCLI runs `ergonx args...` to its end.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCLI(t, args...)
	code = p.wait(t)
	return code, p.stdout.String(), p.stderr.String()
}

// Bad flags, values and arguments: exit code 2, nothing on stdout, one
// line on stderr that says what was wrong, and nothing started.
func TestCLIRefusesBadFlagsBeforeAnyOutput(t *testing.T) {
	cases := []struct {
		args []string
		err  string
	}{
		{[]string{"demo", "--callers", "0"}, "ergonx demo: --callers 0: must be at least 1"},
		{[]string{"demo", "--requests", "-5"}, "ergonx demo: --requests -5: must be at least 1"},
		{[]string{"demo", "--batch-size", "0"}, "ergonx demo: --batch-size 0: must be at least 1"},
		{[]string{"demo", "--batch-timeout", "0"}, "ergonx demo: --batch-timeout 0s: must be a positive duration such as 5ms or 2s"},
		{[]string{"demo", "--partitions", "0"}, "ergonx demo: --partitions 0: must be at least 1"},
		{[]string{"demo", "--progress", "sometimes"}, `ergonx demo: --progress "sometimes": use auto, always, never`},
		{[]string{"demo", "--callers", "many"}, `ergonx demo: invalid argument "many" for "--callers" flag: strconv.ParseInt: parsing "many": invalid syntax`},
		{[]string{"demo", "--bogus"}, "ergonx demo: unknown flag: --bogus"},
		{[]string{"demo", "extra"}, `ergonx demo: unexpected argument "extra": ergonx demo takes flags only`},
		{[]string{"bench", "--callers", "0"}, "ergonx bench: --callers 0: must be at least 1"},
		{[]string{"bench", "--target", "pigeon"}, `ergonx bench: --target "pigeon": use inproc, cluster, http`},
		{[]string{"bench", "--model", "gpt"}, `ergonx bench: --model "gpt": use digits, double`},
		{[]string{"bench", "--rate", "100", "--duration", "0"}, "ergonx bench: --rate 100 needs a --duration: an open loop runs for a time"},
		{[]string{"bench", "--target", "http", "--baseline"}, "ergonx bench: --baseline compares servings in this process with a channel batcher: use --target inproc or cluster"},
		{[]string{"bench", "--duration", "0"}, "ergonx bench: --duration 0 needs --requests N: how many calls to make"},
		{[]string{"bench", "--target", "http", "--url", "ftp://x/y"}, `ergonx bench: --url "ftp://x/y": want an http:// or https:// URL, such as http://127.0.0.1:8080/v1/servings/digits/predict`},
		{[]string{"serve", "--batch-size", "0"}, "ergonx serve: --batch-size 0: must be at least 1"},
		{[]string{"serve", "--max-concurrent", "0"}, "ergonx serve: --max-concurrent 0: must be at least 1"},
		{[]string{"serve", "--max-queue", "-1"}, "ergonx serve: --max-queue -1: must be at least 0"},
		{[]string{"serve", "--shutdown-delay", "-1s"}, "ergonx serve: --shutdown-delay -1s: must be 0 or positive"},
		{[]string{"serve", "--listen", "8080"}, `ergonx serve: --listen "8080": want host:port, such as 127.0.0.1:8080 (port 0: any free port)`},
		{[]string{"serve", "--connect", "a@localhost"}, "ergonx serve: --connect, --peer and --node-port need --name: the node's name in the cluster"},
		{[]string{"serve", "--name", "noat"}, `ergonx serve: --name "noat": want a node name name@host, such as a@localhost`},
		{[]string{"node", "--peer", "b=127.0.0.1:15001"}, `ergonx node: --peer "b=127.0.0.1:15001": the name is not name@host; want name@host=ip:port, such as b@localhost=127.0.0.1:15001`},
		{[]string{"node", "--peer", "b@localhost=127.0.0.1:99999"}, `ergonx node: --peer "b@localhost=127.0.0.1:99999": the port is not 1 to 65535; want name@host=ip:port, such as b@localhost=127.0.0.1:15001`},
		{[]string{"node", "--peer", "b@localhost"}, `ergonx node: --peer "b@localhost": no '='; want name@host=ip:port, such as b@localhost=127.0.0.1:15001`},
		{[]string{"node", "--call", "digits", "--requests", "0"}, "ergonx node: --requests 0: must be at least 1"},
		{[]string{"node", "--cookie", ""}, `ergonx node: --cookie "": a cluster needs a cookie, the same on every node`},
		{[]string{"train", "--hidden", "0"}, "ergonx train: --hidden 0: must be at least 1"},
		{[]string{"train", "--hidden", "5000"}, "ergonx train: --hidden 5000: at most 4096"},
		{[]string{"train", "--epochs", "0"}, "ergonx train: --epochs 0: must be at least 1"},
		{[]string{"frobnicate"}, `ergonx: unknown command "frobnicate"`},
		{[]string{"serv"}, `ergonx: unknown command "serv" (did you mean serve?)`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, c.args...)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, stdout, "nothing on stdout before the flags are checked")
			where := strings.SplitN(c.err, ":", 2)[0]
			assert.Equal(t, c.err+" (see '"+where+" --help')\n", stderr, "one line on stderr")
		})
	}
}

func TestCLIVersionAndHelp(t *testing.T) {
	code, stdout, stderr := runCLI(t, "--version")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, stderr)
	assert.Equal(t, "ergonx version "+version.String()+"\n", stdout)
	assert.Regexp(t, `^ergonx version 0\.1\.0 \(go1\.\d+`, stdout)

	code, stdout, _ = runCLI(t, "--help")
	assert.Equal(t, exitOK, code)
	for _, s := range []string{"Exit codes:", "  0    done", "  1    something failed", "  2    a bad flag", "  130  SIGINT/SIGTERM"} {
		assert.Contains(t, stdout, s)
	}
}

// failingServer answers every other request with 503, and counts them.
func failingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1)%2 == 0 {
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"shape":[1,10],"dtype":"float32","data":[0,0,0,0,0,0,0,0,0,0]}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// bench counts only successful calls in req/s and latencies, and reports
// failed ones apart; any failure is exit code 1 with one error line.
func TestCLIBenchReportsFailuresApart(t *testing.T) {
	srv, _ := failingServer(t)
	code, stdout, stderr := runCLI(t, "bench", "--target", "http", "--url", srv.URL+"/predict", "--callers", "1", "--requests", "40")
	assert.Equal(t, exitFailure, code)
	assert.Regexp(t, `(?m)^\s+ok\s+failed\s+dropped\s+req/s\s+p50`, stdout)
	assert.Regexp(t, `(?m)^\s+20\s+20\s+0\s+\d+\s+\d`, stdout)
	assert.Contains(t, stdout, "(req/s and latencies count the 20 successful calls only")
	assert.Contains(t, stdout, "failed calls: 20 of 40 (50.0 %)")
	assert.Contains(t, stdout, `     20 × HTTP 503: {"error":"overloaded"}`)
	assert.Regexp(t, `^ergonx bench: 20 of 40 calls failed; first: HTTP 503: \{"error":"overloaded"\}\n$`, stderr)

	// Nothing listens: every call fails, none counts as served.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String() + "/predict"
	l.Close()
	code, stdout, stderr = runCLI(t, "bench", "--target", "http", "--url", closed, "--callers", "2", "--requests", "10")
	assert.Equal(t, exitFailure, code)
	assert.Regexp(t, `(?m)^\s+0\s+10\s+0\s+0\s+-\s+-\s+-\s+-\s+-$`, stdout)
	assert.Contains(t, stdout, "failed calls: 10 of 10 (100.0 %)")
	assert.Equal(t, 1, strings.Count(stderr, "\n"), "one error line: %q", stderr)
}

// Ctrl-C stops bench with a report of the calls made so far: exit code
// 130, the table, one error line.
func TestCLIBenchInterruptPrintsAPartialReport(t *testing.T) {
	var calls atomic.Int64
	many := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) >= 50 {
			once.Do(func() { close(many) })
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	p := startCLI(t, "bench", "--target", "http", "--url", srv.URL+"/predict", "--callers", "4", "--duration", "10m")
	select {
	case <-many: // the load runs
	case <-p.done:
		t.Fatalf("bench exited early: %s %s", p.stdout, p.stderr)
	case <-time.After(cliLimit):
		t.Fatal("bench made no 50 calls")
	}
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, exitInterrupted, p.wait(t))
	stdout, stderr := p.stdout.String(), p.stderr.String()
	m := regexp.MustCompile(`(?m)^\s+(\d+)\s+0\s+0\s+\d+\s+[\d.]+ [mµ]s`).FindStringSubmatch(stdout)
	require.NotNil(t, m, "no report row in:\n%s", stdout)
	assert.Regexp(t, `^ergonx bench: interrupted after [\d.]+m?s: the report above covers the calls made until then\n$`, stderr)
}

// Ctrl-C stops demo during its batched run: the bar ends its line where
// it stood, a partial report follows, exit code 130.
func TestCLIDemoInterruptFinishesTheBarAndReports(t *testing.T) {
	p := startCLI(t, "demo", "--requests", "100000000", "--callers", "8", "--batch-size", "8", "--progress", "always")
	p.waitOutput(t, "the bar", func(stdout, stderr string) bool {
		return strings.Contains(stdout, "load: 8 callers") && regexp.MustCompile(`batched .*\d+/100000000`).MatchString(stderr)
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, exitInterrupted, p.wait(t))
	stdout, stderr := p.stdout.String(), p.stderr.String()
	assert.Regexp(t, `(?m)^\s+batched\s+\d+\s+\d+\s+[\d.]+ [mµ]s\s+[\d.]+ [mµ]s\s+[\d.]+$`, stdout)
	assert.NotContains(t, stdout, "unbatched", "the unbatched run never started")
	assert.Regexp(t, `interrupted during the batched run after [\d.]+m?s: a partial report \(\d+ of 100000000 requests answered\)`, stdout)
	assert.Contains(t, stdout, "accuracy on held-out data: ")
	lines := strings.Split(stderr, "\n")
	require.Len(t, lines, 3, "the bar's line, the error line, nothing after: %q", stderr)
	assert.Regexp(t, `\d+/100000000.* interrupted at \d+$`, lines[0], "the bar ends its line")
	assert.Equal(t, "ergonx demo: interrupted: the report above covers the requests answered until then", lines[1])
	assert.Empty(t, lines[2])
}

// Off a terminal, progress bars draw nothing: no carriage return reaches
// a log file or a pipe. --progress always draws one anyway.
func TestCLIProgressBarsOnlyOnTerminals(t *testing.T) {
	out := t.TempDir() + "/w.safetensors"
	code, stdout, stderr := runCLI(t, "train", "--out", out, "--epochs", "3", "--hidden", "8")
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	assert.Contains(t, stdout, "weights written to "+out)

	code, _, stderr = runCLI(t, "demo", "--requests", "400", "--callers", "8", "--batch-size", "8")
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)

	code, _, stderr = runCLI(t, "train", "--out", out, "--epochs", "3", "--hidden", "8", "--progress", "always")
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stderr, "\r", "a bar, drawn as asked")
}

// showProgress draws only on terminals in auto mode.
func TestShowProgress(t *testing.T) {
	var buf bytes.Buffer
	assert.False(t, showProgress(progressAuto, false, &buf))
	assert.True(t, showProgress(progressAlways, false, &buf))
	assert.False(t, showProgress(progressAlways, true, &buf), "--quiet wins")
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, showProgress(progressAuto, false, f), "a file is no terminal")
}
