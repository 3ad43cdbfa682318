package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"mesh/protocol"
)

// TestChatTextCharacters checks chat.message.send refuses control
// characters (but newline and tab) and bidi embeddings, overrides and
// isolates, naming the character, while the marks and joiners real
// right-to-left and emoji text needs pass.
func TestChatTextCharacters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       rune
		at         int // 0: valid
	}{
		{"newline and tab", "line one\n\tline two", 0, 0},
		{"hebrew with RLM", "שלום\u200f 123", 0, 0},
		{"arabic with LRM and ALM", "مرحبا \u200eabc\u061c", 0, 0},
		{"emoji ZWJ sequence", "family \U0001F468\u200d\U0001F469\u200d\U0001F467", 0, 0},
		{"persian ZWNJ", "می\u200cخواهم", 0, 0},
		{"NUL", "a\x00b", 0x00, 2},
		{"carriage return", "one\r\ntwo", '\r', 4},
		{"escape", "\x1b[31mred", 0x1b, 1},
		{"delete", "x\x7f", 0x7f, 2},
		{"C1 next line", "a\u0085b", 0x85, 2},
		{"right-to-left override", "invoice\u202egnp.exe", 0x202e, 8},
		{"left-to-right embedding", "\u202aabc", 0x202a, 1},
		{"pop directional formatting", "abc\u202c", 0x202c, 4},
		{"right-to-left isolate", "é\u2067x", 0x2067, 2},
		{"pop directional isolate", "x\u2069", 0x2069, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := protocol.ChatSend{RoomID: 1, Text: tc.text}.Validate()
			if tc.at == 0 {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tc.text, err)
				}
				return
			}
			checkErr(t, err, protocol.ErrMalformed, "text contains")
			var ce *protocol.CharError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate(%q) = %v, want a *CharError", tc.text, err)
			}
			if ce.Field != "text" || ce.Rune != tc.want || ce.Pos != tc.at {
				t.Errorf("CharError = %+v, want field text, rune %U at %d", *ce, tc.want, tc.at)
			}
			if label := protocol.RuneLabel(tc.want); !strings.Contains(err.Error(), label) {
				t.Errorf("Validate(%q) = %q, want it to name %s", tc.text, err, label)
			}
		})
	}
}

func TestRuneLabel(t *testing.T) {
	t.Parallel()
	for r, want := range map[rune]string{
		0x202e: "U+202E (right-to-left override)",
		0x00:   "U+0000 (null)",
		0x200b: "U+200B (zero width space)",
		0x9f:   "U+009F (control character)",
		0x2063: "U+2063 (invisible formatting character)",
		'x':    "U+0078",
	} {
		if got := protocol.RuneLabel(r); got != want {
			t.Errorf("RuneLabel(%U) = %q, want %q", r, got, want)
		}
	}
}
