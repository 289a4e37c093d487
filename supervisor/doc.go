// Package supervisor gives ergo processes OTP's supervision semantics:
// children started in order, stopped in reverse order with a shutdown time
// each, one-for-all and one-for-one restarts bounded by an intensity. A
// serving runs under one of these (a task supervisor, then the serving
// actor, one-for-all, no restarts), and users can place that supervisor in
// their own ergo supervision tree.
//
// # Why not ergo's gen.Supervisor
//
// ergo v1.999.224 (ergo 2.2.4) has a supervisor, but measured against OTP
// it cannot stop a serving properly:
//
//   - It derives its children's contexts from its own and cancels them the
//     moment it stops, without waiting: a busy child that traps exits
//     usually ends with "kill" instead of getting its exit signal and the
//     time to finish running work (TestErgoSupervisorKillsBusyTrappingChildAtShutdown).
//   - It sends the exit signals in start order, not reverse, has no
//     per-child shutdown time, and never waits for a child to end.
//   - It counts its initial start as a restart, so Intensity 0 kills it
//     before any child starts, and Spawn reports no error
//     (TestErgoSupervisorIntensityZeroStartsNoChild).
//   - A child whose Init fails makes Spawn of the supervisor block forever.
//
// This package is built on ergo's primitives instead: a process behaviour
// with its own loop, monitors, exit signals and Kill.
//
// # Semantics
//
// Start spawns a supervisor and starts its children in Spec order, each
// one's Init running inside Spawn; it returns once all are up. If one
// fails, those already started are stopped in reverse order, the supervisor
// exits, and Start returns a *StartError naming the child, once nothing of
// the supervisor is left (its name is free again).
//
// When a child exits, its Restart type says whether that counts (Permanent:
// always; Transient: unless the reason is "normal" or "shutdown";
// Temporary: never). If it counts and one more restart fits within
// MaxRestarts per Period, one-for-all stops the other children in reverse
// order and starts all again in order, and one-for-one starts the exited
// child again. If it does not fit (always, with MaxRestarts 0), every child
// is stopped in reverse order and the supervisor exits with "shutdown".
//
// A supervisor shuts down on Stop, on Process.Exit, on an exit signal from
// its parent (when the two are linked), and when its context is cancelled
// (Kill, node stop, or a parent that derived the context, as ergo's
// gen.Supervisor does). In every case it stops its children in reverse
// start order and exits only after the last one is gone. Stopping a child
// means: send it the exit signal "shutdown" (or kill it, if it does not
// trap exits); wait up to its Shutdown (Infinity: no limit); then kill it
// and wait up to Spec.KillWait more.
//
// # What a child sees
//
// A child that traps exits (SetTrapExit(true), in Init) receives the
// shutdown as gen.MessageExit{Pid: its own pid, Reason: "shutdown"} in
// HandleInfo: ergo's Process.Exit names the target itself as the sender,
// so match on the reason. ergo queues that message behind the callback
// that is running and behind the messages already in the mailbox; the
// child may finish its work, then return
// gen.ServerStatusStopWithReason("shutdown"), and its Terminate gets that
// reason. ergo turns a trapped exit signal into a message sent to the
// child's own mailbox, so a child whose mailbox is full loses it, is
// killed after Shutdown, or, with Infinity, is waited for until it ends by
// itself: give such children a mailbox large enough.
//
// A child that does not trap exits is killed at once instead: ergo's exit
// signal would cancel its context too (a gen.Server then gives Terminate
// "shutdown" or "kill" at random), and sending it races inside ergo with
// the child's own cleanup. Its Terminate gets "kill" once its running
// callback, if any, returns. Call SetTrapExit in Init: the supervisor reads
// the flag when it stops the child.
//
// ergo's Kill cannot interrupt a running callback: it cancels the context,
// and the child ends when the callback returns (a gen.Server may still
// handle messages already queued, and its Terminate then gets "kill" or
// the reason it stops with). The supervisor waits Spec.KillWait for that,
// then gives the child up: the child is dead to ergo, but its goroutine
// runs until the callback returns and its name stays taken until then.
//
// # ergo's traps, and how this package avoids them
//
//   - A supervisor's mailbox could drop its children's DOWN messages when
//     full. Its loop drains the mailbox, exit signals and direct requests
//     at all times, waits included, and Start and Spec.ChildSpec give it a
//     mailbox of 4096.
//   - ergo's references repeat every 262,144 calls: children are matched by
//     pid, which never repeats, and never by monitor reference.
//   - ergo stops delivering exit signals to a process whose context is
//     cancelled, but still delivers DOWN messages, so children are watched
//     with monitors. They are not linked either: a child's exit signal
//     races, inside ergo, with the supervisor's own cleanup. A panic in the
//     supervisor's loop kills the children instead. (ergo's gen.Supervisor
//     links to its children, so when it and a supervisor of this package
//     under it end at the same instant, the race detector may report that
//     race inside ergo.)
//   - ergo's Exit and Kill read a process's fields without the lock its
//     cleanup takes: the supervisor signals a child only while its context
//     is live, exits only children that trap exits, and survives the nil
//     call Kill can make on a child ending at that instant.
//   - Children are spawned without ProcessOptions.Context (a ChildSpec that
//     sets one is rejected), so their contexts derive from the node's, and
//     only the supervisor decides when they end, even when ergo cancels
//     the supervisor's own context.
//   - A process whose Init returns an error stays registered in ergo,
//     alive and holding its name forever; the supervisor releases the name
//     and cancels the leftover. ProcessInit of the supervisor never fails
//     for the same reason: the children start in its loop, before ergo
//     lets Spawn return.
//   - Process.Wait returns when a process's context is cancelled, which for
//     a killed process is long before it has ended. Stop waits for the
//     supervisor's loop to return and for ergo to remove the process.
//
// # Concurrency
//
// A supervisor's state belongs to its process; Start, Stop and Which may be
// called from any goroutine, and Which never waits for the supervisor.
package supervisor
