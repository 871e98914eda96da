package app

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// syslogSink is a syslog receiver over TCP with octet counting, as a
// customer's SIEM collector. Addr is where it listens; every record is
// kept (All) and also offered on C, which drops what does not fit.
type syslogSink struct {
	Addr string
	C    chan string

	mu  sync.Mutex
	all []string
}

func newSyslogSink(t *testing.T) *syslogSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &syslogSink{Addr: ln.Addr().String(), C: make(chan string, 1000)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.read(c)
		}
	}()
	return s
}

func (s *syslogSink) read(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || size <= 0 {
			return
		}
		rec := make([]byte, size)
		if _, err := io.ReadFull(br, rec); err != nil {
			return
		}
		s.mu.Lock()
		s.all = append(s.all, string(rec))
		s.mu.Unlock()
		select {
		case s.C <- string(rec):
		default:
		}
	}
}

// All returns every record received so far.
func (s *syslogSink) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}
