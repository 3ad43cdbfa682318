package store

import "context"

// ExecForTest runs raw SQL on the writer so tests can set up states the API cannot.
func (s *Store) ExecForTest(ctx context.Context, q string) error {
	_, err := s.w.ExecContext(ctx, q)
	return err
}
