-- How the two agents of a transfer reached each other: 'direct' (the same
-- network), 'nat' (direct, through a NAT) or 'relay' (through the server's
-- relay), as each side reported it; path is the one the list shows, the
-- receiver's if it said, else the sender's. Earlier rows did not say ('').
ALTER TABLE transfers ADD COLUMN path TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN sender_path TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN receiver_path TEXT NOT NULL DEFAULT '';
