package topology

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// fakeRecreator counts the calls recreate makes; lasts and errs are what
// create returns, one per call (then 0, nil).
type fakeRecreator struct {
	existsAfter int // exists reports true from this call on (0: never)
	exists      int
	creates     int
	removes     int
	lasts       []uint64
	errs        []error
}

func (f *fakeRecreator) recreator() recreator {
	return recreator{
		exists: func(context.Context) (bool, error) {
			f.exists++
			return f.existsAfter > 0 && f.exists >= f.existsAfter, nil
		},
		create: func(context.Context) (uint64, error) {
			i := f.creates
			f.creates++
			var last uint64
			var err error
			if i < len(f.lasts) {
				last = f.lasts[i]
			}
			if i < len(f.errs) {
				err = f.errs[i]
			}
			return last, err
		},
		remove: func(context.Context) error { f.removes++; return nil },
	}
}

func TestRecreate(t *testing.T) {
	v := NewVerifier(nil, zaptest.NewLogger(t), nil)
	v.Settle = 0
	ctx := context.Background()

	// A stream that comes up holding old messages is deleted and created
	// again until it comes up empty.
	f := &fakeRecreator{lasts: []uint64{12, 3}}
	if created, err := v.recreate(ctx, "stream S", f.recreator()); err != nil || !created {
		t.Fatalf("recreate = %v, %v", created, err)
	}
	if f.creates != 3 || f.removes != 2 {
		t.Fatalf("%d creates, %d removes; want 3 and 2", f.creates, f.removes)
	}

	// A refused create is tried again.
	f = &fakeRecreator{errs: []error{errors.New("error creating store for stream")}}
	if created, err := v.recreate(ctx, "stream S", f.recreator()); err != nil || !created {
		t.Fatalf("recreate after a refusal = %v, %v", created, err)
	}
	if f.creates != 2 || f.removes != 0 {
		t.Fatalf("%d creates, %d removes; want 2 and 0", f.creates, f.removes)
	}

	// One that is back by the time it looks again is left alone.
	f = &fakeRecreator{existsAfter: 2, lasts: []uint64{5}}
	if created, err := v.recreate(ctx, "stream S", f.recreator()); err != nil || created {
		t.Fatalf("recreate of a stream back meanwhile = %v, %v", created, err)
	}
	if f.creates != 1 || f.removes != 1 {
		t.Fatalf("%d creates, %d removes; want 1 and 1", f.creates, f.removes)
	}

	// The attempts are bounded, and the error says why.
	f = &fakeRecreator{lasts: []uint64{9, 9, 9, 9, 9, 9, 9}}
	created, err := v.recreate(ctx, "stream S", f.recreator())
	if err == nil || created || !strings.Contains(err.Error(), "deletion in progress") {
		t.Fatalf("recreate that never comes up empty = %v, %v", created, err)
	}
	if f.creates != recreateAttempts || f.removes != recreateAttempts-1 {
		t.Fatalf("%d creates, %d removes; want %d and %d", f.creates, f.removes, recreateAttempts, recreateAttempts-1)
	}
	f = &fakeRecreator{errs: []error{errA, errA, errA, errA, errA, errA}}
	if _, err := v.recreate(ctx, "stream S", f.recreator()); !errors.Is(err, errA) {
		t.Fatalf("recreate refused every time = %v, want the server's error", err)
	}

	// The wait ends with the context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f = &fakeRecreator{}
	if _, err := v.recreate(cctx, "stream S", f.recreator()); !errors.Is(err, context.Canceled) || f.creates != 0 {
		t.Fatalf("recreate with a cancelled context = %v after %d creates", err, f.creates)
	}
}

var errA = errors.New("refused")
