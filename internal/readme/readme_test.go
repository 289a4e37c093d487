package readme

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goBlocks returns the ```go blocks of a Markdown text.
func goBlocks(markdown string) []string {
	re := regexp.MustCompile("(?ms)^```go\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(markdown, -1) {
		out = append(out, m[1])
	}
	return out
}

// build compiles each snippet as a package of this module, as if it were
// a file in a directory of its own under this one: `go build -overlay`
// makes the go command see files that are not on disk, so nothing is
// written into the repository. It returns the go command's output and
// error.
func build(t *testing.T, snippets []string) (string, error) {
	t.Helper()
	here, err := os.Getwd()
	require.NoError(t, err)
	tmp := t.TempDir()
	overlay := map[string]string{}
	var pkgs []string
	for i, src := range snippets {
		if !strings.HasPrefix(strings.TrimSpace(src), "package ") {
			// A fragment: compile it as the body of a function.
			src = "package main\n\nfunc main() {\n" + src + "\n}\n"
		}
		file := filepath.Join(tmp, fmt.Sprintf("snippet%d.go", i+1))
		require.NoError(t, os.WriteFile(file, []byte(src), 0o600))
		dir := fmt.Sprintf("snippet%d_from_readme", i+1)
		overlay[filepath.Join(here, dir, "main.go")] = file
		pkgs = append(pkgs, "./"+dir)
	}
	o, err := json.Marshal(map[string]any{"Replace": overlay})
	require.NoError(t, err)
	overlayFile := filepath.Join(tmp, "overlay.json")
	require.NoError(t, os.WriteFile(overlayFile, o, 0o600))
	// Several main packages at once: go build compiles and type-checks
	// them all, and links none.
	cmd := exec.Command("go", append([]string{"build", "-overlay", overlayFile}, pkgs...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Every Go snippet of the README compiles.
func TestREADMEGoSnippetsCompile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	snippets := goBlocks(string(readme))
	require.NotEmpty(t, snippets, "the README has Go snippets")
	out, err := build(t, snippets)
	require.NoError(t, err, "a Go snippet of README.md does not compile:\n%s", out)
}

// The check fails on a snippet that does not compile, and says where.
func TestBrokenSnippetFails(t *testing.T) {
	snippets := goBlocks("text\n```go\nx := undefinedThing\n_ = x\n```\nmore\n```go\npackage main\n\nfunc main() {}\n```\n")
	require.Len(t, snippets, 2)
	out, err := build(t, snippets)
	require.Error(t, err)
	assert.Contains(t, out, "undefined: undefinedThing")
	assert.Contains(t, out, "snippet1_from_readme")
}
