package gotifytest

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	maxBody      = 1 << 20
	defaultLimit = 100 // Gotify's paging defaults and bounds
	maxLimit     = 200
	// Gotify's own wording, so tests can match what users will see.
	descUnauthorized = "you need to provide a valid access token or user credentials to access this api"
	descMessage      = "Field 'message' is required"
)

// createBody is what Gotify binds for CreateMessage. Priority is a pointer
// because an absent priority means the application's default (here 0).
type createBody struct {
	Title    string         `json:"title"`
	Message  string         `json:"message"`
	Priority *int           `json:"priority"`
	Extras   map[string]any `json:"extras"`
}

// createMessage is POST /message. Gotify checks the token before the body,
// and accepts only an application token: a client token gets 401 too.
func (s *Server) createMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	down := s.down
	s.mu.Unlock()
	if down {
		writeError(w, http.StatusServiceUnavailable, "gotify is down (gotifytest SetDown)")
		return
	}
	if requestToken(r) != s.appToken {
		writeError(w, http.StatusUnauthorized, descUnauthorized)
		return
	}
	in, desc := decodeCreate(w, r)
	if desc != "" {
		writeError(w, http.StatusBadRequest, desc)
		return
	}
	m := stored{Title: in.Title, Message: in.Message, Date: time.Now()}
	if strings.TrimSpace(m.Title) == "" {
		m.Title = AppName
	}
	if in.Priority != nil {
		m.Priority = *in.Priority
	}
	if in.Extras != nil {
		m.Extras, _ = json.Marshal(in.Extras) // decoded from JSON a moment ago, so it encodes
	}
	writeJSON(w, http.StatusOK, s.store(m))
}

// decodeCreate binds the body the way gin does for Gotify: JSON for
// application/json, form fields (body and query) for anything else; extras
// only come with JSON. It returns Gotify's error description, or "".
func decodeCreate(w http.ResponseWriter, r *http.Request) (createBody, string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var in createBody
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return in, err.Error()
		}
	default:
		var err error
		if mt == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBody)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			return in, err.Error()
		}
		in.Title, in.Message = r.Form.Get("title"), r.Form.Get("message")
		if p := r.Form.Get("priority"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return in, "Field 'priority' is not valid"
			}
			in.Priority = &n
		}
	}
	if in.Message == "" { // gin's "required" on a string means non-empty
		return in, descMessage
	}
	return in, ""
}

// paging is Gotify's model.Paging.
type paging struct {
	Next  string `json:"next,omitempty"` // the URL of the next (older) page
	Size  int    `json:"size"`
	Since int64  `json:"since"` // pass as ?since= for the next page; 0 on the last
	Limit int    `json:"limit"`
}

// getMessages is GET /message?limit=&since=: the newest messages first,
// those with an id below since if since > 0. Only the client token may read;
// an application token gets 401, as real Gotify answers (its RequireClient
// finds no client for an application token; 403 is only for a valid user
// without the right, which this fake has no way to send).
func (s *Server) getMessages(w http.ResponseWriter, r *http.Request) {
	if requestToken(r) != s.clientToken {
		writeError(w, http.StatusUnauthorized, descUnauthorized)
		return
	}
	q := r.URL.Query()
	limit, since := defaultLimit, int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, "Field 'limit' is not valid")
			return
		}
		limit = n
	}
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "Field 'since' is not valid")
			return
		}
		since = n
	}

	s.mu.Lock()
	page := make([]stored, 0, min(limit+1, len(s.msgs)))
	for i := len(s.msgs) - 1; i >= 0 && len(page) <= limit; i-- { // one extra tells if more exist
		if m := s.msgs[i]; since == 0 || m.ID < since {
			page = append(page, m)
		}
	}
	s.mu.Unlock()

	p := paging{Limit: limit}
	if len(page) > limit {
		page = page[:limit]
		p.Since = page[limit-1].ID
		next := url.Values{"limit": {strconv.Itoa(limit)}, "since": {strconv.FormatInt(p.Since, 10)}}
		p.Next = s.srv.URL + r.URL.Path + "?" + next.Encode()
	}
	p.Size = len(page)
	writeJSON(w, http.StatusOK, struct {
		Paging   paging   `json:"paging"`
		Messages []stored `json:"messages"`
	}{p, page})
}

// requestToken finds the token where Gotify looks, in its order: the token
// query parameter, the X-Gotify-Key header, then "Authorization: Bearer".
func requestToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if t := r.Header.Get("X-Gotify-Key"); t != "" {
		return t
	}
	const prefix = "Bearer "
	if a := r.Header.Get("Authorization"); len(a) > len(prefix) && strings.EqualFold(a[:len(prefix)], prefix) {
		return a[len(prefix):]
	}
	return ""
}

// writeError answers in Gotify's error shape.
func writeError(w http.ResponseWriter, code int, desc string) {
	writeJSON(w, code, map[string]any{"error": http.StatusText(code), "errorCode": code, "errorDescription": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}
