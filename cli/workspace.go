package cli

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
)

func workspaceCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:     "workspace",
		Aliases: []string{"workspaces", "ws"},
		Short:   "Durable storage that sandboxes mount, and its files",
		Long: `Create, list and delete workspaces, and read and write their files. A workspace is
named by its id or slug; paths in it start at its root, e.g. /src/main.go.`,
		Args: noArgs,
	}
	f := addClientFlags(c, env)
	var slug string
	create := &cobra.Command{
		Use:   "create NAME [--slug SLUG]",
		Short: "Create a workspace; prints its id",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := f.client(cmd.Context()).CreateWorkspace(cmd.Context(), args[0], slug)
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(w.Raw)
			}
			fmt.Fprintln(env.Stdout, w.ID)
			return nil
		},
	}
	create.Flags().StringVar(&slug, "slug", "", "the slug (default: made from the name)")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List workspaces, newest first",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := f.client(cmd.Context()).ListWorkspaces(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				var raws []jsonRaw
				for _, w := range ws {
					raws = append(raws, w.Raw)
				}
				return f.printJSONList(raws)
			}
			var rows [][]string
			for _, w := range ws {
				rows = append(rows, []string{w.ID, w.Slug, w.Name, strconv.FormatInt(w.SizeBytes, 10), w.CreatedAt})
			}
			return f.table("ID SLUG NAME BYTES CREATED", rows)
		},
	}
	get := &cobra.Command{
		Use:   "get ID|SLUG",
		Short: "Show a workspace",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := f.client(cmd.Context()).GetWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(w.Raw)
			}
			return f.table("", [][]string{{"id:", w.ID}, {"slug:", w.Slug}, {"name:", w.Name},
				{"bytes:", strconv.FormatInt(w.SizeBytes, 10)}, {"created:", w.CreatedAt}})
		},
	}
	var force bool
	del := &cobra.Command{
		Use:   "delete ID|SLUG",
		Short: "Delete a workspace and its files",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.client(cmd.Context()).DeleteWorkspace(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if !f.json {
				fmt.Fprintf(env.Stdout, "%s deleted\n", args[0])
			}
			return nil
		},
	}
	del.Flags().BoolVar(&force, "force", false, "delete it even while sandboxes mount it")
	c.AddCommand(create, list, get, del, filesCmd(f), putCmd(f), catCmd(f), mkdirCmd(f), rmFilesCmd(f),
		changeCmd(f, "rename", "rename ID|SLUG PATH NEW_NAME", "Rename a file or folder of a workspace"),
		changeCmd(f, "move", "mv ID|SLUG PATH FOLDER", "Move a file or folder of a workspace into a folder"),
		changeCmd(f, "copy", "cp ID|SLUG PATH FOLDER", "Copy a file or folder of a workspace into a folder"))
	return c
}

func filesCmd(f *clientFlags) *cobra.Command {
	var hidden bool
	c := &cobra.Command{
		Use:   "files ID|SLUG [DIR]",
		Short: "List a folder of a workspace",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "/"
			if len(args) == 2 {
				dir = args[1]
			}
			files, err := f.client(cmd.Context()).ListFiles(cmd.Context(), args[0], dir, hidden)
			if err != nil {
				return err
			}
			if f.json {
				var raws []jsonRaw
				for _, fl := range files {
					raws = append(raws, fl.Raw)
				}
				return f.printJSONList(raws)
			}
			var rows [][]string
			for _, fl := range files {
				size := "-"
				if fl.Size != nil {
					size = strconv.FormatInt(*fl.Size, 10)
				}
				rows = append(rows, []string{fl.Type, size, fl.Date, fl.ID})
			}
			return f.table("TYPE BYTES DATE PATH", rows)
		},
	}
	c.Flags().BoolVar(&hidden, "hidden", false, "list hidden files too")
	return c
}

func putCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "put ID|SLUG LOCAL_FILE [DIR]",
		Short:   "Upload a file into a folder of a workspace (- reads stdin)",
		Example: `  rtemu workspace put docs ./build.tar.gz /src`,
		Args:    rangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "/"
			if len(args) == 3 {
				dir = args[2]
			}
			var r io.Reader = f.env.Stdin
			name := "stdin"
			if args[1] != "-" {
				file, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer file.Close()
				r, name = file, filepath.Base(args[1])
			}
			if err := f.client(cmd.Context()).Upload(cmd.Context(), args[0], dir, name, r); err != nil {
				return err
			}
			if !f.json {
				fmt.Fprintln(f.env.Stdout, path.Join("/", dir, name))
			}
			return nil
		},
	}
}

func catCmd(f *clientFlags) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:     "cat ID|SLUG PATH [-o LOCAL_FILE]",
		Aliases: []string{"download"},
		Short:   "Print (or save) a file of a workspace",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := f.env.Stdout
			if out != "" {
				file, err := os.Create(out)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			return f.client(cmd.Context()).Download(cmd.Context(), args[0], args[1], w)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	return c
}

func mkdirCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "mkdir ID|SLUG PATH",
		Short: "Make a folder in a workspace",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := path.Clean("/" + args[1])
			if p == "/" {
				return usageError{fmt.Errorf("%q: the root exists", args[1])}
			}
			return f.client(cmd.Context()).MakeFolder(cmd.Context(), args[0], path.Dir(p), path.Base(p))
		},
	}
}

func rmFilesCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm-files ID|SLUG PATH...",
		Short: "Delete files and folders of a workspace",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("%s wants a workspace and paths: %s", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.client(cmd.Context()).DeleteFiles(cmd.Context(), args[0], args[1:])
		},
	}
}

func changeCmd(f *clientFlags, operation, use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl, err := f.client(cmd.Context()).ChangeFile(cmd.Context(), args[0], args[1], operation, args[2])
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(fl.Raw)
			}
			fmt.Fprintln(f.env.Stdout, fl.ID)
			return nil
		},
	}
}
