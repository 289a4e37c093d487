package main

import (
	"fmt"

	"github.com/ergo-services/ergo/node"
)

// watchProcesses reports the first of the named processes of nd to end,
// or the node itself stopping: ergonx serve exits with an error then,
// rather than answer 503 forever with part of it gone. Names that do not
// run when it is called are not watched. The returned channel receives
// one description and is never closed.
func watchProcesses(nd node.Node, names ...string) <-chan string {
	died := make(chan string, len(names)+1)
	go func() {
		nd.Wait()
		died <- fmt.Sprintf("node %s stopped", nd.Name())
	}()
	for _, name := range names {
		p := nd.ProcessByName(name)
		if p == nil {
			continue
		}
		go func() {
			<-p.Context().Done()
			died <- fmt.Sprintf("process %s stopped", name)
		}()
	}
	return died
}
