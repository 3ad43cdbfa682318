package transfer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes everything written to the file system holding dir durable
// with one syncfs(2): how a tree's files and directories are flushed
// before it is renamed into place, instead of one fsync per file.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close() // read-only
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// haveSyncFS is whether syncFS works here.
const haveSyncFS = true
