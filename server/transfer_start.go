package server

import (
	"context"
	"errors"

	"mesh/protocol"
	"mesh/store"
)

// onTransferStart is transfer.start from the web app: it asks the agent on
// one of the user's devices to send files to another of them. The server
// checks ownership and relays; the agent checks its send_dirs and sends
// directly, and the outcome arrives as a transfer.report like any other.
func (s *Server) onTransferStart(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.TransferStart
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	req.RefID = ""
	for _, id := range []*string{&req.FromDevice, &req.ToDevice} {
		d, err := s.store.DeviceByID(ctx, *id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != c.user.ID) {
			return refuse(kindNotFound, codeDeviceNotFound, "you have no device %q", *id)
		} else if err != nil {
			return err
		}
		*id = d.ID // as the agents' configs spell it: they compare exactly
	}
	fc := s.hub.deviceConn(req.FromDevice)
	if fc == nil {
		return refuse(kindConflict, codeDeviceOffline, "device %q is offline: start 'mesh agent run' on it", req.FromDevice)
	}
	ev, err := s.hub.event(protocol.TypeTransferStart, c.user.Username, req)
	if err != nil {
		return err
	}
	fc.enqueue(ev)
	req.RefID = env.ID
	c.sendTo(protocol.TypeTransferStart, req) // accepted: the browser waits for the report
	s.log.Info("transfer requested", "user", c.user.Username, "from", req.FromDevice, "to", req.ToDevice, "paths", len(req.Paths))
	return nil
}
