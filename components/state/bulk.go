package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultBulkParallelism is how many keys the fallback BulkGet reads at once
// when the caller gives no parallelism.
const DefaultBulkParallelism = 10

// BulkGet reads many keys: natively when s is a BulkStore, otherwise with
// parallel Gets (at most parallelism at a time). Per-key failures are
// reported in the response's Error field, as Dapr does; the returned error is
// for failures of the whole call. Responses are in request order for the
// fallback.
func BulkGet(ctx context.Context, s Store, reqs []GetRequest, parallelism int) ([]BulkGetResponse, error) {
	if bs, ok := s.(BulkStore); ok {
		return bs.BulkGet(ctx, reqs)
	}
	if parallelism <= 0 {
		parallelism = DefaultBulkParallelism
	}
	out := make([]BulkGetResponse, len(reqs))
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = BulkGetResponse{Key: reqs[i].Key}
			resp, err := s.Get(ctx, &reqs[i])
			switch {
			case err != nil:
				out[i].Error = err.Error()
			case resp != nil:
				out[i].Data, out[i].ETag, out[i].Metadata = resp.Data, resp.ETag, resp.Metadata
			}
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

// BulkSet writes many keys: natively when s is a BulkStore, otherwise one Set
// after the other, attempting every key and joining the errors (each names
// its key; errors.Is finds ErrETagMismatch in the result). Not atomic: use
// Transactional for that.
func BulkSet(ctx context.Context, s Store, reqs []SetRequest) error {
	if bs, ok := s.(BulkStore); ok {
		return bs.BulkSet(ctx, reqs)
	}
	var errs []error
	for i := range reqs {
		if err := s.Set(ctx, &reqs[i]); err != nil {
			errs = append(errs, fmt.Errorf("set %q: %w", reqs[i].Key, err))
		}
	}
	return errors.Join(errs...)
}

// BulkDelete deletes many keys like BulkSet writes them.
func BulkDelete(ctx context.Context, s Store, reqs []DeleteRequest) error {
	if bs, ok := s.(BulkStore); ok {
		return bs.BulkDelete(ctx, reqs)
	}
	var errs []error
	for i := range reqs {
		if err := s.Delete(ctx, &reqs[i]); err != nil {
			errs = append(errs, fmt.Errorf("delete %q: %w", reqs[i].Key, err))
		}
	}
	return errors.Join(errs...)
}
