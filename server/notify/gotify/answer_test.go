package gotify_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"mesh/server/notify/gotify"
)

// TestSendNeverEchoesTheAnswer: whatever a target answers, the error shows
// its status and a fixed hint, never its body or its Location: a user who
// sets a target must not be able to read what answers there.
func TestSendNeverEchoesTheAnswer(t *testing.T) {
	t.Parallel()
	const secret = "internal-secret-7d1f"
	tests := []struct {
		name     string
		status   int
		location string
		body     string
	}{
		{"404 page", 404, "", "<h1>admin console " + secret + "</h1>"},
		{"gotify errorDescription", 401, "", `{"error":"Unauthorized","errorCode":401,"errorDescription":"` + secret + `"}`},
		{"400 plain", 400, "", secret},
		{"200 not gotify", 200, "", `{"service":"` + secret + `"}`},
		{"500 page", 500, "", "stack trace " + secret},
		{"503 gotify shape", 503, "", `{"errorDescription":"` + secret + `"}`},
		{"redirect", 302, "http://10.0.0.1/" + secret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			var c gotify.Client
			_, err := c.Send(t.Context(), gotify.Target{URL: url, Token: "Aapplication-token"}, gotify.Message{Message: "m"})
			if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), strconv.Itoa(tt.status)) {
				t.Errorf("Send to a %d answer = %v; want an error naming the status, without the answer's %q", tt.status, err, secret)
			}
		})
	}
}
