package transfer

import (
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ProcessUmask is this process's umask: the permission bits a received file
// or directory loses, as would any file the receiving process creates. It
// is read once. On Linux it comes from /proc/self/status; elsewhere it is
// read by setting and restoring it, which for that instant narrows the
// umask of the whole process to 077, so call it before starting goroutines
// that create files (the agent does so when it starts).
func ProcessUmask() fs.FileMode { return processUmask() }

// processUmask is computed once: the umask is the process's, not a transfer's.
var processUmask = sync.OnceValue(func() fs.FileMode {
	if m, ok := procUmask(); ok {
		return m
	}
	old := syscall.Umask(0o077) // the most restrictive while it is set
	syscall.Umask(old)
	return fs.FileMode(old) & fs.ModePerm
})

// procUmask reads the "Umask:" line of /proc/self/status (Linux 4.7+).
func procUmask() (fs.FileMode, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return fs.FileMode(m) & fs.ModePerm, err == nil
		}
	}
	return 0, false
}

// landMode is the mode a received entry gets: the sender's permission bits
// less the receiver's umask, so nothing becomes executable, or readable by
// others, that the sender or the receiver's umask did not allow.
func (r *Receiver) landMode(sent uint32) fs.FileMode {
	umask := processUmask
	if r.Umask != nil {
		umask = r.Umask
	}
	return fs.FileMode(sent) & fs.ModePerm &^ umask()
}
