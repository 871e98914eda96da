package consume_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

const testConsumer = "worker"

type env struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
}

// start runs a server with the topology (for the dead-letter stream) and a
// stream T with one durable consumer of the given ack wait.
func start(t *testing.T, ackWait time.Duration) *env {
	t.Helper()
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: testConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: 10_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, cons: cons}
}

func (e *env) publish(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := e.js.Publish(context.Background(), "t.n", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := e.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (e *env) deadLetters(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(context.Background(), topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// decodeInt is the test decoder: a number, or poison of class "decode".
func decodeInt(msg jetstream.Msg) (int, error) {
	n, err := strconv.Atoi(string(msg.Data()))
	if err != nil {
		return 0, consume.Poison("decode", err)
	}
	return n, nil
}

// recorder is a handler that records what it handled and fails while told.
type recorder struct {
	mu      sync.Mutex
	seen    []int
	calls   atomic.Int64
	sizes   []int
	failing atomic.Bool
	fail    func([]consume.Msg[int]) error // when set, decides the outcome
}

func (r *recorder) handle(ctx context.Context, batch []consume.Msg[int]) error {
	r.calls.Add(1)
	if r.fail != nil {
		if err := r.fail(batch); err != nil {
			return err
		}
	}
	if r.failing.Load() {
		return consume.Transient(errors.New("receiver down"), 0)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes = append(r.sizes, len(batch))
	for _, m := range batch {
		r.seen = append(r.seen, m.Value)
	}
	return nil
}

func (r *recorder) handled() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.seen...)
}

func run(t *testing.T, e *env, cfg consume.Config, h consume.Handler[int], opts ...consume.Option) (stop func() error) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = testConsumer
	}
	eng, err := consume.New(cfg, e.cons, decodeInt, h, append([]consume.Option{consume.WithDeadLetters(e.js)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	var once sync.Once
	var res error
	stop = func() error {
		once.Do(func() { cancel(); res = <-done })
		return res
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inOrderOnce(t *testing.T, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("handled %d messages, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d: duplicate or out of order (%v...)", i, v, got[max(0, i-3):min(len(got), i+3)])
		}
	}
}

func TestBatchesBySizeAndTimeAcksEverything(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	run(t, e, consume.Config{BatchSize: 100, BatchWait: 100 * time.Millisecond}, r.handle)
	e.publish(t, 0, 250)
	waitFor(t, "250 handled", 10*time.Second, func() bool { return len(r.handled()) == 250 })
	inOrderOnce(t, r.handled(), 250)
	r.mu.Lock()
	sizes := r.sizes
	r.mu.Unlock()
	for _, s := range sizes {
		if s > 100 {
			t.Fatalf("batch of %d over the size 100", s)
		}
	}
	waitFor(t, "everything acknowledged", 5*time.Second, func() bool {
		info := e.info(t)
		return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 250
	})
	// A lone message is handed over after BatchWait, not after IdleWait.
	t0 := time.Now()
	e.publish(t, 250, 251)
	waitFor(t, "the lone message", 3*time.Second, func() bool { return len(r.handled()) == 251 })
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("a lone message took %s", d)
	}
}

// A handler failing for several ack waits, with far more messages in the
// stream than one batch: the engine keeps the batch in the handler and the
// batches it already fetched from redelivery, so after recovery every
// message is handled exactly once and in order.
func TestOutageLongerThanAckWaitHandlesEachMessageOnceInOrder(t *testing.T) {
	e := start(t, 2*time.Second)
	r := &recorder{}
	r.failing.Store(true)
	reg := prometheus.NewRegistry()
	m := consume.NewMetrics(reg)
	run(t, e, consume.Config{BatchSize: 50, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second,
		RetryInitial: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond}, r.handle, consume.WithMetrics(m))
	e.publish(t, 0, 500)
	waitFor(t, "several failed attempts", 5*time.Second, func() bool { return r.calls.Load() >= 5 })
	time.Sleep(7 * time.Second) // 3.5 ack waits
	info := e.info(t)
	if info.AckFloor.Stream != 0 || info.NumRedelivered != 0 {
		t.Fatalf("during the outage: ack floor %d, redelivered %d; want 0 and 0", info.AckFloor.Stream, info.NumRedelivered)
	}
	calls := r.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if n := r.calls.Load() - calls; n > 4 {
		t.Fatalf("retries not backing off: %d attempts in 300ms", n)
	}
	r.failing.Store(false)
	waitFor(t, "every message handled", 15*time.Second, func() bool { return len(r.handled()) >= 500 })
	time.Sleep(500 * time.Millisecond)
	inOrderOnce(t, r.handled(), 500)
	info = e.info(t)
	if info.NumRedelivered != 0 {
		t.Fatalf("%d messages redelivered", info.NumRedelivered)
	}
	if testutil.ToFloat64(m.Retries(testConsumer, consume.RetryBackoff)) < 5 {
		t.Fatal("retries not counted")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	e := start(t, 30*time.Second)
	var first atomic.Int64
	var times []time.Time
	var mu sync.Mutex
	r := &recorder{fail: func([]consume.Msg[int]) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if first.Add(1) == 1 {
			return consume.Transient(errors.New("429"), 1500*time.Millisecond)
		}
		return nil
	}}
	run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond, RetryInitial: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}, r.handle)
	e.publish(t, 0, 1)
	waitFor(t, "the message handled", 10*time.Second, func() bool { return len(r.handled()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < 1400*time.Millisecond {
		t.Fatalf("retried after %s, want the Retry-After of 1.5s", gap)
	}
}

func TestPoisonIsDeadLetteredOnceByTheOwnerAndTerminatedByOthers(t *testing.T) {
	for _, owner := range []bool{true, false} {
		t.Run(fmt.Sprintf("dead_letter=%v", owner), func(t *testing.T) {
			e := start(t, 30*time.Second)
			r := &recorder{}
			reg := prometheus.NewRegistry()
			m := consume.NewMetrics(reg)
			var hooked atomic.Int64
			run(t, e, consume.Config{DeadLetter: owner, BatchSize: 10, BatchWait: 20 * time.Millisecond}, r.handle,
				consume.WithMetrics(m), consume.WithPoisonHook(func(p *consume.PoisonError, action string) { hooked.Add(1) }))
			e.publish(t, 0, 2)
			if _, err := e.js.Publish(context.Background(), "t.n", []byte("not a number")); err != nil {
				t.Fatal(err)
			}
			e.publish(t, 2, 4)
			waitFor(t, "the good messages", 5*time.Second, func() bool { return len(r.handled()) == 4 })
			waitFor(t, "nothing pending", 5*time.Second, func() bool {
				info := e.info(t)
				return info.NumAckPending == 0 && info.NumPending == 0
			})
			dls := e.deadLetters(t)
			action := consume.PoisonTerminated
			if owner {
				action = consume.PoisonDeadLettered
				if len(dls) != 1 {
					t.Fatalf("%d dead letters, want 1", len(dls))
				}
				dl := dls[0]
				if r := dl.Header.Get(topology.HeaderDLReason); r != `decode: strconv.Atoi: parsing "not a number": invalid syntax` {
					t.Fatalf("reason %q", r)
				}
				if dl.Header.Get(topology.HeaderDLConsumer) != testConsumer || string(dl.Data) != "not a number" {
					t.Fatalf("dead letter %v %q", dl.Header, dl.Data)
				}
			} else if len(dls) != 0 {
				t.Fatalf("%d dead letters from a reader that does not own poison", len(dls))
			}
			if n := testutil.ToFloat64(m.Poison(testConsumer, "decode", action)); n != 1 {
				t.Fatalf("poison counted %v times as %s", n, action)
			}
			if hooked.Load() != 1 {
				t.Fatalf("hook called %d times", hooked.Load())
			}
		})
	}
}

// A handler reports one message of its batch as poison: it is set aside
// (Local poison is dead-lettered even by a non-owner) and the rest is
// handed over again at once.
func TestMessageErrorSetsOneAsideAndRetriesTheRest(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{fail: func(b []consume.Msg[int]) error {
		var errs []error
		for i, m := range b {
			if m.Value%10 == 3 {
				errs = append(errs, consume.AtMessage(i, &consume.PoisonError{Class: "format", Reason: "format: cannot encode", Local: true}))
			}
		}
		return errors.Join(errs...)
	}}
	run(t, e, consume.Config{BatchSize: 100, BatchWait: 100 * time.Millisecond, RetryInitial: time.Second, RetryMax: time.Second}, r.handle)
	e.publish(t, 0, 30)
	waitFor(t, "27 handled", 5*time.Second, func() bool { return len(r.handled()) == 27 })
	for _, v := range r.handled() {
		if v%10 == 3 {
			t.Fatalf("poison %d handled", v)
		}
	}
	waitFor(t, "3 dead letters", 5*time.Second, func() bool { return len(e.deadLetters(t)) == 3 })
	if got := e.deadLetters(t)[0].Header.Get(topology.HeaderDLReason); got != "format: cannot encode" {
		t.Fatalf("reason %q", got)
	}
	waitFor(t, "nothing pending", 5*time.Second, func() bool {
		info := e.info(t)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// A stop while the handler fails releases every held message at once.
func TestStopReleasesHeldMessagesForImmediateRedelivery(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	r.failing.Store(true)
	stop := run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond}, r.handle)
	e.publish(t, 0, 25)
	waitFor(t, "failed attempts", 5*time.Second, func() bool { return r.calls.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// A second reader gets every message now, long before the ack wait.
	r2 := &recorder{}
	run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond}, r2.handle)
	waitFor(t, "redelivery", 5*time.Second, func() bool { return len(r2.handled()) == 25 })
}

func TestStopFlushesTheBatchBeingCollected(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	stop := run(t, e, consume.Config{BatchSize: 1000, BatchWait: time.Minute}, r.handle)
	e.publish(t, 0, 40)
	waitFor(t, "delivered", 5*time.Second, func() bool { return e.info(t).NumPending == 0 })
	time.Sleep(100 * time.Millisecond)
	if n := len(r.handled()); n != 0 {
		t.Fatalf("handled %d before the batch was due", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	inOrderOnce(t, r.handled(), 40)
	waitFor(t, "acks", 5*time.Second, func() bool { return e.info(t).NumAckPending == 0 })
}

func TestDeletedConsumerEndsRunLoudly(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	eng, err := consume.New(consume.Config{Name: testConsumer, BatchSize: 10, IdleWait: 300 * time.Millisecond}, e.cons, decodeInt, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	if err := e.js.DeleteConsumer(context.Background(), "T", testConsumer); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, consume.ErrConsumerGone) {
			t.Fatalf("Run returned %v, want ErrConsumerGone", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("engine kept running without its consumer")
	}
}

// notices records what a Notifier is told.
type notices struct {
	mu     sync.Mutex
	events []string
}

func (n *notices) Missing(object string, err error) { n.add("missing " + object) }
func (n *notices) Found(object string)              { n.add("found " + object) }
func (n *notices) add(s string)                     { n.mu.Lock(); n.events = append(n.events, s); n.mu.Unlock() }
func (n *notices) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.events...)
}

// With WithRebind, a deleted consumer does not end Run: the engine says
// so, waits until the consumer is recreated, and reads on from it.
func TestDeletedConsumerIsWaitedForAndReadAgain(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	n := &notices{}
	cfg := jetstream.ConsumerConfig{Durable: testConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 10_000}
	find := func(ctx context.Context) (consume.Consumer, error) { return e.js.Consumer(ctx, "T", testConsumer) }
	reg := prometheus.NewRegistry()
	stop := run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond, IdleWait: 300 * time.Millisecond}, r.handle,
		consume.WithRebind("consumer T/worker", find, n), consume.WithMetrics(consume.NewMetrics(reg)))
	e.publish(t, 0, 20)
	waitFor(t, "the first messages", 5*time.Second, func() bool { return len(r.handled()) == 20 })
	if err := e.js.DeleteConsumer(context.Background(), "T", testConsumer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loss to be noticed", 15*time.Second, func() bool { return len(n.list()) == 1 })
	if got := testutil.ToFloat64(consume.NewMetrics(reg).ConsumerLost(testConsumer)); got != 1 {
		t.Fatalf("audit_consume_consumer_lost_total = %v, want 1", got)
	}
	// Recreated as its owner would, starting after what was handled.
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, 21
	if _, err := e.js.CreateOrUpdateConsumer(context.Background(), "T", cfg); err != nil {
		t.Fatal(err)
	}
	e.publish(t, 20, 40)
	waitFor(t, "messages after the repair", 15*time.Second, func() bool { return len(r.handled()) == 40 })
	inOrderOnce(t, r.handled(), 40)
	if got := n.list(); strings.Join(got, ",") != "missing consumer T/worker,found consumer T/worker" {
		t.Fatalf("notices %v", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after a repair returned %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	_, err := consume.New(consume.Config{BatchSize: -1, BatchWait: -time.Second}, e.cons, decodeInt, r.handle)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"name", "batch size", "batch wait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := consume.New(consume.Config{Name: "x", DeadLetter: true}, e.cons, decodeInt, r.handle); err == nil {
		t.Fatal("want an error for dead-lettering without a publisher")
	}
}

// Middleware wraps the handler, the first outermost, as in Watermill.
func TestMiddlewareWrapsTheHandler(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	var order []string
	var mu sync.Mutex
	mark := func(name string) consume.Middleware[int] {
		return func(next consume.Handler[int]) consume.Handler[int] {
			return func(ctx context.Context, b []consume.Msg[int]) error {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return next(ctx, b)
			}
		}
	}
	run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond}, r.handle,
		consume.WithMiddleware(mark("outer"), mark("inner")))
	e.publish(t, 0, 1)
	waitFor(t, "the message", 5*time.Second, func() bool { return len(r.handled()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "outer,inner" {
		t.Fatalf("middleware ran as %v", order)
	}
	if _, err := consume.New(consume.Config{Name: "x"}, e.cons, decodeInt, r.handle,
		consume.WithMiddleware(func(h consume.Handler[string]) consume.Handler[string] { return h })); err == nil {
		t.Fatal("want an error for middleware of another type")
	}
}

// Every reader of a process may create its metrics on one registry.
func TestMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := consume.NewMetrics(reg), consume.NewMetrics(reg)
	a.Poison("c", "decode", consume.PoisonTerminated).Inc()
	if n := testutil.ToFloat64(b.Poison("c", "decode", consume.PoisonTerminated)); n != 1 {
		t.Fatalf("second Metrics sees %v, want the shared counter at 1", n)
	}
}

// With OneAttemptOnStop, a stop during an outage makes one last attempt
// and releases the batch at once rather than retrying until the deadline.
func TestOneAttemptOnStop(t *testing.T) {
	e := start(t, 30*time.Second)
	r := &recorder{}
	r.failing.Store(true)
	stop := run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond, RetryInitial: time.Second, RetryMax: time.Second,
		ShutdownTimeout: 20 * time.Second, OneAttemptOnStop: true}, r.handle)
	e.publish(t, 0, 5)
	waitFor(t, "a failed attempt", 5*time.Second, func() bool { return r.calls.Load() >= 1 })
	calls := r.calls.Load()
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if r.calls.Load() <= calls {
		t.Fatal("no last attempt on stop")
	}
	r2 := &recorder{}
	run(t, e, consume.Config{BatchSize: 10, BatchWait: 20 * time.Millisecond}, r2.handle)
	waitFor(t, "immediate redelivery", 5*time.Second, func() bool { return len(r2.handled()) == 5 })
}

// While the handler is busy, the next batch grows up to BatchSize instead
// of being cut at BatchWait: under a backlog the handler's fixed cost per
// batch is spread over full batches.
func TestBatchGrowsWhileTheHandlerIsBusy(t *testing.T) {
	e := start(t, 30*time.Second)
	release := make(chan struct{})
	r := &recorder{}
	r.fail = func(batch []consume.Msg[int]) error {
		if batch[0].Value == 0 {
			<-release
		}
		return nil
	}
	run(t, e, consume.Config{BatchSize: 500, BatchWait: 2 * time.Millisecond}, r.handle)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the engine stops
	e.publish(t, 0, 1)
	waitFor(t, "the first batch in the handler", 5*time.Second, func() bool { return r.calls.Load() == 1 })
	// One after the other: over more than BatchWait, never a pause as
	// long as a growing fetch waits.
	e.publish(t, 1, 401)
	waitFor(t, "every message fetched", 10*time.Second, func() bool { return e.info(t).NumAckPending == 401 })
	unblock()
	waitFor(t, "401 handled", 10*time.Second, func() bool { return len(r.handled()) == 401 })
	inOrderOnce(t, r.handled(), 401)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sizes) != 2 || r.sizes[1] != 400 {
		t.Fatalf("batch sizes %v, want [1 400]: the second batch grew while the first was handled", r.sizes)
	}
}
