package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"mesh/protocol"
)

// startTransfer carries out a transfer.start the web app sent through the
// server: it sends the paths to the other device, if every path lies in
// [agent] send_dirs. A refusal is reported here, a failed send by
// [SendTo], and the receiver reports what it received.
func (d *Daemon) startTransfer(ctx context.Context, from string, req protocol.TransferStart) {
	log := d.log.With("to", req.ToDevice, "user", from)
	fail := func(reason string) {
		log.Warn("transfer from the web app refused", "reason", reason)
		d.link.send(protocol.TypeTransferReport, protocol.TransferReport{SessionID: "start-" + randomID(),
			FromDevice: d.cfg.DeviceID, ToDevice: req.ToDevice, Name: startName(req.Paths), Outcome: protocol.OutcomeFailed,
			Reason: shorten(reason), Side: protocol.SideSender})
	}
	if from != d.cfg.Username || req.FromDevice != d.cfg.DeviceID {
		fail("only your own user may start transfers from this device")
		return
	}
	for _, p := range req.Paths {
		if err := d.sendable(p); err != nil {
			fail(err.Error())
			return
		}
	}
	log.Info("sending on the web app's request", "paths", len(req.Paths))
	report := func(r protocol.TransferReport) { d.link.send(protocol.TypeTransferReport, r) }
	if _, err := SendTo(ctx, d.cfg, d.dir, req.ToDevice, SendOptions{Paths: req.Paths, report: report}, d.log); err != nil {
		log.Warn("send from the web app's request failed", "err", err) // and reported by SendTo
	}
}

// sendable reports why path may not be sent on a remote request, or nil:
// it must resolve (symlinks followed) to somewhere inside a send_dir.
func (d *Daemon) sendable(path string) error {
	if len(d.cfg.SendDirs) == 0 {
		return fmt.Errorf("this agent sends nothing on the web app's request: list directories in [agent] send_dirs on %s", d.cfg.DeviceID)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, dir := range d.cfg.SendDirs {
		root, err := filepath.EvalSymlinks(filepath.Clean(dir))
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(root, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return nil
		}
	}
	return fmt.Errorf("%s is outside [agent] send_dirs (%s)", path, strings.Join(d.cfg.SendDirs, ", "))
}

func startName(paths []string) string {
	if len(paths) == 1 {
		return filepath.Base(paths[0])
	}
	return fmt.Sprintf("%s and %d more", filepath.Base(paths[0]), len(paths)-1)
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
