// Package lifecycle runs a process as named stages: each may start
// (open what it needs, in order), run (block until told to stop) and stop
// (release what it holds). It keeps the semantics of grafana/dskit's
// services and modules manager without their weight:
//
//   - Order resolves a dependency table into a start order: every stage
//     after the stages it depends on.
//   - Manager.Run starts the stages one by one in that order, runs every
//     stage that has a Run function, and waits for ctx to end or for a
//     stage to fail (a start error, or a Run that returns while the
//     process is running).
//   - Then it stops the stages in reverse order under one deadline: each
//     stage's Run context is cancelled and its Run awaited, then its Stop
//     is called with a context carrying the remaining deadline. Once the
//     deadline passes, Run functions are no longer awaited; Stop functions
//     are still called (with an expired context) so resources close.
//   - Manager.Ready reports nil only once every stage has started and
//     until stopping begins, which is what a readiness probe serves.
//
// A Manager runs once. Ready and Stage are safe for concurrent use.
package lifecycle
