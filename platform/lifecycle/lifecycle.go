package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Stage is one named part of a process. Every function is optional.
type Stage struct {
	Name string
	// Start opens what the stage needs. It runs after every earlier stage
	// has started; ctx ends when the process is asked to stop.
	Start func(ctx context.Context) error
	// Run does the stage's work until ctx ends. Returning earlier, with
	// or without an error, stops the process.
	Run func(ctx context.Context) error
	// Stop releases what the stage holds, after its Run has returned (or
	// the deadline passed). ctx carries the remaining stop deadline.
	Stop func(ctx context.Context) error
}

// ErrStopDeadline is returned (joined with any other error) when the
// orderly stop did not finish within the manager's deadline.
var ErrStopDeadline = errors.New("lifecycle: orderly stop exceeded its deadline")

// StageError is a stage's failure to start, run or stop.
type StageError struct {
	Stage string
	Phase string // "start", "run" or "stop"
	Err   error
}

func (e *StageError) Error() string { return e.Stage + ": " + e.Phase + ": " + e.Err.Error() }

// Unwrap returns the stage's error.
func (e *StageError) Unwrap() error { return e.Err }

// Manager runs stages. Create it with New.
type Manager struct {
	stages  []Stage
	timeout time.Duration
	log     *zap.Logger

	mu      sync.Mutex
	state   string // "new", "starting", "running", "stopping", "stopped"
	started int
	ran     atomic.Bool
}

// New returns a manager for stages, which start in the given order (see
// Order) and stop in reverse within stopTimeout. log may be nil.
func New(stopTimeout time.Duration, log *zap.Logger, stages ...Stage) *Manager {
	if log == nil {
		log = zap.NewNop()
	}
	return &Manager{stages: stages, timeout: stopTimeout, log: log, state: "new"}
}

// Ready returns nil when every stage has started and stopping has not
// begun, and otherwise an error saying why not.
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case "running":
		return nil
	case "starting":
		name := ""
		if m.started < len(m.stages) {
			name = m.stages[m.started].Name
		}
		return fmt.Errorf("starting (%d of %d stages started; waiting for %s)", m.started, len(m.stages), name)
	default:
		return errors.New(m.state)
	}
}

func (m *Manager) setState(s string) {
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Run starts the stages, waits for ctx to end or a stage to fail, and
// stops the started stages in reverse order. It returns nil after an
// orderly stop caused by ctx, and otherwise the first failure joined with
// any stop errors and ErrStopDeadline. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	if m.ran.Swap(true) {
		return errors.New("lifecycle: Run called twice")
	}
	m.setState("starting")
	failed := make(chan error, len(m.stages))
	runs := make([]*running, len(m.stages))
	var cause error
	started := 0
	for i, s := range m.stages {
		if ctx.Err() != nil {
			break
		}
		if s.Start != nil {
			if err := s.Start(ctx); err != nil {
				if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
					cause = &StageError{Stage: s.Name, Phase: "start", Err: err}
				}
				break
			}
		}
		started = i + 1
		m.mu.Lock()
		m.started = started
		m.mu.Unlock()
		if s.Run != nil {
			rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			r := &running{cancel: cancel, done: make(chan struct{})}
			runs[i] = r
			go func(s Stage) {
				defer close(r.done)
				r.err = s.Run(rctx)
				if rctx.Err() == nil {
					// Returned on its own: the process stops.
					if r.err == nil {
						r.err = errors.New("returned before the process stopped")
					}
					failed <- &StageError{Stage: s.Name, Phase: "run", Err: r.err}
				}
			}(s)
		}
		m.log.Debug("stage started", zap.String("stage", s.Name))
	}
	if cause == nil && ctx.Err() == nil && started == len(m.stages) {
		m.setState("running")
		select {
		case <-ctx.Done():
		case cause = <-failed:
		}
	}
	m.setState("stopping")
	if cause != nil {
		m.log.Error("stopping after a failure", zap.Error(cause))
	} else {
		m.log.Info("stopping")
	}
	err := m.stop(runs[:started])
	m.setState("stopped")
	return errors.Join(cause, err)
}

// stop stops stages in reverse order under the deadline.
func (m *Manager) stop(runs []*running) error {
	sctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var errs []error
	late := false
	for i := len(runs) - 1; i >= 0; i-- {
		s := m.stages[i]
		if r := runs[i]; r != nil {
			r.cancel()
			if !late {
				select {
				case <-r.done:
					if r.err != nil && !errors.Is(r.err, context.Canceled) {
						errs = append(errs, &StageError{Stage: s.Name, Phase: "run", Err: r.err})
					}
				case <-sctx.Done():
					late = true
					m.log.Error("orderly stop exceeded its deadline; abandoning what is still running",
						zap.String("stage", s.Name), zap.Duration("timeout", m.timeout))
				}
			}
		}
		if s.Stop != nil {
			if err := s.Stop(sctx); err != nil {
				errs = append(errs, &StageError{Stage: s.Name, Phase: "stop", Err: err})
			}
		}
		m.log.Debug("stage stopped", zap.String("stage", s.Name))
	}
	if late || sctx.Err() != nil {
		errs = append(errs, ErrStopDeadline)
	}
	return errors.Join(errs...)
}
