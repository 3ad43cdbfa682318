//go:build !linux

package transfer

import "errors"

// syncFS is Linux's alone; elsewhere each file is synced as it finishes.
func syncFS(string) error { return errors.ErrUnsupported }

// haveSyncFS is whether syncFS works here.
const haveSyncFS = false
