//go:build !linux

package transfer

import (
	"errors"
	"os"
)

// Resume records are kept in an extended attribute on Linux only;
// elsewhere a resumed .part is hashed before the plan is sent.

func putRecord(*os.File, resumeRecord) error { return errors.ErrUnsupported }

func getRecord(*os.File) (resumeRecord, bool) { return resumeRecord{}, false }

func dropRecord(*os.File) error { return nil }
