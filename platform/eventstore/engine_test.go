package eventstore

import "context"

type nopEngine struct{}

func (nopEngine) Exec(context.Context, string, ...Param) error          { return nil }
func (nopEngine) Query(context.Context, string, ...Param) (Rows, error) { return nil, nil }
func (nopEngine) Insert(context.Context, Batch) error                   { return nil }
