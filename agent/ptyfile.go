package agent

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// startPTY starts cmd in a new PTY of cols×rows and returns its master in
// non-blocking mode. creack/pty hands the master back in blocking mode (its
// ioctls go through Fd), which costs a thread hand-off on every read — about
// 20 µs of a keystroke's echo — and leaves a blocked Read deaf to Close. A
// non-blocking duplicate goes through Go's poller instead.
func startPTY(cmd *exec.Cmd, cols, rows int) (*os.File, error) {
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		return nil, err
	}
	defer ptmx.Close() // the duplicate keeps the PTY open
	fd, err := unix.Dup(int(ptmx.Fd()))
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		_ = cmd.Process.Kill() // unusable without its terminal
		_ = cmd.Wait()
		return nil, fmt.Errorf("PTY master: %w", err)
	}
	return os.NewFile(uintptr(fd), ptmx.Name()), nil
}

// setPTYSize resizes the PTY whose master is f without taking f out of
// non-blocking mode (pty.Setsize would).
func setPTYSize(f *os.File, cols, rows int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)})
	})
	if err != nil {
		return err
	}
	return ierr
}
