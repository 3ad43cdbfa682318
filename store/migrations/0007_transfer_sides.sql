-- A transfer is one row per session of a user, holding what each side
-- reported: the receiver (as before) and now the sender, whose report is
-- all there is when the receiver was never reached or vanished mid-way.
-- outcome and reason are the merged verdict the list shows.
ALTER TABLE transfers ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN sender_outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN sender_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN receiver_outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN receiver_reason TEXT NOT NULL DEFAULT '';
-- Earlier rows came from receivers, except the web app's refused starts,
-- which the sending agent reported under a "start-" id.
UPDATE transfers SET sender_outcome = outcome WHERE session_id LIKE 'start-%';
UPDATE transfers SET receiver_outcome = outcome WHERE session_id NOT LIKE 'start-%';
CREATE INDEX transfers_session ON transfers(user_id, session_id);
