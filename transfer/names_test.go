package transfer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeRelPath(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 255)
	deep := strings.Repeat("d/", 2047) + "ff" // 4096 bytes
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"a.txt", "a.txt"},
		{"tree/sub/f", "tree/sub/f"},
		{"./tree//sub/./f/", "tree/sub/f"},
		{"name (1).ext", "name (1).ext"},
		{"ünïcødé/файл", "ünïcødé/файл"},
		{"...", "..."},
		{"..a/b..", "..a/b.."},
		{long, long},
		{"", ""},
		{".", ""},
		{"./", ""},
		{"//", ""},
		{"/abs", ""},
		{"..", ""},
		{"../../etc/passwd", ""},
		{"a/../../b", ""},
		{"a/../b", ""},
		{"a/..", ""},
		{"x\x00y", ""},
		{"tab\there", ""},
		{"del\x7f", ""},
		{"a\\b", ""},
		{"..\\..\\windows", ""},
		{long + "a", ""},
		{deep, deep},
		{deep + "f", ""},
		{"./" + deep, deep},
	}
	for _, tt := range tests {
		got, err := SafeRelPath(tt.in)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("SafeRelPath(%.40q) = %.40q, %v, want %.40q", tt.in, got, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrUnsafeName) {
			t.Errorf("SafeRelPath(%.40q) error %v does not wrap ErrUnsafeName", tt.in, err)
		}
	}
}

func FuzzSafeRelPath(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "/abs", "a/../../b", "x\x00y", "a\\b", ".", "./a//b/", "ü/..."} {
		f.Add(s)
	}
	inbox := filepath.Join(os.TempDir(), "inbox")
	f.Fuzz(func(t *testing.T, name string) {
		p, err := SafeRelPath(name)
		if err != nil {
			if p != "" || !errors.Is(err, ErrUnsafeName) {
				t.Fatalf("SafeRelPath(%q) = %q, %v", name, p, err)
			}
			return
		}
		switch {
		case p == "" || p == "." || strings.HasPrefix(p, "/") || filepath.IsAbs(p):
			t.Fatalf("SafeRelPath(%q) = %q: empty or absolute", name, p)
		case strings.ContainsAny(p, "\x00\\"):
			t.Fatalf("SafeRelPath(%q) = %q: NUL or backslash", name, p)
		case len(p) > MaxPath:
			t.Fatalf("SafeRelPath(%q) = %d bytes", name, len(p))
		}
		for part := range strings.SplitSeq(p, "/") {
			if part == "" || part == "." || part == ".." || len(part) > MaxComponent {
				t.Fatalf("SafeRelPath(%q) = %q: bad component %q", name, p, part)
			}
		}
		if again, err := SafeRelPath(p); again != p || err != nil {
			t.Fatalf("SafeRelPath(%q) = %q, %v: not idempotent", p, again, err)
		}
		joined := filepath.Join(inbox, p)
		if rel, err := filepath.Rel(inbox, joined); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("Join(inbox, %q) = %q escapes the inbox", p, joined)
		}
	})
}

func TestCopyName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		dir  bool
		want string
	}{
		{"name.ext", 0, false, "name.ext"},
		{"name.ext", 1, false, "name (1).ext"},
		{"archive.tar.gz", 2, false, "archive.tar (2).gz"},
		{".bashrc", 1, false, ".bashrc (1)"},
		{"noext", 3, false, "noext (3)"},
		{"tree", 1, true, "tree (1)"},
		{"v1.2", 1, true, "v1.2 (1)"},
		{strings.Repeat("é", 125) + ".txt", 1, false, strings.Repeat("é", 121) + " (1).txt"},
	}
	for _, tt := range tests {
		if got := copyName(tt.name, tt.n, tt.dir); got != tt.want {
			t.Errorf("copyName(%q, %d, %v) = %q, want %q", tt.name, tt.n, tt.dir, got, tt.want)
		}
		if got := copyName(tt.name, tt.n, tt.dir); tt.n > 0 && len(got)+len(partSuffix) > MaxComponent {
			t.Errorf("copyName(%q, %d) is %d bytes, leaving no room for %q", tt.name, tt.n, len(got), partSuffix)
		}
	}
}

func TestWalkDirsNeverFollowsSymlinks(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "file"), nil, 0o644)
	tests := []struct {
		rel    string
		create bool
		want   error
	}{
		{"link/sub", true, errNotDir},
		{"file/sub", true, errNotDir},
		{"new/sub", false, os.ErrNotExist},
		{"new/sub", true, nil},
	}
	for _, tt := range tests {
		if err := walkDirs(root, tt.rel, tt.create); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("walkDirs(%q, %v) = %v, want %v", tt.rel, tt.create, err, tt.want)
		}
	}
	if es, _ := os.ReadDir(outside); len(es) != 0 {
		t.Errorf("%d entries appeared behind the symlink", len(es))
	}
}
