package main

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readmeCommands returns the ergonx command lines of the README: the
// lines of its sh blocks that run ergonx, and its `ergonx ...` code spans.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var lines []string
	for _, block := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(string(readme), -1) {
		lines = append(lines, strings.Split(block[1], "\n")...)
	}
	for _, span := range regexp.MustCompile("`((?:go run \\./cmd/)?ergonx [^`]+)`").FindAllStringSubmatch(string(readme), -1) {
		lines = append(lines, span[1])
	}
	var cmds [][]string
	for _, l := range lines {
		l, _, _ = strings.Cut(l, "#") // a comment
		f := strings.Fields(l)
		switch {
		case len(f) > 3 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/ergonx":
			cmds = append(cmds, f[3:])
		case len(f) > 1 && f[0] == "ergonx":
			cmds = append(cmds, f[1:])
		}
	}
	return cmds
}

// Every ergonx command line in the README names a command and flags that
// exist, with values they accept.
func TestREADMECommandLinesParse(t *testing.T) {
	cmds := readmeCommands(t)
	require.Greater(t, len(cmds), 15, "the README's command lines were found")
	for _, args := range cmds {
		if line := strings.Join(args, " "); strings.Contains(line, "...") || strings.Contains(line, "…") || strings.Contains(line, "COMMAND") {
			continue // a placeholder in prose: "ergonx bench ...", "ergonx COMMAND --help"
		}
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := rootCmd()
			cmd, rest, err := root.Find(args)
			require.NoError(t, err)
			if !strings.HasPrefix(args[0], "-") {
				require.NotEqual(t, root.Name(), cmd.Name(), "no such command")
			}
			cmd.InitDefaultHelpFlag() // cobra adds these as it executes
			cmd.InitDefaultVersionFlag()
			if err := cmd.ParseFlags(rest); !errors.Is(err, pflag.ErrHelp) {
				require.NoError(t, err)
			}
			assert.Empty(t, cmd.Flags().Args(), "positional arguments")
			if f := cmd.Flags().Lookup("peer"); f != nil && f.Changed {
				peers, _ := cmd.Flags().GetStringSlice("peer")
				for _, p := range peers {
					_, err := parsePeer(p)
					assert.NoError(t, err)
				}
			}
		})
	}
}
