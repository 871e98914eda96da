package chdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// lib holds the engine's C entry points once the library is loaded. It is
// loaded at most once per process; a failed attempt is not remembered, so a
// later Open can succeed once the library has been fetched.
type lib struct {
	path string

	version             func() *byte
	setSignalHandlers   func(enabled int32)
	connect             func(argc int32, argv **byte) *uintptr
	closeConn           func(conn *uintptr)
	queryN              func(conn uintptr, q *byte, qlen uintptr, f *byte, flen uintptr) unsafe.Pointer
	queryParamsN        func(conn uintptr, q *byte, qlen uintptr, f *byte, flen uintptr, names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, n uintptr) unsafe.Pointer
	resultBuffer        func(r unsafe.Pointer) *byte
	resultLength        func(r unsafe.Pointer) uintptr
	resultError         func(r unsafe.Pointer) *byte
	resultRowsWritten   func(r unsafe.Pointer) uint64
	destroyResult       func(r unsafe.Pointer)
	streamInsertN       func(conn uintptr, q *byte, qlen uintptr, f *byte, flen uintptr) unsafe.Pointer
	streamAppend        func(s unsafe.Pointer, data *byte, n uintptr) int32
	streamDone          func(s unsafe.Pointer) unsafe.Pointer
	streamInsertError   func(s unsafe.Pointer) *byte
	destroyInsertStream func(s unsafe.Pointer)
	streamCancelInsert  func(s unsafe.Pointer)
}

var (
	libMu     sync.Mutex
	loadedLib *lib
)

// loadLib loads the library at path, or returns the one already loaded. A
// process can load one library; asking for another path is an error.
func loadLib(path string) (*lib, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no library path given: %s", ErrLibraryMissing, FetchHint)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("chdb: library path %q: %w", path, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: %s", ErrLibraryMissing, abs, FetchHint)
	}
	if err != nil {
		return nil, fmt.Errorf("chdb: library %s: %w", abs, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w at %s (it is a directory): %s", ErrLibraryMissing, abs, FetchHint)
	}
	libMu.Lock()
	defer libMu.Unlock()
	if loadedLib != nil {
		if loadedLib.path != abs {
			return nil, fmt.Errorf("chdb: library already loaded from %s, cannot load %s in the same process", loadedLib.path, abs)
		}
		return loadedLib, nil
	}
	h, err := purego.Dlopen(abs, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("chdb: cannot load %s (%v); the file may be damaged: %s", abs, err, FetchHint)
	}
	l := &lib{path: abs}
	syms := []struct {
		fptr any
		name string
	}{
		{&l.version, "chdb_version"},
		{&l.setSignalHandlers, "chdb_set_signal_handlers_enabled"},
		{&l.connect, "chdb_connect"},
		{&l.closeConn, "chdb_close_conn"},
		{&l.queryN, "chdb_query_n"},
		{&l.queryParamsN, "chdb_query_with_params_n"},
		{&l.resultBuffer, "chdb_result_buffer"},
		{&l.resultLength, "chdb_result_length"},
		{&l.resultError, "chdb_result_error"},
		{&l.resultRowsWritten, "chdb_result_rows_written"},
		{&l.destroyResult, "chdb_destroy_query_result"},
		{&l.streamInsertN, "chdb_stream_insert_n"},
		{&l.streamAppend, "chdb_stream_append"},
		{&l.streamDone, "chdb_stream_done"},
		{&l.streamInsertError, "chdb_stream_insert_error"},
		{&l.destroyInsertStream, "chdb_destroy_insert_stream"},
		{&l.streamCancelInsert, "chdb_stream_cancel_insert"},
	}
	for _, s := range syms {
		sym, err := purego.Dlsym(h, s.name)
		if err != nil || sym == 0 {
			return nil, fmt.Errorf("chdb: %s does not export %s; this package needs libchdb %s: %s", abs, s.name, LibVersion, FetchHint)
		}
		purego.RegisterFunc(s.fptr, sym)
	}
	// The engine installs its own handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE
	// and SIGABRT at the first connection unless told not to. Those signals
	// belong to the Go runtime (stack growth, nil checks, preemption), so
	// turn that off; the call itself resets the handlers, so keep the
	// runtime's across it.
	restore := saveSignals()
	l.setSignalHandlers(0)
	restore()
	loadedLib = l
	return l, nil
}

// goString copies a NUL-terminated C string; nil gives "".
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
