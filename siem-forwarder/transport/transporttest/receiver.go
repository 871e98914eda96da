package transporttest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// receiver is a real receiver of one protocol, started by the suite. It
// parses what arrives with its own reading of the protocol, independent
// of the transports.
type receiver struct {
	t     *testing.T
	proto Protocol
	tls   bool
	cert  tls.Certificate
	addr  string

	mu      sync.Mutex
	records []string
	raw     []string // per stream frame, datagram or request body
	reqs    []*http.Request
	errs    []error
	stall   bool // accept but never read / answer
	fail    bool // HTTP: answer 500 with a body no error may repeat
	closers []io.Closer
	release chan struct{}
}

// failBody is what a failing HTTP receiver answers; no error may carry it.
const failBody = "internal error at 10.1.2.3:8088 secret-body-marker"

func startReceiver(t *testing.T, proto Protocol, useTLS bool, cert tls.Certificate) *receiver {
	r := &receiver{t: t, proto: proto, tls: useTLS, cert: cert, addr: "127.0.0.1:0", release: make(chan struct{})}
	r.start()
	t.Cleanup(func() { r.stop(); close(r.release) })
	return r
}

func (r *receiver) start() {
	r.t.Helper()
	switch r.proto {
	case Datagram:
		pc, err := net.ListenPacket("udp", r.addr)
		if err != nil {
			r.t.Fatal(err)
		}
		r.addr = pc.LocalAddr().String()
		r.track(pc)
		go r.readDatagrams(pc)
	case HEC, NDJSON:
		ln, err := r.listen()
		if err != nil {
			r.t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
		r.track(srv)
		go func() { _ = srv.Serve(ln) }()
	default:
		ln, err := r.listen()
		if err != nil {
			r.t.Fatal(err)
		}
		if r.tls {
			ln = tls.NewListener(ln, r.tlsConfig())
		}
		r.track(ln)
		go r.acceptStreams(ln)
	}
}

// listen listens on the receiver's address: a fresh port the first time,
// the same one after a restart.
func (r *receiver) listen() (net.Listener, error) {
	var ln net.Listener
	var err error
	for range 50 { // the old socket may take a moment to release the port
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	r.addr = ln.Addr().String()
	if r.proto == HEC || r.proto == NDJSON {
		return tls.NewListener(ln, r.tlsConfig()), nil
	}
	return ln, nil
}

func (r *receiver) tlsConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{r.cert}, MinVersion: tls.VersionTLS12}
}

func (r *receiver) track(c io.Closer) {
	r.mu.Lock()
	r.closers = append(r.closers, c)
	r.mu.Unlock()
}

// stop closes the listener and every connection, as a receiver that goes
// away does.
func (r *receiver) stop() {
	r.mu.Lock()
	cs := r.closers
	r.closers = nil
	r.mu.Unlock()
	for _, c := range cs {
		if srv, ok := c.(*http.Server); ok {
			_ = srv.Close()
			continue
		}
		_ = c.Close()
	}
}

// restart stops the receiver and starts it again on the same address.
func (r *receiver) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

func (r *receiver) setStall(v bool) { r.mu.Lock(); r.stall = v; r.mu.Unlock() }
func (r *receiver) setFail(v bool)  { r.mu.Lock(); r.fail = v; r.mu.Unlock() }

func (r *receiver) add(raw string, recs []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if raw != "" {
		r.raw = append(r.raw, raw)
	}
	r.records = append(r.records, recs...)
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

func (r *receiver) acceptStreams(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.track(c)
		go r.readStream(c)
	}
}

func (r *receiver) readStream(c net.Conn) {
	defer c.Close()
	r.mu.Lock()
	stall := r.stall
	r.mu.Unlock()
	if stall {
		<-r.release
		return
	}
	br := bufio.NewReaderSize(c, 1<<16)
	for {
		rec, frame, err := readFrame(br, r.proto)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				r.add("", nil, err)
			}
			return
		}
		r.add(string(frame), []string{rec}, nil)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// readFrame reads one record: RFC 6587 octet counting (a decimal length
// without leading zeros, a space, that many bytes) or one line.
func readFrame(br *bufio.Reader, proto Protocol) (rec string, frame []byte, err error) {
	if proto == LF {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if len(line) > 0 {
				return "", nil, fmt.Errorf("lf framing: %d bytes without a final LF", len(line))
			}
			return "", nil, err
		}
		return string(line[:len(line)-1]), line, nil
	}
	var digits []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			if len(digits) > 0 {
				return "", nil, fmt.Errorf("octet counting: stream ends inside a length")
			}
			return "", nil, err
		}
		if b == ' ' {
			break
		}
		if b < '0' || b > '9' || (len(digits) == 0 && b == '0') || len(digits) > 8 {
			return "", nil, fmt.Errorf("octet counting: byte %q in a length", b)
		}
		digits = append(digits, b)
	}
	n, _ := strconv.Atoi(string(digits))
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", nil, fmt.Errorf("octet counting: %d of %d bytes: %w", len(buf), n, err)
	}
	frame = append(append(digits, ' '), buf...)
	return string(buf), frame, nil
}

func (r *receiver) readDatagrams(pc net.PacketConn) {
	buf := make([]byte, 1<<17)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		d := string(buf[:n])
		r.add(d, []string{d}, nil)
	}
}

func (r *receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	stall, fail := r.stall, r.fail
	r.mu.Unlock()
	if stall {
		select {
		case <-req.Context().Done():
		case <-r.release:
		}
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, failBody)
		return
	}
	recs, perr := splitLines(body)
	if perr == nil && r.proto == HEC {
		for i, rec := range recs {
			var env map[string]json.RawMessage
			if err := json.Unmarshal([]byte(rec), &env); err != nil || env["event"] == nil {
				perr = fmt.Errorf("HEC envelope %d is not a JSON object with an event: %q", i, rec)
				break
			}
		}
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	r.add(string(body), recs, perr)
	if r.proto == HEC {
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// splitLines reads a body of records each ended by LF.
func splitLines(body []byte) ([]string, error) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("body of %d bytes does not end with LF", len(body))
	}
	var out []string
	for _, l := range bytes.SplitAfter(body[:len(body)-1], []byte("\n")) {
		out = append(out, string(bytes.TrimSuffix(l, []byte("\n"))))
	}
	return out, nil
}

// wait returns the records once at least n arrived, failing t after the
// timeout.
func (r *receiver) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got, errs := append([]string(nil), r.records...), append([]error(nil), r.errs...)
		r.mu.Unlock()
		for _, err := range errs {
			t.Errorf("receiver: %v", err)
		}
		if len(errs) > 0 {
			t.FailNow()
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d records, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *receiver) rawFrames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.raw...)
}

func (r *receiver) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// localCert is the certificate of httptest's servers, valid for 127.0.0.1
// and example.com.
func localCert() tls.Certificate {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	return srv.TLS.Certificates[0]
}
