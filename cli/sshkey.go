package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func sshKeyCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:     "ssh-key",
		Aliases: []string{"ssh-keys"},
		Short:   "Register the public keys that may log in to sandboxes",
		Args:    noArgs,
	}
	f := addClientFlags(c, env)
	var file string
	add := &cobra.Command{
		Use:     "add NAME [--file PUBLIC_KEY_FILE]",
		Short:   "Register a public key",
		Example: `  rtemu ssh-key add my-laptop --file ~/.ssh/id_ed25519.pub`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := publicKeyFile(file, env.Getenv)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			k, err := f.client(cmd.Context()).AddSSHKey(cmd.Context(), args[0], strings.TrimSpace(string(b)))
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(k.Raw)
			}
			fmt.Fprintf(env.Stdout, "%s %s %s (%s)\n", k.ID, k.Name, k.Fingerprint, path)
			return nil
		},
	}
	add.Flags().StringVar(&file, "file", "", "the public key's file (default ~/.ssh/id_ed25519.pub, else id_ecdsa.pub, else id_rsa.pub)")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the registered keys, newest first",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := f.client(cmd.Context()).ListSSHKeys(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				var raws []jsonRaw
				for _, k := range keys {
					raws = append(raws, k.Raw)
				}
				return f.printJSONList(raws)
			}
			var rows [][]string
			for _, k := range keys {
				rows = append(rows, []string{k.ID, k.Name, k.KeyType, k.Fingerprint, k.CreatedAt})
			}
			return f.table("ID NAME TYPE FINGERPRINT CREATED", rows)
		},
	}
	rm := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a registered key",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.client(cmd.Context()).RemoveSSHKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !f.json {
				fmt.Fprintf(env.Stdout, "%s removed\n", args[0])
			}
			return nil
		},
	}
	c.AddCommand(add, list, rm)
	return c
}

// publicKeyFile is the file given, or the first of the usual ones there is.
func publicKeyFile(file string, getenv func(string) string) (string, error) {
	if file != "" {
		return file, nil
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	for _, n := range []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"} {
		p := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", usageError{fmt.Errorf("no public key in %s; name one with --file", filepath.Join(home, ".ssh"))}
}
