package chdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/chdb"
)

var (
	sess    *chdb.Session
	dataDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dataDir = dir
	sess, err = chdb.Open(chdb.DefaultLibPath(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chdb tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	sess.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestQuery(t *testing.T) {
	out, err := sess.Query(context.Background(), "SELECT 1 + 1", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "2\n" {
		t.Fatalf("got %q", out)
	}
	t.Logf("engine %s", sess.Version())
}

func TestEngineError(t *testing.T) {
	_, err := sess.Query(context.Background(), "SELECT * FROM no_such_table_x", "TabSeparated")
	var ee *chdb.EngineError
	if !errors.As(err, &ee) {
		t.Fatalf("got %T %v", err, err)
	}
	if ee.Code != 60 || ee.Name != "UNKNOWN_TABLE" {
		t.Fatalf("code %d name %q: %s", ee.Code, ee.Name, ee.Message)
	}
}

func TestParams(t *testing.T) {
	out, err := sess.Query(context.Background(), "SELECT {a:UInt32} + {a:UInt32}, {s:String}, length({s:String}), {e:String} = ''", "TabSeparated",
		chdb.Param{Name: "a", Value: "7"}, chdb.Param{Name: "s", Value: `it's \\ "q"`}, chdb.Param{Name: "e", Value: ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := "14\tit\\'s \\\\ \"q\"\t10\t1\n"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestSecondOpen(t *testing.T) {
	_, err := chdb.Open(chdb.DefaultLibPath(), t.TempDir())
	if !errors.Is(err, chdb.ErrSessionOpen) {
		t.Fatalf("got %v", err)
	}
}

func TestMissingLibrary(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope", "libchdb.so")
	_, err := chdb.Open(p, t.TempDir())
	if !errors.Is(err, chdb.ErrLibraryMissing) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{p, "make chdb", "AUDIT_CHDB_LIB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestDefaultLibPath(t *testing.T) {
	t.Setenv("AUDIT_CHDB_LIB", "/x/libchdb.so")
	if got := chdb.DefaultLibPath(); got != "/x/libchdb.so" {
		t.Errorf("override: %s", got)
	}
	t.Setenv("AUDIT_CHDB_LIB", "")
	t.Setenv("AUDIT_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/c")
	if got, want := chdb.DefaultLibPath(), "/c/takumo-audit/chdb/"+chdb.LibVersion+"/libchdb.so"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/h")
	if got, want := chdb.DefaultLibPath(), "/h/.cache/takumo-audit/chdb/"+chdb.LibVersion+"/libchdb.so"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestInsertStream(t *testing.T) {
	ctx := context.Background()
	if _, err := sess.Query(ctx, "CREATE TABLE default.t_stream (a UInt32, s String) ENGINE = MergeTree ORDER BY a", ""); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for i := range 1000 {
		b = append(b, byte(i), byte(i>>8), 0, 0)
		s := fmt.Sprintf("row\x00%d", i)
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	n, err := sess.InsertStream(ctx, "INSERT INTO default.t_stream (a, s)", "RowBinary", b, 777)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Query(ctx, "SELECT count(), sum(length(s)), countIf(position(s, '\\0') = 4) FROM default.t_stream", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "1000\t") {
		t.Fatalf("rows written %d, got %q", n, out)
	}
	t.Logf("written %d: %q", n, out)
}

// Data survives closing the session and opening it again, and the closed
// Session refuses work.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	if _, err := sess.Query(ctx, "CREATE TABLE default.t_reopen (a UInt8) ENGINE = MergeTree ORDER BY a", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Query(ctx, "INSERT INTO default.t_reopen VALUES (1), (2)", ""); err != nil {
		t.Fatal(err)
	}
	old := sess
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := old.Query(ctx, "SELECT 1", "TabSeparated"); !errors.Is(err, chdb.ErrClosed) {
		t.Fatalf("Query after Close: %v, want ErrClosed", err)
	}
	var err error
	sess, err = chdb.Open(chdb.DefaultLibPath(), dataDir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	out, err := sess.Query(ctx, "SELECT count() FROM default.t_reopen", "TabSeparated")
	if err != nil || string(out) != "2\n" {
		t.Fatalf("after reopen: %q, %v", out, err)
	}
}

// Statements from many goroutines are serialized, and a caller whose
// context ends while it waits gets the context's error.
func TestConcurrentQueries(t *testing.T) {
	ctx := context.Background()
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			out, err := sess.Query(ctx, fmt.Sprintf("SELECT %d", i), "TabSeparated")
			if err == nil && string(out) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("query %d got %q", i, out)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sess.Query(cancelled, "SELECT 1", "TabSeparated"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
