package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Name limits, in bytes.
const (
	MaxComponent = 255  // one path component
	MaxPath      = 4096 // a whole manifest path
	maxCopies    = 9999 // "name (9999).ext" is the last name tried
	partSuffix   = ".part"
)

// SafeRelPath cleans a manifest path (slash-separated, relative): it drops
// "." components and repeated or trailing slashes. It refuses, with an error
// wrapping [ErrUnsafeName], an empty or absolute path, any ".." component
// (even one that would clean away), a NUL or other control character, a
// backslash, a component over [MaxComponent] bytes, a result over [MaxPath]
// bytes, and a path that is "." alone. A path it accepts never escapes the
// directory it is joined to.
func SafeRelPath(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty name", ErrUnsafeName)
	case len(name) > 4*MaxPath:
		return "", fmt.Errorf("%w: name of %d bytes", ErrUnsafeName, len(name))
	case name[0] == '/':
		return "", fmt.Errorf("%w: absolute path %q", ErrUnsafeName, name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character %#x in %q", ErrUnsafeName, c, name)
		case c == '\\':
			return "", fmt.Errorf("%w: backslash in %q", ErrUnsafeName, name)
		}
	}
	var b strings.Builder
	for part := range strings.SplitSeq(name, "/") {
		switch {
		case part == "" || part == ".":
			continue
		case part == "..":
			return "", fmt.Errorf("%w: %q has a .. component", ErrUnsafeName, name)
		case len(part) > MaxComponent:
			return "", fmt.Errorf("%w: a component of %d bytes, the limit is %d", ErrUnsafeName, len(part), MaxComponent)
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(part)
	}
	switch clean := b.String(); {
	case clean == "":
		return "", fmt.Errorf("%w: %q names no file", ErrUnsafeName, name)
	case len(clean) > MaxPath:
		return "", fmt.Errorf("%w: path of %d bytes, the limit is %d", ErrUnsafeName, len(clean), MaxPath)
	default:
		return clean, nil
	}
}

// copyName is the n-th name tried for a top-level name: the name itself, then
// "name (1).ext", "name (2).ext" … for a file and "tree (1)" … for a
// directory. A dot file's leading dot is not an extension. The stem is cut
// (on a rune boundary) to keep the result within MaxComponent.
func copyName(name string, n int, dir bool) string {
	if n == 0 {
		return name
	}
	stem, ext := name, ""
	if !dir {
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			stem, ext = name[:i], name[i:]
		}
	}
	suffix := " (" + strconv.Itoa(n) + ")" + ext
	for len(stem)+len(suffix)+len(partSuffix) > MaxComponent && stem != "" {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	if stem == "" && len(suffix)+len(partSuffix) > MaxComponent {
		suffix = " (" + strconv.Itoa(n) + ")"
	}
	return stem + suffix
}

// errNotDir is returned by walkDirs when a component exists but is not a
// plain directory (a file, or a symlink, which is never followed).
var errNotDir = errors.New("exists and is not a directory")

// walkDirs checks that every component of rel (slash-separated) below root
// is a real directory, with os.Lstat so that no symlink is followed; with
// create it makes missing ones with os.Mkdir (mode 0o700 until the end of
// the transfer), without it a missing one is an error wrapping
// fs.ErrNotExist. root itself is trusted.
func walkDirs(root, rel string, create bool) error {
	if rel == "" {
		return nil
	}
	p := root
	for part := range strings.SplitSeq(rel, "/") {
		p = filepath.Join(p, part)
		switch kind, err := lstatKind(p); {
		case err != nil:
			return err
		case kind == kindDir:
			continue
		case kind != "":
			return fmt.Errorf("%s: %w", p, errNotDir)
		case !create:
			return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// parentOf is the slash-separated directory of a relative path, "" for a
// single component.
func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// lstatKind reports what p is without following a symlink: "" if it does
// not exist, kindFile for a regular file, kindDir for a directory, "other"
// for anything else.
func lstatKind(p string) (string, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	case fi.Mode().IsRegular():
		return kindFile, nil
	case fi.IsDir():
		return kindDir, nil
	}
	return "other", nil
}
