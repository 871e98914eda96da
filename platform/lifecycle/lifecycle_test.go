package lifecycle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder notes what the stages did, in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func stage(r *recorder, name string) Stage {
	return Stage{
		Name:  name,
		Start: func(context.Context) error { r.add("start " + name); return nil },
		Run: func(ctx context.Context) error {
			<-ctx.Done()
			r.add("run done " + name)
			return nil
		},
		Stop: func(context.Context) error { r.add("stop " + name); return nil },
	}
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	r := &recorder{}
	m := New(5*time.Second, nil, stage(r, "a"), stage(r, "b"), stage(r, "c"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitReady(t, m)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"start a", "start b", "start c", "run done c", "stop c", "run done b", "stop b", "run done a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestReadinessFollowsTheStages(t *testing.T) {
	release := make(chan struct{})
	stopping := make(chan error, 1)
	var m *Manager
	m = New(5*time.Second, nil,
		Stage{Name: "slow", Start: func(context.Context) error { <-release; return nil }},
		Stage{Name: "probe", Stop: func(context.Context) error { stopping <- m.Ready(); return nil }},
	)
	if m.Ready() == nil {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	if err := m.Ready(); err == nil {
		t.Fatal("ready while a stage is still starting")
	}
	close(release)
	waitReady(t, m)
	cancel()
	if err := <-stopping; err == nil {
		t.Fatal("still ready while stopping")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Ready() == nil {
		t.Fatal("ready after stop")
	}
}

func TestFailingStartStopsWhatStarted(t *testing.T) {
	r := &recorder{}
	boom := errors.New("boom")
	bad := Stage{Name: "bad", Start: func(context.Context) error { return boom }}
	m := New(5*time.Second, nil, stage(r, "a"), bad, stage(r, "never"))
	err := m.Run(context.Background())
	var se *StageError
	if !errors.As(err, &se) || se.Stage != "bad" || se.Phase != "start" || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the start error of bad", err)
	}
	want := []string{"start a", "run done a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFailingRunStopsTheRest(t *testing.T) {
	r := &recorder{}
	boom := errors.New("lost the connection")
	failing := Stage{Name: "failing", Run: func(context.Context) error {
		time.Sleep(10 * time.Millisecond)
		return boom
	}}
	m := New(5*time.Second, nil, stage(r, "a"), failing, stage(r, "b"))
	err := m.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	want := []string{"start a", "start b", "run done b", "stop b", "run done a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRunReturningEarlyStopsTheProcess(t *testing.T) {
	m := New(time.Second, nil, Stage{Name: "quitter", Run: func(context.Context) error { return nil }})
	err := m.Run(context.Background())
	var se *StageError
	if !errors.As(err, &se) || se.Stage != "quitter" || se.Phase != "run" {
		t.Fatalf("err = %v, want a run error of quitter", err)
	}
}

func TestStopDeadlineAbandonsButStillStops(t *testing.T) {
	r := &recorder{}
	stuck := Stage{
		Name: "stuck",
		Run:  func(context.Context) error { select {} },
		Stop: func(ctx context.Context) error {
			if ctx.Err() == nil {
				r.add("stop stuck with time left")
			} else {
				r.add("stop stuck after deadline")
			}
			return nil
		},
	}
	m := New(100*time.Millisecond, nil, stage(r, "a"), stuck)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitReady(t, m)
	began := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its deadline")
	}
	if !errors.Is(err, ErrStopDeadline) {
		t.Fatalf("err = %v, want ErrStopDeadline", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("stop took %s with a 100ms deadline", d)
	}
	// a's Run is no longer awaited after the deadline, but every Stop runs.
	got := r.get()
	if !slices.Contains(got, "stop stuck after deadline") || !slices.Contains(got, "stop a") {
		t.Fatalf("got %v, want every stage's Stop called", got)
	}
}

func TestCancelledWhileStarting(t *testing.T) {
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	waiting := Stage{Name: "waits", Start: func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}}
	m := New(time.Second, nil, stage(r, "a"), waiting, stage(r, "never"))
	if err := m.Run(ctx); err != nil {
		t.Fatalf("a stop asked for during start-up is not a failure: %v", err)
	}
	if got, want := r.get(), []string{"start a", "run done a", "stop a"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestOrder(t *testing.T) {
	deps := map[string][]string{
		"ingestor": {"bus", "store", "topology"},
		"topology": {"bus"},
		"query":    {"bus", "store", "settings"},
		"settings": {"bus", "topology"},
	}
	got, err := Order(deps, "ingestor", "query")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bus", "store", "topology", "ingestor", "settings", "query"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := Order(map[string][]string{"a": {"b"}, "b": {"a"}}, "a"); err == nil {
		t.Fatal("a cycle was not reported")
	}
}

func waitReady(t *testing.T, m *Manager) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", m.Ready())
		}
		time.Sleep(time.Millisecond)
	}
}
