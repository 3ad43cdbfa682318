package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"mesh/store"
)

// benchRoom opens a fresh database with one user in one room.
func benchRoom(b *testing.B) (s *store.Store, roomID, userID int64) {
	b.Helper()
	s, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	u := addUsers(b, s, "alice")[0]
	return s, createRoom(b, s, "General", store.VisibilityPublic, u.ID).ID, u.ID
}

// BenchmarkAppendMessage stores one message per transaction, one after another.
func BenchmarkAppendMessage(b *testing.B) {
	ctx := context.Background()
	s, roomID, userID := benchRoom(b)
	n := 0
	for b.Loop() {
		if _, _, err := s.AppendMessage(ctx, roomID, userID, "hello, this is a chat message", fmt.Sprint("c", n)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendMessagesBatch stores size messages per transaction (group commit).
func BenchmarkAppendMessagesBatch(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprint("size=", size), func(b *testing.B) {
			ctx := context.Background()
			s, roomID, userID := benchRoom(b)
			batch := make([]store.NewMessage, size)
			n := 0
			for b.Loop() {
				for i := range batch {
					batch[i] = store.NewMessage{RoomID: roomID, UserID: userID, Text: "hello, this is a chat message", ClientMsgID: fmt.Sprint("c", n)}
					n++
				}
				if _, err := s.AppendMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
