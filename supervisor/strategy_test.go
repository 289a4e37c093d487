package supervisor

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
)

func TestDecideFollowsRestartTypeAndStrategy(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name     string
		strategy Strategy
		restart  Restart
		reason   string
		max      int
		want     plan
	}{
		{"permanent crash, no restarts allowed", OneForAll, Permanent, "crash", 0, planShutdown},
		{"permanent normal exit, no restarts allowed", OneForAll, Permanent, "normal", 0, planShutdown},
		{"permanent crash, one-for-all", OneForAll, Permanent, "crash", 1, planRestartAll},
		{"permanent normal exit, one-for-all", OneForAll, Permanent, "normal", 1, planRestartAll},
		{"permanent crash, one-for-one", OneForOne, Permanent, "crash", 1, planRestartOne},
		{"transient crash", OneForAll, Transient, "crash", 1, planRestartAll},
		{"transient kill", OneForAll, Transient, "kill", 1, planRestartAll},
		{"transient normal exit", OneForAll, Transient, "normal", 0, planNothing},
		{"transient shutdown", OneForAll, Transient, "shutdown", 0, planNothing},
		{"temporary crash", OneForAll, Temporary, "crash", 0, planNothing},
		{"temporary crash, one-for-one", OneForOne, Temporary, "panic", 5, planNothing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := restartWindow{max: tc.max, period: time.Second}
			assert.Equal(t, tc.want, decide(tc.strategy, tc.restart, tc.reason, &w, now))
		})
	}
}

func TestRestartWindowForgetsRestartsOlderThanPeriod(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := restartWindow{max: 2, period: 10 * time.Second}
	assert.True(t, w.allow(t0), "1st restart")
	assert.True(t, w.allow(t0.Add(time.Second)), "2nd restart")
	assert.False(t, w.allow(t0.Add(2*time.Second)), "3rd restart within 10 s")

	w = restartWindow{max: 2, period: 10 * time.Second}
	assert.True(t, w.allow(t0))
	assert.True(t, w.allow(t0.Add(5*time.Second)))
	assert.True(t, w.allow(t0.Add(11*time.Second)), "the first restart has left the window")
	assert.False(t, w.allow(t0.Add(12*time.Second)))
	assert.LessOrEqual(t, len(w.times), 3, "the window keeps at most max+1 restarts")
}

func TestRestartWindowWithZeroMaxAllowsNothing(t *testing.T) {
	w := restartWindow{max: 0, period: time.Hour}
	assert.False(t, w.allow(time.Unix(1, 0)))
}

func TestSpecValidateNamesTheProblem(t *testing.T) {
	ok := ChildSpec{Name: "a", Start: func() gen.ProcessBehavior { return &gen.Server{} }}
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"unknown strategy", Spec{Strategy: 7}, "unknown strategy"},
		{"negative MaxRestarts", Spec{MaxRestarts: -1}, "MaxRestarts"},
		{"negative Period", Spec{Period: -time.Second}, "Period"},
		{"negative KillWait", Spec{KillWait: -time.Second}, "KillWait"},
		{"child without Start", Spec{Children: []ChildSpec{{Name: "x"}}}, `child "x" has no Start`},
		{"unnamed child without Start", Spec{Children: []ChildSpec{ok, {}}}, "child #1 has no Start"},
		{"child with a Context", Spec{Children: []ChildSpec{withContext(ok)}}, "Options.Context"},
		{"negative Shutdown", Spec{Children: []ChildSpec{withShutdown(ok, -2)}}, "negative Shutdown"},
		{"unknown restart", Spec{Children: []ChildSpec{withRestart(ok, 9)}}, "unknown restart"},
		{"duplicate names", Spec{Children: []ChildSpec{ok, ok}}, `share the name "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.validate()
			assert.ErrorIs(t, err, ErrInvalidSpec)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	assert.NoError(t, Spec{}.validate(), "the zero Spec is valid")
	assert.NoError(t, Spec{Children: []ChildSpec{withShutdown(ok, Infinity)}}.validate())
}

func withContext(c ChildSpec) ChildSpec {
	c.Options.Context = context.Background()
	return c
}

func withShutdown(c ChildSpec, d time.Duration) ChildSpec {
	c.Shutdown = d
	return c
}

func withRestart(c ChildSpec, r Restart) ChildSpec {
	c.Restart = r
	return c
}
