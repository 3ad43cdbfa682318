package server

import (
	"context"
	"errors"
	"fmt"

	"mesh/store"
)

// AddUser creates an account from the admin CLI, whatever the registration
// policy, with the same name and password rules as the API.
func AddUser(ctx context.Context, st *store.Store, cfg AuthConfig, username, password string, admin bool) (store.User, error) {
	name, err := checkUsername(username)
	if err != nil {
		return store.User{}, err
	}
	hash, err := hashPassword(password, cfg.BcryptCost)
	if err != nil {
		return store.User{}, err
	}
	u, err := st.AddUser(ctx, name, hash, admin)
	if errors.Is(err, store.ErrConflict) {
		return store.User{}, fmt.Errorf("username %q is taken; pick another or use 'mesh user passwd'", name)
	}
	return u, err
}

// SetPassword replaces a user's password from the admin CLI.
func SetPassword(ctx context.Context, st *store.Store, cfg AuthConfig, username, password string) error {
	hash, err := hashPassword(password, cfg.BcryptCost)
	if err != nil {
		return err
	}
	if err := st.SetPassword(ctx, username, hash); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q; 'mesh user list' shows who exists", username)
	} else if err != nil {
		return err
	}
	return nil
}

// CreateInvite makes a single-use invite code valid for cfg.InviteTTL.
func CreateInvite(ctx context.Context, st *store.Store, cfg AuthConfig) (string, error) {
	return st.CreateInvite(ctx, 0, cfg.InviteTTL)
}
