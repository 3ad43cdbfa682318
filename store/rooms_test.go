package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/store"
)

// addUsers creates one plain user per name and returns them in order.
func addUsers(t testing.TB, s *store.Store, names ...string) []store.User {
	t.Helper()
	us := make([]store.User, len(names))
	for i, n := range names {
		u, err := s.AddUser(context.Background(), n, "h", false)
		if err != nil {
			t.Fatalf("AddUser(%q): %v", n, err)
		}
		us[i] = u
	}
	return us
}

func createRoom(t testing.TB, s *store.Store, name, visibility string, by int64) store.Room {
	t.Helper()
	r, err := s.CreateRoom(context.Background(), name, visibility, by)
	if err != nil {
		t.Fatalf("CreateRoom(%q): %v", name, err)
	}
	return r
}

// viewSummary reduces a listing to what the tests compare.
type viewSummary struct {
	Name   string
	Member bool
	Peer   string
}

func visible(t *testing.T, s *store.Store, userID int64) []viewSummary {
	t.Helper()
	vs, err := s.VisibleRooms(context.Background(), userID)
	if err != nil {
		t.Fatalf("VisibleRooms(%d): %v", userID, err)
	}
	var out []viewSummary
	for _, v := range vs {
		out = append(out, viewSummary{v.Name, v.Member, v.Peer})
	}
	return out
}

func TestCreateRoomAndVisibility(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]

	general := createRoom(t, s, "General", store.VisibilityPublic, alice.ID)
	createRoom(t, s, "Secret", store.VisibilityPrivate, alice.ID)
	if _, _, err := s.DirectRoom(ctx, bob.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Room(ctx, general.ID)
	if err != nil {
		t.Fatalf("Room(%d): %v", general.ID, err)
	}
	want := store.Room{ID: general.ID, Name: "General", Visibility: store.VisibilityPublic, Kind: store.KindRoom,
		CreatedBy: alice.ID, CreatedAt: general.CreatedAt}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Room(%d) mismatch (-want +got):\n%s", general.ID, diff)
	}
	if _, err := s.Room(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Room(9999) err = %v, want ErrNotFound", err)
	}

	tests := []struct {
		name string
		user int64
		want []viewSummary
	}{
		{"creator sees both and her direct room", alice.ID, []viewSummary{
			{"General", true, ""}, {"Secret", true, ""}, {"alice,bob", true, "bob"}}},
		{"peer sees public and direct room", bob.ID, []viewSummary{
			{"General", false, ""}, {"alice,bob", true, "alice"}}},
		{"outsider sees only public", carol.ID, []viewSummary{{"General", false, ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, visible(t, s, tc.user)); diff != "" {
				t.Errorf("VisibleRooms(%d) mismatch (-want +got):\n%s", tc.user, diff)
			}
		})
	}
}

func TestCreateRoomErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob")
	createRoom(t, s, "General", store.VisibilityPublic, us[0].ID)
	if _, _, err := s.DirectRoom(ctx, us[0].ID, us[1].ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, room, visibility string
		by                     int64
		want                   error // nil: created; errAny: any error
	}{
		{"same name", "General", store.VisibilityPublic, us[1].ID, store.ErrConflict},
		{"name differs in case only", "gENERAL", store.VisibilityPrivate, us[1].ID, store.ErrConflict},
		{"direct room names do not count", "alice,bob", store.VisibilityPublic, us[0].ID, nil},
		{"unknown creator", "Lonely", store.VisibilityPublic, 9999, store.ErrNotFound},
		{"bad visibility", "Odd", "secret", us[0].ID, errAny},
		{"new name", "Random", store.VisibilityPublic, us[1].ID, nil},
	}
	for _, tc := range tests {
		_, err := s.CreateRoom(ctx, tc.room, tc.visibility, tc.by)
		if !matches(err, tc.want) {
			t.Errorf("%s: CreateRoom(%q, %q) err = %v, want %v", tc.name, tc.room, tc.visibility, err, tc.want)
		}
	}
}

var errAny = errors.New("any error")

func matches(err, want error) bool {
	if want == errAny {
		return err != nil
	}
	return errors.Is(err, want)
}

func TestMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "carol", "alice", "bob")
	carol, alice, bob := us[0], us[1], us[2]
	r := createRoom(t, s, "Team", store.VisibilityPrivate, carol.ID)
	other := createRoom(t, s, "Other", store.VisibilityPublic, bob.ID)

	adds := []struct {
		name       string
		room, user int64
		added      bool
		want       error
	}{
		{"new member", r.ID, alice.ID, true, nil},
		{"again", r.ID, alice.ID, false, nil},
		{"creator is already one", r.ID, carol.ID, false, nil},
		{"second new member", r.ID, bob.ID, true, nil},
		{"missing room", 9999, alice.ID, false, store.ErrNotFound},
		{"missing user", r.ID, 9999, false, store.ErrNotFound},
	}
	for _, tc := range adds {
		added, err := s.AddMember(ctx, tc.room, tc.user)
		if added != tc.added || !errors.Is(err, tc.want) {
			t.Errorf("%s: AddMember(%d, %d) = %v, %v, want %v, %v", tc.name, tc.room, tc.user, added, err, tc.added, tc.want)
		}
	}

	ms, err := s.Members(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Username)
	}
	if diff := cmp.Diff([]string{"alice", "bob", "carol"}, names); diff != "" {
		t.Errorf("Members(%d) names mismatch (-want +got):\n%s", r.ID, diff)
	}
	checkIDs(t, "MemberIDs", func() ([]int64, error) { return s.MemberIDs(ctx, r.ID) }, []int64{carol.ID, alice.ID, bob.ID})
	checkIDs(t, "UserRoomIDs(bob)", func() ([]int64, error) { return s.UserRoomIDs(ctx, bob.ID) }, []int64{r.ID, other.ID})

	removed, err := s.RemoveMember(ctx, r.ID, alice.ID)
	if err != nil || !removed {
		t.Errorf("RemoveMember(alice) = %v, %v, want true, nil", removed, err)
	}
	if removed, err = s.RemoveMember(ctx, r.ID, alice.ID); err != nil || removed {
		t.Errorf("RemoveMember(alice) again = %v, %v, want false, nil", removed, err)
	}
	for _, tc := range []struct {
		user int64
		want bool
	}{{alice.ID, false}, {bob.ID, true}, {carol.ID, true}, {9999, false}} {
		if got, err := s.IsMember(ctx, r.ID, tc.user); err != nil || got != tc.want {
			t.Errorf("IsMember(%d, %d) = %v, %v, want %v", r.ID, tc.user, got, err, tc.want)
		}
	}
	checkIDs(t, "MemberIDs after remove", func() ([]int64, error) { return s.MemberIDs(ctx, r.ID) }, []int64{carol.ID, bob.ID})
	checkIDs(t, "UserRoomIDs(alice)", func() ([]int64, error) { return s.UserRoomIDs(ctx, alice.ID) }, nil)
}

func checkIDs(t *testing.T, what string, f func() ([]int64, error), want []int64) {
	t.Helper()
	got, err := f()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, diff)
	}
}

func TestDirectRoom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "bob", "alice")
	bob, alice := us[0], us[1]

	first, created, err := s.DirectRoom(ctx, bob.ID, alice.ID)
	if err != nil || !created {
		t.Fatalf("DirectRoom(bob, alice) = %+v, %v, %v, want a new room", first, created, err)
	}
	want := store.Room{ID: first.ID, Name: "alice,bob", Visibility: store.VisibilityPrivate, Kind: store.KindDirect,
		CreatedBy: bob.ID, CreatedAt: first.CreatedAt}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("DirectRoom mismatch (-want +got):\n%s", diff)
	}
	for _, pair := range [][2]int64{{bob.ID, alice.ID}, {alice.ID, bob.ID}} {
		again, created, err := s.DirectRoom(ctx, pair[0], pair[1])
		if err != nil || created || again != first {
			t.Errorf("DirectRoom(%d, %d) = %+v, %v, %v, want the first room, not created", pair[0], pair[1], again, created, err)
		}
	}
	checkIDs(t, "MemberIDs", func() ([]int64, error) { return s.MemberIDs(ctx, first.ID) }, []int64{bob.ID, alice.ID})

	errs := []struct {
		name string
		a, b int64
		want error
	}{
		{"with oneself", alice.ID, alice.ID, store.ErrConflict},
		{"missing user", alice.ID, 9999, store.ErrNotFound},
	}
	for _, tc := range errs {
		if _, _, err := s.DirectRoom(ctx, tc.a, tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: DirectRoom(%d, %d) err = %v, want %v", tc.name, tc.a, tc.b, err, tc.want)
		}
	}
}

func TestDirectRoomConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	us := addUsers(t, s, "alice", "bob")
	const n = 8
	rooms := make([]store.Room, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		a, b := us[0].ID, us[1].ID
		if i%2 == 1 {
			a, b = b, a
		}
		wg.Go(func() { rooms[i], created[i], errs[i] = s.DirectRoom(ctx, a, b) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("DirectRoom #%d: %v", i, errs[i])
		}
		if rooms[i].ID != rooms[0].ID {
			t.Errorf("DirectRoom #%d = room %d, want %d", i, rooms[i].ID, rooms[0].ID)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d calls created the room, want 1", creators)
	}
	checkIDs(t, "MemberIDs", func() ([]int64, error) { return s.MemberIDs(ctx, rooms[0].ID) }, []int64{us[0].ID, us[1].ID})
	vs, err := s.VisibleRooms(ctx, us[0].ID)
	if err != nil || len(vs) != 1 {
		t.Errorf("VisibleRooms(alice) = %+v, %v, want one direct room", vs, err)
	}
}
