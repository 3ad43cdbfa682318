package gotifytest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/server/notify/gotify/gotifytest"
)

type answer struct {
	Status int
	Body   map[string]any
}

// do sends a raw request, so these tests pin the fake's wire format
// without going through the gotify client.
func do(t *testing.T, method, target, contentType, body string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode}
	if err := json.Unmarshal(b, &a.Body); err != nil {
		t.Fatalf("%s %s: answer %q is not a JSON object: %v", method, target, b, err)
	}
	return a
}

func gotifyError(code int, desc string) answer {
	return answer{code, map[string]any{"error": http.StatusText(code), "errorCode": float64(code), "errorDescription": desc}}
}

const (
	jsonType  = "application/json"
	formType  = "application/x-www-form-urlencoded"
	msgJSON   = `{"title":"t","message":"m","priority":4,"extras":{"a::b":{"c":1}}}`
	unauthMsg = "you need to provide a valid access token or user credentials to access this api"
)

func TestCreateMessage(t *testing.T) {
	t.Parallel()
	stored := func(title string, prio int, extras bool) answer {
		b := map[string]any{"id": 1.0, "appid": 1.0, "title": title, "message": "m", "priority": float64(prio)}
		if extras {
			b["extras"] = map[string]any{"a::b": map[string]any{"c": 1.0}}
		}
		return answer{200, b}
	}
	tests := []struct {
		name        string
		query       func(g *gotifytest.Server) string
		header      func(g *gotifytest.Server) http.Header
		contentType string
		body        string
		want        answer
	}{
		{"X-Gotify-Key", nil, func(g *gotifytest.Server) http.Header { return http.Header{"X-Gotify-Key": {g.AppToken()}} },
			jsonType, msgJSON, stored("t", 4, true)},
		{"?token=", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			jsonType, msgJSON, stored("t", 4, true)},
		{"Authorization: Bearer", nil, func(g *gotifytest.Server) http.Header {
			return http.Header{"Authorization": {"Bearer " + g.AppToken()}}
		}, jsonType, msgJSON, stored("t", 4, true)},
		{"bearer in lower case", nil, func(g *gotifytest.Server) http.Header {
			return http.Header{"Authorization": {"bearer " + g.AppToken()}}
		}, jsonType, msgJSON, stored("t", 4, true)},
		{"form body, no title", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			formType, "message=m&priority=7", stored(gotifytest.AppName, 7, false)},
		{"blank title and no priority", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			jsonType, `{"title":"  ","message":"m"}`, stored(gotifytest.AppName, 0, false)},
		{"no token", nil, nil, jsonType, msgJSON, gotifyError(401, unauthMsg)},
		{"wrong token", func(*gotifytest.Server) string { return "?token=Anope" }, nil, jsonType, msgJSON, gotifyError(401, unauthMsg)},
		{"client token", func(g *gotifytest.Server) string { return "?token=" + g.ClientToken() }, nil,
			jsonType, msgJSON, gotifyError(401, unauthMsg)},
		{"token checked before body", nil, nil, jsonType, `{}`, gotifyError(401, unauthMsg)},
		{"no message", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			jsonType, `{"title":"t"}`, gotifyError(400, "Field 'message' is required")},
		{"empty form message", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			formType, "title=t&message=", gotifyError(400, "Field 'message' is required")},
		{"form priority not a number", func(g *gotifytest.Server) string { return "?token=" + g.AppToken() }, nil,
			formType, "message=m&priority=high", gotifyError(400, "Field 'priority' is not valid")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := gotifytest.New(t)
			target, header := g.URL()+"/message", http.Header{}
			if tt.query != nil {
				target += tt.query(g)
			}
			if tt.header != nil {
				header = tt.header(g)
			}
			got := do(t, "POST", target, tt.contentType, tt.body, header)
			if tt.want.Status == 200 {
				date, _ := got.Body["date"].(string)
				if _, err := time.Parse(time.RFC3339Nano, date); err != nil {
					t.Errorf("date %q: %v", date, err)
				}
				delete(got.Body, "date")
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("POST /message (-want +got):\n%s", d)
			}
			if stored := len(g.Messages()); (tt.want.Status == 200) != (stored == 1) || g.Requests() != 1 {
				t.Errorf("%d stored after %d requests, want 1 request and a message only on success", stored, g.Requests())
			}
		})
	}
}

func TestGetMessagesPages(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	for i := 1; i <= 5; i++ {
		do(t, "POST", g.URL()+"/message?token="+g.AppToken(), formType, fmt.Sprintf("message=m%d", i), nil)
	}
	read := func(query string) answer {
		return do(t, "GET", g.URL()+"/message?"+query, "", "", http.Header{"X-Gotify-Key": {g.ClientToken()}})
	}
	ids := func(a answer) (got []float64) {
		list, _ := a.Body["messages"].([]any)
		for _, m := range list {
			got = append(got, m.(map[string]any)["id"].(float64))
		}
		return got
	}
	first := read("limit=2")
	paging := map[string]any{"size": 2.0, "since": 4.0, "limit": 2.0, "next": g.URL() + "/message?limit=2&since=4"}
	if d := cmp.Diff(paging, first.Body["paging"]); d != "" || !cmp.Equal(ids(first), []float64{5, 4}) {
		t.Errorf("first page %v, paging (-want +got):\n%s", ids(first), d)
	}
	last := read("limit=3&since=3")
	paging = map[string]any{"size": 2.0, "since": 0.0, "limit": 3.0}
	if d := cmp.Diff(paging, last.Body["paging"]); d != "" || !cmp.Equal(ids(last), []float64{2, 1}) {
		t.Errorf("last page %v, paging (-want +got):\n%s", ids(last), d)
	}
	if all := read(""); !cmp.Equal(ids(all), []float64{5, 4, 3, 2, 1}) || all.Body["paging"].(map[string]any)["limit"] != 100.0 {
		t.Errorf("default page = %v, want all five, limit 100", all.Body)
	}

	bad := map[string]answer{
		"limit=0":   gotifyError(400, "Field 'limit' is not valid"),
		"limit=201": gotifyError(400, "Field 'limit' is not valid"),
		"since=-1":  gotifyError(400, "Field 'since' is not valid"),
	}
	for q, want := range bad {
		if d := cmp.Diff(want, read(q)); d != "" {
			t.Errorf("GET /message?%s (-want +got):\n%s", q, d)
		}
	}
	appToken := do(t, "GET", g.URL()+"/message?token="+url.QueryEscape(g.AppToken()), "", "", nil)
	if d := cmp.Diff(gotifyError(401, unauthMsg), appToken); d != "" {
		t.Errorf("GET /message with the app token (-want +got):\n%s", d)
	}
}

func TestSetDown(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	post := func() answer {
		return do(t, "POST", g.URL()+"/message?token="+g.AppToken(), jsonType, msgJSON, nil)
	}
	g.SetDown(true)
	if d := cmp.Diff(gotifyError(503, "gotify is down (gotifytest SetDown)"), post()); d != "" {
		t.Errorf("POST while down (-want +got):\n%s", d)
	}
	g.SetDown(false)
	if a := post(); a.Status != 200 || a.Body["id"] != 1.0 {
		t.Errorf("POST after the outage = %v, want 200 with id 1", a)
	}
	if n, stored := g.Requests(), len(g.Messages()); n != 2 || stored != 1 {
		t.Errorf("%d requests, %d stored; want 2, 1", n, stored)
	}
}

func TestWaitMessages(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	go func() { // posts while WaitMessages blocks; errors show as a timeout below
		for i := 1; i <= 3; i++ {
			resp, err := http.Post(g.URL()+"/message?token="+g.AppToken(), jsonType,
				strings.NewReader(fmt.Sprintf(`{"message":"m%d","extras":{"k":"v"}}`, i)))
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	got := g.WaitMessages(t, 3, 10*time.Second)
	if len(got) != 3 || got[0].Message != "m1" || got[2].Message != "m3" || got[2].ID != 3 {
		t.Fatalf("WaitMessages = %+v, want m1..m3 oldest first", got)
	}
	got[0].Extras["k"] = "changed" // Messages hands out copies
	if again := g.Messages(); again[0].Extras["k"] != "v" {
		t.Errorf("after changing a returned message, stored extras = %v", again[0].Extras)
	}
}

// fatalRecorder stands in for a testing.TB whose Fatalf is expected.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper()                        {}
func (f *fatalRecorder) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }

func TestWaitMessagesTimesOut(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	rec := &fatalRecorder{TB: t}
	if got := g.WaitMessages(rec, 1, 20*time.Millisecond); got != nil || !strings.Contains(rec.fatal, "0 messages stored") {
		t.Errorf("WaitMessages = %v with Fatalf %q, want nil after a Fatalf about 0 messages", got, rec.fatal)
	}
}
