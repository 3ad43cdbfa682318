//go:build !linux

package transfer

import "os"

// Direct I/O is used on Linux only; elsewhere writes go through the page cache.
const directFlag = 0

func directOK([]byte, int64) bool { return false }
func isDirectRefused(error) bool  { return false }
func stopDirect(*os.File) error   { return nil }
