package gotify_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"mesh/server/notify/gotify"
)

func TestHint(t *testing.T) {
	t.Parallel()
	tests := []struct{ token, want string }{
		{"", ""},
		{"short", "set"},
		{"Abcdefg", "set"}, // 7: its last 4 would give most of it away
		{"Abcdefgh", "…efgh"},
		{"AvG3.pQ9-xZ_kLm", "…_kLm"},
		{"AäöüßÄÖÜ€", "…ÄÖÜ€"}, // characters, not bytes
	}
	for _, tt := range tests {
		if got := (gotify.Target{Token: tt.token}).Hint(); got != tt.want {
			t.Errorf("Target{Token: %q}.Hint() = %q, want %q", tt.token, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const token = "Avalid-token-9876"
	tests := []struct {
		name, url, token string
		wantErr          string // "" for valid
	}{
		{"http", "http://127.0.0.1:8080", token, ""},
		{"https with path and slash", "https://push.example/gotify/", token, ""},
		{"ftp", "ftp://push.example", token, "want http(s)"},
		{"no scheme", "push.example", token, "want http(s)"},
		{"no host", "https://", token, "no host"},
		{"opaque", "https:push.example", token, "no host"},
		{"token in query", "https://push.example/?token=" + token, token, "query"},
		{"fragment", "https://push.example/#x", token, "query or fragment"},
		{"unparsable", "https://push.example:port" + token, token, "gotify url"},
		{"password hidden", "ftp://user:" + token + "@push.example", token, "want http(s)"},
		{"empty token", "https://push.example", "", "token: empty"},
		{"token with newline", "https://push.example", token + "\n", "unprintable"},
		{"token with space", "https://push.example", "A b", "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := gotify.Target{URL: tt.url, Token: tt.token}
			err := target.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate(%q) = %v, want an error with %q (\"\": none)", tt.url, err, tt.wantErr)
			}
			checkNoToken(t, err, strings.TrimSpace(tt.token))
			if err == nil {
				return
			}
			// Send refuses the same targets before any I/O, as a rejection.
			var c gotify.Client
			_, err = c.Send(t.Context(), target, gotify.Message{Message: "m"})
			checkClass(t, err, true)
			checkNoToken(t, err, strings.TrimSpace(tt.token))
			if errors.As(err, new(*gotify.RejectedError)) {
				t.Errorf("Send error %#v is a RejectedError; no answer was received", err)
			}
		})
	}
}

// TestTargetFormatting: printing or logging a Target shows the hint only.
func TestTargetFormatting(t *testing.T) {
	t.Parallel()
	target := gotify.Target{URL: "https://me:pw-secret@push.example", Token: "Atop-secret-1234"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("push", "target", target)
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", target),
		"%+v": fmt.Sprintf("%+v", target),
		"%#v": fmt.Sprintf("%#v", target),
		"log": logged.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, target.Token) || strings.Contains(out, "pw-secret") || !strings.Contains(out, "…1234") {
			t.Errorf("%s of a Target = %q, want the hint …1234 and no secrets", how, out)
		}
	}
}
