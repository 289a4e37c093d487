package serving

import (
	"fmt"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Every call into user code goes through one of these wrappers: they
// recover panics and check what came back, so that a misbehaving callback
// fails only the call (or batch) it was serving, with a *CallbackError.

// moduleName names a module in errors and telemetry.
func moduleName(m Module) string {
	switch x := m.(type) {
	case defaultModule:
		return "serving.Default"
	case interface{ name() string }: // the package's own modules
		return x.name()
	}
	return fmt.Sprintf("%T", m)
}

func callbackErr(module, callback string, err error) error {
	return &CallbackError{Module: module, Callback: callback, Err: err}
}

// recovered turns a recovered panic value into the error of a callback.
func recovered(module, callback string, r any) error {
	return callbackErr(module, callback, newPanicError(r))
}

func callInit(m Module, kind Kind, arg any, partitions []compiler.Options) (state any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(moduleName(m), "Init", r)
		}
	}()
	state, err = m.Init(kind, arg, partitions)
	if err != nil {
		return nil, callbackErr(moduleName(m), "Init", err)
	}
	return state, nil
}

func callHandleBatch(m Module, b *batch.Batch, partition int, state any) (exec ExecFunc, next any, err error) {
	defer func() {
		if r := recover(); r != nil {
			exec, next, err = nil, state, recovered(moduleName(m), "HandleBatch", r)
		}
	}()
	exec, next, err = m.HandleBatch(b, partition, state)
	if err != nil {
		return nil, state, callbackErr(moduleName(m), "HandleBatch", err)
	}
	if exec == nil {
		return nil, state, callbackErr(moduleName(m), "HandleBatch",
			fmt.Errorf("%w: HandleBatch must return a non-nil ExecFunc; got nil", ErrBadCallback))
	}
	return exec, next, nil
}

// callExec runs the function HandleBatch returned.
func callExec(module string, exec ExecFunc) (out, meta any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, meta, err = nil, nil, recovered(module, "execute", r)
		}
	}()
	out, meta, err = exec()
	if err != nil {
		return nil, nil, callbackErr(module, "execute", err)
	}
	if out == nil {
		return nil, nil, callbackErr(module, "execute",
			fmt.Errorf("%w: the function returned by HandleBatch must return an output container; got nil", ErrBadCallback))
	}
	return out, meta, nil
}

// preprocessInput runs client preprocessing for an input that may be a
// stream: it returns a batch, or a source of batches (an input stream,
// from the default preprocessing or ClientStreamPreprocessing), and the
// client info.
func preprocessInput(s *Serving, input any) (b *batch.Batch, src *source, info any, err error) {
	switch {
	case s.streamPre != nil:
		sp := startSpan(Event{Name: PreprocessingStart, Input: input}, PreprocessingStop, PreprocessingException)
		var seq BatchStream
		seq, info, err = callStreamPreprocess(s.moduleName(), s.streamPre, input)
		sp.end(Event{Input: input, Info: info, Err: err})
		if err != nil {
			return nil, nil, nil, err
		}
		return nil, iterSource(seq), info, nil
	case s.pre == nil:
		if b, ok := input.(*batch.Batch); ok && b != nil {
			if b.Size() == 0 {
				return nil, nil, nil, ErrEmptyBatch
			}
			return b, nil, nil, nil
		}
		if src, ok := streamOf(input); ok {
			return nil, src, nil, nil
		}
	}
	b, info, err = preprocess(s, input)
	return b, nil, info, err
}

func callStreamPreprocess(module string, pre StreamPreprocessFunc, input any) (seq BatchStream, info any, err error) {
	defer func() {
		if r := recover(); r != nil {
			seq, info, err = nil, nil, recovered(module, "ClientStreamPreprocessing", r)
		}
	}()
	seq, info, err = pre(input)
	switch {
	case err != nil:
		return nil, nil, callbackErr(module, "ClientStreamPreprocessing", err)
	case seq == nil:
		return nil, nil, callbackErr(module, "ClientStreamPreprocessing",
			fmt.Errorf("%w: client stream preprocessing must return a BatchStream; got nil", ErrBadCallback))
	}
	return seq, info, nil
}

// preprocess runs client preprocessing (or checks that input is a batch)
// with its telemetry span, and rejects empty batches.
func preprocess(s *Serving, input any) (b *batch.Batch, info any, err error) {
	if s.pre == nil {
		b, ok := input.(*batch.Batch)
		if !ok || b == nil {
			return nil, nil, fmt.Errorf("%w, got %T", ErrNotBatch, input)
		}
		if b.Size() == 0 {
			return nil, nil, ErrEmptyBatch
		}
		return b, nil, nil
	}
	sp := startSpan(Event{Name: PreprocessingStart, Input: input}, PreprocessingStop, PreprocessingException)
	b, info, err = callPreprocess(s.moduleName(), s.pre, input)
	sp.end(Event{Input: input, Info: info, Err: err})
	return b, info, err
}

func callPreprocess(module string, pre PreprocessFunc, input any) (b *batch.Batch, info any, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, info, err = nil, nil, recovered(module, "ClientPreprocessing", r)
		}
	}()
	b, info, err = pre(input)
	switch {
	case err != nil:
		return nil, nil, callbackErr(module, "ClientPreprocessing", err)
	case b == nil:
		return nil, nil, callbackErr(module, "ClientPreprocessing",
			fmt.Errorf("%w: client preprocessing must return a *batch.Batch; got nil", ErrBadCallback))
	case b.Size() == 0:
		return nil, nil, ErrEmptyBatch
	}
	return b, info, nil
}

// postprocess runs client postprocessing with its telemetry span.
func postprocess(s *Serving, out, meta, info any) (any, error) {
	if s.post == nil {
		return out, nil
	}
	sp := startSpan(Event{Name: PostprocessingStart, Info: info, Metadata: meta, Output: out},
		PostprocessingStop, PostprocessingException)
	res, err := callPostprocess(s.moduleName(), s.post, out, meta, info)
	sp.end(Event{Info: info, Metadata: meta, Output: res, Err: err})
	return res, err
}

func callPostprocess(module string, post PostprocessFunc, out, meta, info any) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, recovered(module, "ClientPostprocessing", r)
		}
	}()
	res, err = post(out, meta, info)
	if err != nil {
		return nil, callbackErr(module, "ClientPostprocessing", err)
	}
	return res, nil
}

// distributedPostprocess runs the serving's distributed postprocessing.
func distributedPostprocess(s *Serving, result any) (res any, err error) {
	if s.distPost == nil {
		return result, nil
	}
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, recovered(s.moduleName(), "DistributedPostprocessing", r)
		}
	}()
	res, err = s.distPost(result)
	if err != nil {
		return nil, callbackErr(s.moduleName(), "DistributedPostprocessing", err)
	}
	return res, nil
}

// trimRows cuts out down to the batch's rows: padding added inside the
// function (or rows the function invented) is not the callers'.
func trimRows(module string, out any, size int) (any, error) {
	rows, err := batch.Rows(out)
	if err != nil {
		return nil, callbackErr(module, "execute", fmt.Errorf("%w: output is not a container of tensors with a batch axis: %v", ErrBadCallback, err))
	}
	switch {
	case rows == size:
		return out, nil
	case rows < size:
		return nil, callbackErr(module, "execute", fmt.Errorf("%w: %d rows for a batch of %d; every output tensor must keep the batch on axis 0", ErrOutputRows, rows, size))
	}
	return batch.SliceRows(out, 0, size)
}
