//go:build unix

package terminal

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// rawReader returns r's raw descriptor access when r is a file in
// non-blocking mode (the agent's PTY master is), else nil.
func rawReader(r io.Reader) syscall.RawConn {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	nonblocking := false
	if err := rc.Control(func(fd uintptr) {
		fl, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = e == 0 && fl&syscall.O_NONBLOCK != 0
	}); err != nil || !nonblocking {
		return nil
	}
	return rc
}

// pumpRaw is Pump for a non-blocking descriptor: one goroutine reads
// everything the PTY has ready (up to coalesceMax), waits in Go's poller
// only when there is nothing, and sends at once. It saves the hand-off
// between a reading goroutine and the pump on every keystroke's echo.
func (h *Host) pumpRaw(rc syscall.RawConn, local io.Writer) error {
	buf := make([]byte, coalesceMax)
	var localErr error
	for {
		n := 0
		var readErr error
		err := rc.Read(func(fd uintptr) bool {
			for n < len(buf) {
				m, e := syscall.Read(int(fd), buf[n:])
				switch {
				case m > 0:
					n += m
				case e == syscall.EINTR:
				case e == syscall.EAGAIN:
					return n > 0 // wait in the poller only while nothing was read
				case e == nil:
					readErr = io.EOF
					return true
				default:
					readErr = e
					return true
				}
			}
			return true
		})
		if n > 0 {
			data := append([]byte(nil), buf[:n]...) // shared by every viewer's queue, so never reused
			if local != nil && localErr == nil {
				if _, err := local.Write(data); err != nil {
					localErr = err
				}
			}
			h.output(data)
		}
		if readErr == nil {
			readErr = err
		}
		switch {
		case readErr == nil:
			continue
		case localErr != nil:
			return fmt.Errorf("write local terminal: %w", localErr)
		case errors.Is(readErr, io.EOF), errors.Is(readErr, syscall.EIO):
			return nil
		default:
			return fmt.Errorf("read pty: %w", readErr)
		}
	}
}
