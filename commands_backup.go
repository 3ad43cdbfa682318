package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"mesh/store"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "copy the database while the server runs (consistent, online)",
		ArgsUsage: "FILE",
		Description: "Writes the database as of one moment to FILE (mode 0600) while mesh serve keeps\n" +
			"running, then checks the copy (integrity_check, schema version). FILE must not\n" +
			"exist. The database is copied as it is, never migrated, so a newer mesh may back\n" +
			"up an older server's database before an upgrade.\n" +
			"The token signing key (mesh.db.secret, or auth.secret_file) is not in the\n" +
			"database: keep a copy of it too, or everyone logs in again after a restore.\n\n" +
			"To restore: stop mesh serve, copy FILE over the database (server.db, e.g.\n" +
			"cp FILE mesh.db), remove mesh.db-wal and mesh.db-shm if present, start mesh serve.",
		Flags:  configFlags(),
		Action: runBackup,
	}
}

func runBackup(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("want exactly one FILE to write the copy to; see 'mesh backup --help'")
	}
	cfg, _, err := setup(c)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.HTTP.DB); err != nil {
		return fmt.Errorf("database %s: %w (run this where mesh serve runs, or pass --db)", cfg.HTTP.DB, err)
	}
	st, err := store.OpenWith(c.Context, cfg.HTTP.DB, store.Options{AsIs: true})
	if err != nil {
		return err
	}
	defer st.Close()
	info, err := st.Backup(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "backup written: %s (%.1f MiB, schema version %d, integrity ok)\n",
		info.Path, float64(info.Size)/(1<<20), info.Schema)
	return nil
}
