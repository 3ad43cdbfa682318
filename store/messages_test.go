package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/store"
)

func appendMsg(t testing.TB, s *store.Store, roomID, userID int64, text, clientID string) store.Message {
	t.Helper()
	m, dup, err := s.AppendMessage(context.Background(), roomID, userID, text, clientID)
	if err != nil || dup {
		t.Fatalf("AppendMessage(%d, %d, %q, %q) = %+v, dup %v, %v", roomID, userID, text, clientID, m, dup, err)
	}
	return m
}

// seqs lists the seq of each message.
func seqs(ms []store.Message) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

// seqRange is from, from+step, … to, both included.
func seqRange(from, to int64) []int64 {
	out := []int64{}
	step := int64(1)
	if to < from {
		step = -1
	}
	for i := from; ; i += step {
		out = append(out, i)
		if i == to {
			return out
		}
	}
}

func TestAppendMessageStoresAndNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob")
	a := createRoom(t, s, "A", store.VisibilityPublic, us[0].ID)
	b := createRoom(t, s, "B", store.VisibilityPublic, us[0].ID)

	m1 := appendMsg(t, s, a.ID, us[0].ID, "hello", "c1")
	want := store.Message{ID: m1.ID, RoomID: a.ID, Seq: 1, UserID: us[0].ID, Username: "alice", Text: "hello",
		ClientMsgID: "c1", CreatedAt: m1.CreatedAt}
	if diff := cmp.Diff(want, m1); diff != "" {
		t.Errorf("AppendMessage mismatch (-want +got):\n%s", diff)
	}
	if m := appendMsg(t, s, b.ID, us[0].ID, "other room", ""); m.Seq != 1 {
		t.Errorf("first message of room B has seq %d, want 1 (seq is per room)", m.Seq)
	}
	if m := appendMsg(t, s, a.ID, us[0].ID, "again", ""); m.Seq != 2 {
		t.Errorf("second message of room A has seq %d, want 2", m.Seq)
	}
	stored, _, err := s.MessagesAfter(ctx, a.ID, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Message{m1}, stored); diff != "" {
		t.Errorf("stored message differs from the returned one (-returned +stored):\n%s", diff)
	}
	if r, err := s.Room(ctx, a.ID); err != nil || r.LastSeq != 2 {
		t.Errorf("Room(A).LastSeq = %d, %v, want 2", r.LastSeq, err)
	}
}

func TestAppendMessageConcurrentSeqHasNoGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	const writers, each = 8, 40
	names := make([]string, writers)
	for i := range names {
		names[i] = fmt.Sprintf("user%d", i)
	}
	us := addUsers(t, s, names...)
	rooms := []store.Room{
		createRoom(t, s, "A", store.VisibilityPublic, us[0].ID),
		createRoom(t, s, "B", store.VisibilityPublic, us[0].ID),
	}
	for _, r := range rooms {
		for _, u := range us {
			if _, err := s.AddMember(ctx, r.ID, u.ID); err != nil {
				t.Fatal(err)
			}
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			last := map[int64]int64{}
			for i := range each {
				r := rooms[i%2]
				m, _, err := s.AppendMessage(ctx, r.ID, us[w].ID, fmt.Sprintf("w%d #%d", w, i), fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				if m.Seq <= last[r.ID] {
					errs <- fmt.Errorf("writer %d got seq %d after %d in room %d", w, m.Seq, last[r.ID], r.ID)
					return
				}
				last[r.ID] = m.Seq
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, r := range rooms {
		msgs, more, err := s.MessagesAfter(ctx, r.ID, 0, 1000)
		if err != nil || more {
			t.Fatalf("MessagesAfter(%d) more %v, err %v", r.ID, more, err)
		}
		n := int64(writers * each / 2)
		if diff := cmp.Diff(seqRange(1, n), seqs(msgs)); diff != "" {
			t.Errorf("room %d seqs mismatch (-want +got):\n%s", r.ID, diff)
		}
		if got, err := s.Room(ctx, r.ID); err != nil || got.LastSeq != n {
			t.Errorf("Room(%d).LastSeq = %d, %v, want %d", r.ID, got.LastSeq, err, n)
		}
	}
}

func TestAppendMessageDupAndMembership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	r := createRoom(t, s, "Team", store.VisibilityPrivate, alice.ID)
	other := createRoom(t, s, "Other", store.VisibilityPublic, alice.ID)
	if _, err := s.AddMember(ctx, r.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	orig := appendMsg(t, s, r.ID, alice.ID, "first", "c1")
	bobs := appendMsg(t, s, r.ID, bob.ID, "bob's", "b1")
	if _, err := s.RemoveMember(ctx, r.ID, bob.ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		room, user     int64
		text, clientID string
		wantDup        bool
		wantMsg        *store.Message // the original, for a dup
		wantSeq        int64          // for a new message
		wantErr        error
	}{
		{"retry returns the original", r.ID, alice.ID, "changed", "c1", true, &orig, 0, nil},
		{"same id, other sender", r.ID, carol.ID, "x", "c1", false, nil, 0, store.ErrNotMember},
		{"same id, other room", other.ID, alice.ID, "x", "c1", false, nil, 1, nil},
		{"no id twice is two messages", r.ID, alice.ID, "x", "", false, nil, 3, nil},
		{"no id twice is two messages (2)", r.ID, alice.ID, "x", "", false, nil, 4, nil},
		{"non-member", r.ID, carol.ID, "x", "c9", false, nil, 0, store.ErrNotMember},
		{"retry after leaving still answered", r.ID, bob.ID, "again", "b1", true, &bobs, 0, nil},
		{"new message after leaving refused", r.ID, bob.ID, "again", "b2", false, nil, 0, store.ErrNotMember},
		{"missing room", 9999, alice.ID, "x", "", false, nil, 0, store.ErrNotMember},
	}
	for _, tc := range tests {
		m, dup, err := s.AppendMessage(ctx, tc.room, tc.user, tc.text, tc.clientID)
		if !errors.Is(err, tc.wantErr) || dup != tc.wantDup {
			t.Errorf("%s: AppendMessage = dup %v, err %v, want dup %v, err %v", tc.name, dup, err, tc.wantDup, tc.wantErr)
			continue
		}
		if tc.wantMsg != nil {
			if diff := cmp.Diff(*tc.wantMsg, m); diff != "" {
				t.Errorf("%s: mismatch (-want +got):\n%s", tc.name, diff)
			}
		} else if err == nil && m.Seq != tc.wantSeq {
			t.Errorf("%s: seq %d, want %d", tc.name, m.Seq, tc.wantSeq)
		}
	}
	if got, err := s.Room(ctx, r.ID); err != nil || got.LastSeq != 4 {
		t.Errorf("Room(Team).LastSeq = %d, %v, want 4 (refusals and retries take no seq)", got.LastSeq, err)
	}
}

func TestAppendMessagesMixedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob")
	alice, bob := us[0], us[1]
	a := createRoom(t, s, "A", store.VisibilityPrivate, alice.ID)
	b := createRoom(t, s, "B", store.VisibilityPublic, bob.ID)
	earlier := appendMsg(t, s, a.ID, alice.ID, "earlier", "e1")

	res, err := s.AppendMessages(ctx, []store.NewMessage{
		{RoomID: a.ID, UserID: alice.ID, Text: "one", ClientMsgID: "n1"},
		{RoomID: a.ID, UserID: bob.ID, Text: "not a member", ClientMsgID: "x"},
		{RoomID: a.ID, UserID: alice.ID, Text: "retry", ClientMsgID: "e1"},
		{RoomID: b.ID, UserID: bob.ID, Text: "other room"},
		{RoomID: a.ID, UserID: alice.ID, Text: "retry within batch", ClientMsgID: "n1"},
		{RoomID: a.ID, UserID: alice.ID, Text: "two"},
	})
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	type outcome struct {
		Room, Seq int64
		Text      string
		Dup       bool
		NotMember bool
	}
	var got []outcome
	for _, r := range res {
		got = append(got, outcome{r.RoomID, r.Seq, r.Text, r.Dup, errors.Is(r.Err, store.ErrNotMember)})
	}
	want := []outcome{
		{a.ID, 2, "one", false, false},
		{0, 0, "", false, true},
		{a.ID, 1, "earlier", true, false},
		{b.ID, 1, "other room", false, false},
		{a.ID, 2, "one", true, false},
		{a.ID, 3, "two", false, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AppendMessages outcomes mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(earlier, res[2].Message); diff != "" {
		t.Errorf("retry mismatch (-want +got):\n%s", diff)
	}
	stored, _, err := s.MessagesAfter(ctx, a.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Message{earlier, res[0].Message, res[5].Message}, stored); diff != "" {
		t.Errorf("room A history mismatch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		room store.Room
		want int64
	}{{a, 3}, {b, 1}} {
		if r, err := s.Room(ctx, tc.room.ID); err != nil || r.LastSeq != tc.want {
			t.Errorf("Room(%s).LastSeq = %d, %v, want %d", tc.room.Name, r.LastSeq, err, tc.want)
		}
	}
	if res, err := s.AppendMessages(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("AppendMessages(nil) = %v, %v, want nothing", res, err)
	}
}

func TestAppendMessagesDatabaseErrorStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice")
	r := createRoom(t, s, "A", store.VisibilityPublic, us[0].ID)
	// A test-only trigger stands in for a failing disk on the batch's last message.
	if err := s.ExecForTest(ctx, `CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.text = 'boom'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	_, err := s.AppendMessages(ctx, []store.NewMessage{
		{RoomID: r.ID, UserID: us[0].ID, Text: "fine"},
		{RoomID: r.ID, UserID: us[0].ID, Text: "boom"},
	})
	if err == nil {
		t.Fatal("AppendMessages with a failing insert succeeded")
	}
	msgs, _, err := s.MessagesAfter(ctx, r.ID, 0, 10)
	if err != nil || len(msgs) != 0 {
		t.Errorf("after a failed batch MessagesAfter = %+v, %v, want none", msgs, err)
	}
	if got, err := s.Room(ctx, r.ID); err != nil || got.LastSeq != 0 {
		t.Errorf("after a failed batch LastSeq = %d, %v, want 0", got.LastSeq, err)
	}
	if m := appendMsg(t, s, r.ID, us[0].ID, "next", ""); m.Seq != 1 {
		t.Errorf("next message seq %d, want 1", m.Seq)
	}
}

func TestMessagesPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice")
	small := createRoom(t, s, "Small", store.VisibilityPublic, us[0].ID)
	big := createRoom(t, s, "Big", store.VisibilityPublic, us[0].ID)
	empty := createRoom(t, s, "Empty", store.VisibilityPublic, us[0].ID)
	fill := func(roomID int64, n int) {
		batch := make([]store.NewMessage, n)
		for i := range batch {
			batch[i] = store.NewMessage{RoomID: roomID, UserID: us[0].ID, Text: fmt.Sprint(i + 1)}
		}
		if _, err := s.AppendMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	fill(small.ID, 25)
	fill(big.ID, 1005)

	before := []struct {
		room, before int64
		limit        int
		want         []int64
		more         bool
	}{
		{small.ID, 0, 10, seqRange(25, 16), true},
		{small.ID, -1, 10, seqRange(25, 16), true},
		{small.ID, 16, 10, seqRange(15, 6), true},
		{small.ID, 6, 10, seqRange(5, 1), false},
		{small.ID, 6, 5, seqRange(5, 1), false}, // exactly the rest
		{small.ID, 7, 5, seqRange(6, 2), true},
		{small.ID, 1, 10, []int64{}, false},
		{small.ID, 100, 3, seqRange(25, 23), true}, // past the end
		{small.ID, 0, 0, []int64{25}, true},        // limit clamped up to 1
		{big.ID, 0, 1000, seqRange(1005, 806), true},
		{empty.ID, 0, 10, []int64{}, false},
	}
	for _, tc := range before {
		msgs, more, err := s.MessagesBefore(ctx, tc.room, tc.before, tc.limit)
		if err != nil {
			t.Fatalf("MessagesBefore(%d, %d, %d): %v", tc.room, tc.before, tc.limit, err)
		}
		if diff := cmp.Diff(tc.want, seqs(msgs)); diff != "" || more != tc.more {
			t.Errorf("MessagesBefore(%d, %d, %d) more = %v, want %v; seqs (-want +got):\n%s",
				tc.room, tc.before, tc.limit, more, tc.more, diff)
		}
	}
	after := []struct {
		room, after int64
		limit       int
		want        []int64
		more        bool
	}{
		{small.ID, 0, 10, seqRange(1, 10), true},
		{small.ID, -5, 3, seqRange(1, 3), true},
		{small.ID, 10, 10, seqRange(11, 20), true},
		{small.ID, 20, 5, seqRange(21, 25), false}, // exactly the rest
		{small.ID, 20, 10, seqRange(21, 25), false},
		{small.ID, 25, 10, []int64{}, false},
		{small.ID, 3, -1, []int64{4}, true}, // limit clamped up to 1
		{big.ID, 0, 5000, seqRange(1, 1000), true},
		{big.ID, 5, 5000, seqRange(6, 1005), false},
		{empty.ID, 0, 10, []int64{}, false},
	}
	for _, tc := range after {
		msgs, more, err := s.MessagesAfter(ctx, tc.room, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("MessagesAfter(%d, %d, %d): %v", tc.room, tc.after, tc.limit, err)
		}
		if diff := cmp.Diff(tc.want, seqs(msgs)); diff != "" || more != tc.more {
			t.Errorf("MessagesAfter(%d, %d, %d) more = %v, want %v; seqs (-want +got):\n%s",
				tc.room, tc.after, tc.limit, more, tc.more, diff)
		}
	}
}

func TestMessagesSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mesh.db")
	s, err := store.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	us := addUsers(t, s, "alice", "bob")
	r := createRoom(t, s, "General", store.VisibilityPublic, us[0].ID)
	dm, _, err := s.DirectRoom(ctx, us[0].ID, us[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Message
	for i := range 5 {
		want = append(want, appendMsg(t, s, r.ID, us[0].ID, fmt.Sprint("msg ", i), fmt.Sprint("c", i)))
	}
	appendMsg(t, s, dm.ID, us[1].ID, "psst", "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = store.Open(ctx, p)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, _, err := s.MessagesAfter(ctx, r.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages after reopen mismatch (-want +got):\n%s", diff)
	}
	if m, dup, err := s.AppendMessage(ctx, r.ID, us[0].ID, "retry", "c4"); err != nil || !dup || m != want[4] {
		t.Errorf("retry after reopen = %+v, dup %v, %v, want the original", m, dup, err)
	}
	if m := appendMsg(t, s, r.ID, us[0].ID, "next", ""); m.Seq != 6 {
		t.Errorf("next seq after reopen = %d, want 6", m.Seq)
	}
	if again, created, err := s.DirectRoom(ctx, us[1].ID, us[0].ID); err != nil || created || again.ID != dm.ID || again.LastSeq != 1 {
		t.Errorf("DirectRoom after reopen = %+v, created %v, %v; want room %d with last seq 1", again, created, err, dm.ID)
	}
}
