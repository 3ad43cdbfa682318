package transfer

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing bytes off…off+n of f to
// disk without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE),
// so the fsync after a large file's last chunk has little left to do and
// the disk works while the network does. It is only a hint.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { // a hint: failure changes nothing
		_ = syscall.SyncFileRange(int(fd), off, n, 2 /* SYNC_FILE_RANGE_WRITE */)
	})
}
