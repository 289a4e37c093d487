package version

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStringNamesWhatTheBuildRecorded(t *testing.T) {
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)

	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
		}}, true
	}
	assert.Equal(t, Version+" (module v0.1.0, go1.26.8, rev 0123456789ab, modified)", String())

	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true
	}
	assert.Equal(t, Version+" (go1.26.8)", String())

	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }
	assert.Equal(t, Version, String())
}
