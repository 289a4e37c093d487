package supervisor_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/supervisor"
)

// worker traps exits, so that a shutdown reaches it as gen.MessageExit and
// it can finish its work before it stops.
type worker struct {
	gen.Server
	name string
}

func (w *worker) Init(sp *gen.ServerProcess, _ ...etf.Term) error {
	sp.SetTrapExit(true)
	fmt.Println("started", w.name)
	return nil
}

func (w *worker) HandleInfo(_ *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	if exit, ok := m.(gen.MessageExit); ok {
		// Finish what is running here, then stop with the signal's reason.
		return gen.ServerStatusStopWithReason(exit.Reason)
	}
	return gen.ServerStatusOK
}

func (w *worker) Terminate(_ *gen.ServerProcess, reason string) {
	fmt.Println("terminated", w.name, reason)
}

// A serving's supervision: a task supervisor, then the serving actor; if
// either dies, both stop and so does the supervisor.
func ExampleStart() {
	nd, err := testnode.StartE(testnode.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer testnode.Stop(nd)

	sup, err := supervisor.Start(nd, "my_serving.sup", supervisor.Spec{
		Strategy:    supervisor.OneForAll,
		MaxRestarts: 0,
		Children: []supervisor.ChildSpec{{
			Name:     "my_serving.tasks",
			Start:    func() gen.ProcessBehavior { return &worker{name: "tasks"} },
			Shutdown: supervisor.Infinity,
		}, {
			Name:     "my_serving",
			Start:    func() gen.ProcessBehavior { return &worker{name: "serving"} },
			Shutdown: 30 * time.Second,
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range supervisor.Which(sup) {
		fmt.Println(c.Name, c.Alive)
	}
	if err := supervisor.Stop(context.Background(), sup); err != nil {
		fmt.Println(err)
	}
	// Output:
	// started tasks
	// started serving
	// my_serving.tasks true
	// my_serving true
	// terminated serving shutdown
	// terminated tasks shutdown
}
