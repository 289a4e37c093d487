package main

import (
	"context"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/serving"
)

// startServing starts a serving on nd and returns the function that
// stops it. Every command starts its servings here, so that a change in
// how serving.Start reports what it started changes this function only.
func startServing(nd node.Node, opts serving.Options) (stop func(context.Context) error, err error) {
	h, err := serving.Start(nd, opts)
	if err != nil {
		return nil, err
	}
	return h.Stop, nil
}
