package producer_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/producer"
)

// restartResult is what a broker restart under load did to Emit's callers.
type restartResult struct {
	acked    int           // Emit calls that returned without error
	errs     []error       // Emit calls that returned an error
	stored   uint64        // messages in the stream afterwards
	distinct int           // distinct event ids acknowledged
	recovery time.Duration // broker ready again → first successful Emit
}

// restartUnderLoad runs callers goroutines calling Emit in a loop, each
// call with callerDeadline, against a NATS server reached through a TCP
// proxy. It then does what a kill -9 of the broker does to its clients:
// the bytes in transit are lost (the proxy drops them) and the connections
// are reset; the server is stopped for outage, started again on the same
// store, and the load goes on for a second more.
func restartUnderLoad(t testing.TB, callers int, outage, callerDeadline time.Duration) restartResult {
	t.Helper()
	b := newRestartableBroker(t)
	p, err := producer.New(b.js)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()

	var (
		mu       sync.Mutex
		res      restartResult
		ids      = map[string]bool{}
		readyAt  atomic.Int64 // unix nanos the restarted server was ready
		firstOK  atomic.Int64 // unix nanos of the first success after that
		stopLoad = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callerDeadline)
				r, err := p.Emit(ctx, producer.AuthLogin("org_1", alice, "password"))
				cancel()
				now := time.Now().UnixNano()
				mu.Lock()
				if err != nil {
					res.errs = append(res.errs, err)
				} else {
					res.acked++
					ids[r.EventID] = true
					if ra := readyAt.Load(); ra != 0 && now >= ra {
						firstOK.CompareAndSwap(0, now)
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	b.kill()
	time.Sleep(outage)
	b.restart()
	readyAt.Store(time.Now().UnixNano())
	deadline := time.Now().Add(callerDeadline)
	for firstOK.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stopLoad)
	wg.Wait()

	res.distinct = len(ids)
	if f := firstOK.Load(); f != 0 {
		res.recovery = time.Duration(f - readyAt.Load())
	} else {
		res.recovery = -1
	}
	res.stored = msgs(t, b.stream)
	return res
}

// restartableBroker is a NATS server with JetStream and the events stream,
// reached through a cutProxy, that can be killed and restarted on the
// same store.
type restartableBroker struct {
	t      testing.TB
	opts   *server.Options
	srv    *server.Server
	px     *cutProxy
	js     jetstream.JetStream
	stream jetstream.Stream
}

func newRestartableBroker(t testing.TB) *restartableBroker {
	t.Helper()
	b := &restartableBroker{t: t, opts: &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	b.start()
	b.opts.Port = b.srv.Addr().(*net.TCPAddr).Port
	b.px = newCutProxy(t, b.srv.Addr().String())
	// The connection options the README recommends for producers.
	nc, err := nats.Connect("nats://"+b.px.addr(), producer.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	b.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b.stream = createStream(t, b.js)
	t.Cleanup(func() {
		nc.Close()
		b.px.close()
		b.srv.Shutdown()
	})
	return b
}

func (b *restartableBroker) start() {
	srv, err := server.NewServer(b.opts)
	if err != nil {
		b.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.t.Fatal("nats server not ready")
	}
	b.srv = srv
}

// kill loses the bytes in transit, resets the clients' connections and
// stops the server.
func (b *restartableBroker) kill() {
	b.px.cut()
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// restart starts the server again on the same port and store and lets
// clients reconnect.
func (b *restartableBroker) restart() {
	b.start()
	b.px.resume()
}

// EmitAsync across a broker kill: what was in flight when the connection
// dropped is published again, Flush reports no failure, and every event
// handed to EmitAsync is in the stream once.
func TestEmitAsyncRidesOutABrokerRestart(t *testing.T) {
	b := newRestartableBroker(t)
	p, err := producer.New(b.js, producer.WithMaxInFlight(512))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	var emitted atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := p.EmitAsync(context.Background(), producer.AuthLogin("org_1", alice, "sso")); err != nil {
				done <- err
				return
			}
			emitted.Add(1)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	b.kill()
	time.Sleep(2 * time.Second)
	b.restart()
	time.Sleep(time.Second)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush after a broker restart: %v", err)
	}
	if got, want := msgs(t, b.stream), uint64(emitted.Load()); got != want {
		t.Fatalf("stream holds %d events, %d were handed to EmitAsync", got, want)
	}
	t.Logf("%d events through EmitAsync across a 2 s outage, all stored once", emitted.Load())
}

// A broker restarted while 16 goroutines call Emit: every call whose
// deadline outlasts the outage returns without error, and every
// acknowledged event is in the stream once.
func TestEmitRidesOutABrokerRestart(t *testing.T) {
	res := restartUnderLoad(t, 16, 3*time.Second, 30*time.Second)
	if len(res.errs) > 0 {
		t.Fatalf("%d Emit calls failed across a 3 s outage with a 30 s deadline; first: %v", len(res.errs), res.errs[0])
	}
	if res.acked == 0 || res.recovery < 0 {
		t.Fatalf("no Emit succeeded after the restart (acked %d)", res.acked)
	}
	if res.distinct != res.acked {
		t.Fatalf("%d acknowledgements for %d distinct events", res.acked, res.distinct)
	}
	if res.stored != uint64(res.distinct) {
		t.Fatalf("stream holds %d messages, %d events were acknowledged", res.stored, res.distinct)
	}
	t.Logf("acknowledged %d events, stored %d, first success %s after the broker was ready", res.acked, res.stored, res.recovery)
}

// BenchmarkBrokerRestart reports how long after a restarted broker is
// ready the first Emit succeeds (target ≤ 2 s), with 16 callers.
func BenchmarkBrokerRestart(b *testing.B) {
	for range b.N {
		res := restartUnderLoad(b, 16, 3*time.Second, 30*time.Second)
		b.ReportMetric(float64(res.recovery.Milliseconds()), "recovery_ms")
		b.ReportMetric(float64(len(res.errs)), "errors")
		b.ReportMetric(float64(res.acked), "acked")
		b.ReportMetric(float64(int64(res.stored)-int64(res.distinct)), "stored-acked")
	}
}

// cutProxy forwards TCP connections to a NATS server until cut: then it
// drops whatever is in transit, resets every connection and refuses new
// ones until resumed — what clients see when a broker is killed.
type cutProxy struct {
	t        testing.TB
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]bool
}

func newCutProxy(t testing.TB, upstream string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	go p.accept()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

// pipe copies until cut; once cut, what it reads is dropped.
func (p *cutProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if n > 0 && !down {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = dst.Close()
			}
			return
		}
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) resume() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	p.cut()
	_ = p.ln.Close()
}
