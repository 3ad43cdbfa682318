package server

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"mesh/protocol"
)

// maxRoomName is the longest room name, in characters after NFC.
const maxRoomName = 64

// checkName applies the rules of names people pick and others see (room
// names; usernames and device ids have their own ASCII-only rules) and
// returns the name trimmed and in NFC, the form to store and compare, so
// two spellings of one text ("é" and "e" + U+0301) are one name. what
// says whose name it is in errors: "room name". A name may not hold
// control characters (not even tab or newline), invisible formatting
// characters (Unicode Cf: bidi controls, zero-width characters, the
// marks U+200E/U+200F), line or paragraph separators, or the fillers
// that draw nothing: each lets one name pass for another.
func checkName(what, field, name string, maxRunes int) (string, error) {
	name = norm.NFC.String(strings.TrimSpace(name))
	if name == "" {
		return "", missing(field)
	}
	pos := 0
	for _, r := range name {
		pos++
		if invisibleInName(r) {
			return "", refuse(kindInvalid, codeInvalidName,
				"%s contains %s at character %d; remove it: names may not contain control, invisible or direction-changing characters",
				what, protocol.RuneLabel(r), pos)
		}
	}
	if n := utf8.RuneCountInString(name); n > maxRunes {
		return "", refuse(kindInvalid, codeInvalidName, "%s must be at most %d characters, got %d", what, maxRunes, n)
	}
	return name, nil
}

func invisibleInName(r rune) bool {
	switch r {
	case 0x115f, 0x1160, 0x3164, 0xffa0, // Hangul fillers: letters that draw nothing
		0x034f: // combining grapheme joiner
		return true
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}
