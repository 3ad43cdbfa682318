package protocol

import (
	"fmt"
	"unicode"
)

// CharError is a character a text field may not contain. It wraps
// [ErrMalformed], so it is refused like any other bad payload; a server
// answers it with [CodeInvalidText].
type CharError struct {
	Field string // the payload field, "text"
	Rune  rune
	Pos   int    // 1-based, in characters
	Hint  string // what to do instead
}

func (e *CharError) Error() string {
	return fmt.Sprintf("%v: %s contains %s at character %d; %s", ErrMalformed, e.Field, RuneLabel(e.Rune), e.Pos, e.Hint)
}

// Unwrap returns [ErrMalformed].
func (e *CharError) Unwrap() error { return ErrMalformed }

// IsBidiControl reports whether r is a bidirectional embedding, override or
// isolate (U+202A–U+202E, U+2066–U+2069): characters that reorder the text
// around them, so "invoice\u202Egnp.exe" shows as "invoiceexe.png". The
// marks U+200E, U+200F and U+061C are not among them: they only give a
// direction to neutral characters, which right-to-left writers need.
func IsBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// checkText refuses, in chat text, control characters other than newline
// and tab (a NUL or an escape sequence means something to terminals, not to
// readers) and bidi controls ([IsBidiControl]).
func checkText(field, s string) error {
	pos := 0
	for _, r := range s {
		pos++
		switch {
		case r == '\n' || r == '\t':
		case r == '\r':
			return &CharError{field, r, pos, "end lines with \\n alone"}
		case unicode.IsControl(r):
			return &CharError{field, r, pos, "remove it: text may contain no control characters but newline and tab"}
		case IsBidiControl(r):
			return &CharError{field, r, pos, "remove it: direction overrides, embeddings and isolates can disguise text (the marks U+200E and U+200F are fine)"}
		}
	}
	return nil
}

// runeName names the characters refusals name most often; others are
// described by their class.
func runeName(r rune) string {
	switch r {
	case 0x00:
		return "null"
	case 0x09:
		return "tab"
	case 0x0a:
		return "newline"
	case 0x0d:
		return "carriage return"
	case 0x1b:
		return "escape"
	case 0x7f:
		return "delete"
	case 0xad:
		return "soft hyphen"
	case 0x34f:
		return "combining grapheme joiner"
	case 0x61c:
		return "arabic letter mark"
	case 0x115f, 0x1160, 0x3164, 0xffa0:
		return "hangul filler"
	case 0x180e:
		return "mongolian vowel separator"
	case 0x200b:
		return "zero width space"
	case 0x200c:
		return "zero width non-joiner"
	case 0x200d:
		return "zero width joiner"
	case 0x200e:
		return "left-to-right mark"
	case 0x200f:
		return "right-to-left mark"
	case 0x2028:
		return "line separator"
	case 0x2029:
		return "paragraph separator"
	case 0x202a:
		return "left-to-right embedding"
	case 0x202b:
		return "right-to-left embedding"
	case 0x202c:
		return "pop directional formatting"
	case 0x202d:
		return "left-to-right override"
	case 0x202e:
		return "right-to-left override"
	case 0x2060:
		return "word joiner"
	case 0x2066:
		return "left-to-right isolate"
	case 0x2067:
		return "right-to-left isolate"
	case 0x2068:
		return "first strong isolate"
	case 0x2069:
		return "pop directional isolate"
	case 0xfeff:
		return "zero width no-break space"
	}
	return ""
}

// RuneLabel names r for an error message a person can act on, since the
// characters refused are mostly invisible: "U+202E (right-to-left
// override)", "U+0085 (control character)", or just "U+0078".
func RuneLabel(r rune) string {
	name := runeName(r)
	switch {
	case name != "":
	case unicode.IsControl(r):
		name = "control character"
	case unicode.Is(unicode.Cf, r):
		name = "invisible formatting character"
	default:
		return fmt.Sprintf("%U", r)
	}
	return fmt.Sprintf("%U (%s)", r, name)
}
