package turn

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type noUsers struct{}

func (noUsers) CredentialsEnded(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

// TestSecondServerOnThePortFails: the UDP sockets share their port with
// SO_REUSEPORT, but a second server on the same port must fail, not
// quietly take half of the first one's packets.
func TestSecondServerOnThePortFails(t *testing.T) {
	t.Parallel()
	cfg := Config{Public: netip.MustParseAddr("127.0.0.1"), PortMin: 50000, PortMax: 50199, Secret: []byte("s"), TTL: time.Hour}
	log := slog.New(slog.DiscardHandler)
	a, err := Listen("127.0.0.1:0", cfg, noUsers{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if len(a.udp) < 1 {
		t.Fatalf("%d UDP sockets", len(a.udp))
	}
	b, err := Listen(a.Addr().String(), cfg, noUsers{}, log)
	if err == nil {
		b.pion.Close()
		t.Fatalf("a second server on %s started", a.Addr())
	}
	if !strings.Contains(err.Error(), "another mesh running") {
		t.Errorf("second Listen = %v, want it to say the port is taken and what to do", err)
	}
}
