package readme

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitLimit bounds every wait of the new user's test: builds excluded,
// a healthy run answers in well under a second.
const waitLimit = 60 * time.Second

// snippetWith returns the README's one Go block that contains marker.
func snippetWith(t *testing.T, readme, marker string) string {
	t.Helper()
	var found []string
	for _, b := range goBlocks(readme) {
		if strings.Contains(b, marker) {
			found = append(found, b)
		}
	}
	require.Len(t, found, 1, "README Go blocks containing %q", marker)
	return found[0]
}

// buildProgram builds src, a main package, into a binary, as a package
// of this module (go build -overlay: nothing is written to the
// repository), and returns its path.
func buildProgram(t *testing.T, name, src string) string {
	t.Helper()
	here, err := os.Getwd()
	require.NoError(t, err)
	tmp := t.TempDir()
	file := filepath.Join(tmp, name+".go")
	require.NoError(t, os.WriteFile(file, []byte(src), 0o600))
	overlay, err := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(here, name, "main.go"): file}})
	require.NoError(t, err)
	overlayFile := filepath.Join(tmp, "overlay.json")
	require.NoError(t, os.WriteFile(overlayFile, overlay, 0o600))
	bin := filepath.Join(tmp, name)
	out, err := exec.Command("go", "build", "-overlay", overlayFile, "-o", bin, "./"+name).CombinedOutput()
	require.NoError(t, err, "building the README's %s:\n%s", name, out)
	return bin
}

// program is a README program running as a process of its own.
type program struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, line by line
}

// start runs bin with args and env, killed at the end of the test.
func start(t *testing.T, bin string, env []string, args ...string) *program {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = &testWriter{t: t, prefix: filepath.Base(bin) + " " + strings.Join(args, " ") + ": "}
	require.NoError(t, cmd.Start())
	p := &program{cmd: cmd, lines: make(chan string, 64)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// line returns the program's next line of output.
func (p *program) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		require.True(t, ok, "the program ended without printing a line")
		return l
	case <-time.After(waitLimit):
		t.Fatalf("the program printed nothing within %v", waitLimit)
		return ""
	}
}

// testWriter logs a program's stderr in the test's log.
type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A new user, with the README alone: the typed dense layer of "The Go
// API" compiles without a type assertion, runs without a node and answers
// its own call with what the README says; its HTTP route answers the
// README's curl request with the README's answer; and the cluster
// program, run as two processes (serve, then call), answers the call
// from the other node with the same row.
func TestREADMENewUserDenseLayer(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(raw)
	local := snippetWith(t, readme, "serving.Start(nil, serving.Options{\n\t\tName: \"dense\"")
	clustered := snippetWith(t, readme, "cluster.StartNode(role")
	typeAssertion := regexp.MustCompile(`\.\(\s*[*\[\]A-Za-z]`)
	for name, src := range map[string]string{"the program without a node": local, "the cluster program": clustered} {
		assert.Empty(t, typeAssertion.FindAllString(src, -1), "%s has type assertions", name)
		assert.Contains(t, src, "serving.NewBatchFunc(denseLayer)", name)
	}
	want := regexp.MustCompile(`fmt\.Println\(y\) // (.+)`).FindStringSubmatch(local)
	require.NotNil(t, want, "the README says what the call prints")
	wantRow := want[1]

	// The curl call of the README, and its answer.
	curl := regexp.MustCompile(`(?s)curl -s (127\.0\.0\.1:8080/v1/servings/dense/predict).*?-d '([^']+)'\n# (\{[^\n]+\})`).
		FindStringSubmatch(readme)
	require.NotNil(t, curl, "the README shows a curl call of the dense serving and its answer")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	require.Equal(t, 1, strings.Count(local, `"127.0.0.1:8080"`))
	local = strings.Replace(local, `"127.0.0.1:8080"`, strconv.Quote(addr), 1)

	t.Run("without a node, then over HTTP", func(t *testing.T) {
		p := start(t, buildProgram(t, "newuser_dense", local), nil)
		assert.Equal(t, wantRow, p.line(t))

		url := "http://" + strings.Replace(curl[1], "127.0.0.1:8080", addr, 1)
		var body []byte
		deadline := time.Now().Add(waitLimit)
		for {
			resp, err := http.Post(url, "application/json", strings.NewReader(curl[2]))
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
				break
			}
			require.True(t, time.Now().Before(deadline), "the program did not listen on %s within %v: %v", addr, waitLimit, err)
			time.Sleep(20 * time.Millisecond) // a bounded poll: nothing else says when it listens
		}
		assert.JSONEq(t, curl[3], string(body))
	})

	t.Run("from another node", func(t *testing.T) {
		bin := buildProgram(t, "newuser_cluster", clustered)
		env := []string{fmt.Sprintf("ERL_EPMD_PORT=%d", freePort(t))} // a private EPMD, embedded in the first node
		serve := start(t, bin, env, "serve")
		assert.Equal(t, "serving dense on serve@localhost", serve.line(t))

		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		call := exec.CommandContext(ctx, bin, "call")
		call.Env = append(os.Environ(), env...)
		call.Stderr = &testWriter{t: t, prefix: "call: "}
		out, err := call.Output()
		require.NoError(t, err)
		assert.Equal(t, wantRow+"\n", string(out))
	})
}
