package transfer

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestHashAfterTheData: the manifest carries no hash (nothing is read
// before the first byte is sent), and both sides report the standard
// BLAKE3 of the file, as b3sum prints it, from the end frame.
func TestHashAfterTheData(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	data := randBytes(21, 3<<20+17)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	c, wait := startSender(t, []string{filepath.Join(src, "f")})
	var raw rawMsg
	if err := ReadMsg(c, &raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "blake3") {
		t.Errorf("the manifest %s names a hash", raw)
	}
	var m manifestMsg
	if err := json.Unmarshal(raw, &m); err != nil || m.Version != Version {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	c.Close()
	wait()

	out := transfer(t, t.TempDir(), []string{filepath.Join(src, "f")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	for side, res := range map[string]Result{"sender": out.send, "receiver": out.recv} {
		if got := res.Files[0].BLAKE3; got != b3(data) {
			t.Errorf("%s: BLAKE3 %s, want %s", side, got, b3(data))
		}
	}
}

// TestFileChangedWhileSent: a file that grows while it is sent does not
// land, and both sides say why.
func TestFileChangedWhileSent(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	p := filepath.Join(src, "f")
	writeFile(t, p, randBytes(22, 8<<20), 0o644)
	var once sync.Once
	o := transferOpts{}
	o.send.Progress = func(pr Progress) {
		if pr.FileBytes > 0 {
			once.Do(func() {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err == nil {
					_, err = f.Write([]byte("more"))
					f.Close()
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	out := transfer(t, inbox, []string{p}, o)
	if !errors.Is(out.sendErr, ErrMismatch) || !errors.Is(out.recvErr, ErrMismatch) {
		t.Fatalf("Send = %v, Receive = %v, want both to wrap ErrMismatch", out.sendErr, out.recvErr)
	}
	if r := out.send.Files[0].Reason; !strings.Contains(r, "changed") {
		t.Errorf("sender's reason %q, want it to say the file changed", r)
	}
	if _, err := os.Lstat(filepath.Join(inbox, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("f: %v, want it not to land", err)
	}
}
