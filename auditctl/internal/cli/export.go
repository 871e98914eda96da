package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
)

// progressEvery is how often an interactive export redraws its progress.
const progressEvery = 200 * time.Millisecond

func runExport(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("export", env)
	var c conn
	var f filters
	c.register(fs, env)
	f.register(fs, true)
	format := fs.String("format", "ndjson", "csv or ndjson")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "ndjson" {
		return fmt.Errorf("%w: --format must be csv or ndjson", errUsage)
	}
	q, err := f.values(env.Now())
	if err != nil {
		return err
	}
	q.Set("format", *format)
	cl, err := c.client()
	if err != nil {
		return err
	}
	rc := &rowCounter{csv: *format == "csv"}
	w := io.MultiWriter(env.Stdout, rc)
	start := env.Now()
	var last time.Time
	n, err := cl.Export(ctx, q, w, func(bytes int64) {
		if env.Interactive && time.Since(last) >= progressEvery {
			last = time.Now()
			fmt.Fprintf(env.Stderr, "\rexporting: %d rows, %s", rc.rows(), size(bytes))
		}
	})
	if env.Interactive {
		fmt.Fprint(env.Stderr, "\r\033[K")
	}
	if err != nil {
		return fmt.Errorf("%w (%d complete rows written; the output is incomplete)", err, rc.rows())
	}
	fmt.Fprintf(env.Stderr, "exported %d rows, %s (%s) in %s\n", rc.rows(), size(n), *format, env.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// rowCounter counts the records of an export as it streams: lines of
// NDJSON; for CSV, line ends outside quoted cells, less the header.
type rowCounter struct {
	csv    bool
	quoted bool
	lines  int64
}

func (r *rowCounter) Write(p []byte) (int, error) {
	if !r.csv {
		r.lines += int64(bytes.Count(p, []byte{'\n'}))
		return len(p), nil
	}
	for _, b := range p {
		switch {
		case b == '"':
			r.quoted = !r.quoted // "" inside a cell toggles twice
		case b == '\n' && !r.quoted:
			r.lines++
		}
	}
	return len(p), nil
}

func (r *rowCounter) rows() int64 {
	if r.csv && r.lines > 0 {
		return r.lines - 1 // the header
	}
	return r.lines
}

func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}
