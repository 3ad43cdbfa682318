//go:build !unix

package terminal

import (
	"io"
	"syscall"
)

func rawReader(io.Reader) syscall.RawConn { return nil }

func (h *Host) pumpRaw(syscall.RawConn, io.Writer) error { panic("unreachable: rawReader is nil here") }
