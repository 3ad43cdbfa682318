package transfer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// recordAttr is the extended attribute a ".part" file keeps its resume
// record in. An attribute rather than a file beside it: no name it could
// take can clash with a name a manifest may use (a sidecar inside
// TREE.part/ could), it goes wherever the .part goes (the agent's sweeper
// removes both at once), and it is dropped before the file lands.
const recordAttr = "user.mesh.resume"

// fileControl runs fn on f's descriptor without switching f to blocking
// mode, as f.Fd() would.
func fileControl(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func putRecord(f *os.File, r resumeRecord) error {
	b := r.encode()
	return fileControl(f, func(fd int) error { return unix.Fsetxattr(fd, recordAttr, b[:], 0) })
}

func getRecord(f *os.File) (resumeRecord, bool) {
	var b [recordLen + 1]byte
	var n int
	err := fileControl(f, func(fd int) (err error) {
		n, err = unix.Fgetxattr(fd, recordAttr, b[:])
		return err
	})
	if err != nil {
		return resumeRecord{}, false
	}
	return decodeRecord(b[:n])
}

func dropRecord(f *os.File) error {
	err := fileControl(f, func(fd int) error { return unix.Fremovexattr(fd, recordAttr) })
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	return err
}
