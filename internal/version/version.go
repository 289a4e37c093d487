// Package version tells which ergonx this is: the release this source
// tree is (Version) and what the Go toolchain recorded in the binary
// (the module version when installed with `go install ...@vX`, the VCS
// revision when built from a git checkout).
package version

import (
	"runtime/debug"
	"strings"
)

// Version is the release of this source tree. Binaries built from a
// module version (`go install github.com/ergonx/ergonx/cmd/ergonx@vX`)
// report that version too, in String.
const Version = "0.1.0"

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// String is the full version line: Version, then what the build
// recorded, e.g. "0.1.0 (module v0.1.0, go1.26.8, rev 1a2b3c4d5e6f, modified)".
func String() string {
	bi, ok := readBuildInfo()
	if !ok {
		return Version
	}
	var parts []string
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		parts = append(parts, "module "+v)
	}
	parts = append(parts, bi.GoVersion)
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
		if modified {
			parts = append(parts, "modified")
		}
	}
	return Version + " (" + strings.Join(parts, ", ") + ")"
}
