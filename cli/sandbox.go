package cli

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtemu-dev/rtemu/client"
)

func sandboxCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:     "sandbox",
		Aliases: []string{"sandboxes", "sb"},
		Short:   "Create, use and destroy sandboxes",
		Long: `Create, use and destroy sandboxes through the REST API at RUNTOOLS_API_URL, as the
hosted runtools CLI does. A sandbox is named by its id or its name.`,
		Args: noArgs,
	}
	f := addClientFlags(c, env)
	c.AddCommand(sandboxCreateCmd(f), sandboxListCmd(f))
	for _, sub := range []*cobra.Command{sandboxGetCmd(f), sandboxExecCmd(f), sandboxSSHCmd(f),
		sandboxURLCmd(f), sandboxPauseCmd(f), sandboxResumeCmd(f), sandboxDestroyCmd(f)} {
		sub.ValidArgsFunction = f.completeSandbox
		c.AddCommand(sub)
	}
	return c
}

// completeSandbox completes a sandbox's name or id from the API's list.
func (f *clientFlags) completeSandbox(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "destroy" {
		return nil, cobra.ShellCompDirectiveDefault
	}
	sbs, err := f.client(cmd.Context()).ListSandboxes(cmd.Context(), client.ListSandboxes{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, sb := range sbs {
		if n := deref(sb.Name); n != "" {
			out = append(out, n+"\t"+sb.ID+" "+sb.Status)
		} else {
			out = append(out, sb.ID+"\t"+sb.Status)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func sandboxCreateCmd(f *clientFlags) *cobra.Command {
	var req client.CreateSandbox
	var res client.Resources
	var mounts, envs []string
	var idle int
	var noWait bool
	c := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create a sandbox and wait until it runs",
		Long: `Create a sandbox and wait until it runs, showing its progress (on stderr). It prints
the sandbox's id (with --json, the sandbox); exit status 1 when it failed to start.`,
		Example: `  rtemu sandbox create --name my-env --template base-ubuntu
  rtemu sandbox create --mount 9b84ef42-9c3a-4930-9d4c-45c7f5c22d8e:/workspace --idle-timeout 0`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if req.Env, err = parsePairs("env", envs); err != nil {
				return err
			}
			for _, m := range mounts {
				ws, path, ok := strings.Cut(m, ":")
				path, mode, _ := strings.Cut(path, ":")
				if !ok || ws == "" || path == "" || (mode != "" && mode != "ro" && mode != "rw") {
					return usageError{fmt.Errorf("--mount %q: want WORKSPACE:PATH[:ro]", m)}
				}
				req.Mounts = append(req.Mounts, client.Mount{WorkspaceID: ws, Path: path, ReadOnly: mode == "ro"})
			}
			if cmd.Flags().Changed("idle-timeout") {
				req.IdleTimeout = &idle
			}
			if res != (client.Resources{}) {
				req.Resources = &res
			}
			c := f.client(ctx)
			sb, err := c.CreateSandbox(ctx, req)
			if err != nil {
				return err
			}
			if !noWait {
				if sb, err = f.wait(ctx, c, sb.ID, "creating"); err != nil {
					return err
				}
			}
			if f.json {
				err = f.printJSON(sb.Raw)
			} else {
				fmt.Fprintln(f.env.Stdout, sb.ID)
			}
			if err == nil && sb.Status != "running" && sb.Status != "creating" {
				err = fmt.Errorf("sandbox %s is %s: %s", sb.ID, sb.Status, sb.Error)
			}
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&req.Name, "name", "", "a name, unique among sandboxes")
	fl.StringVar(&req.Template, "template", "base-ubuntu", "the template")
	fl.StringVar(&req.RootPassword, "password", "", "a root password: allows SSH by password")
	fl.StringArrayVar(&mounts, "mount", nil, "WORKSPACE:PATH[:ro] a workspace mounted at PATH, /workspace or below (repeatable)")
	fl.IntVar(&idle, "idle-timeout", 600, "seconds without activity before the sandbox is paused; 0 never")
	fl.IntVar(&res.VCPUs, "vcpus", 0, "CPUs, 1 to 16 (default 2)")
	fl.StringVar(&res.Memory, "memory", "", "memory, e.g. 4GB (default 4GB)")
	fl.StringVar(&res.Disk, "disk", "", "disk, e.g. 10GB (default 10GB)")
	fl.StringArrayVar(&envs, "env", nil, "KEY=VALUE in the sandbox's environment (repeatable)")
	fl.StringArrayVar(&req.Tags, "tag", nil, "a tag (repeatable)")
	fl.StringArrayVar(&req.SSHKeys, "ssh-key", nil, "a registered SSH key's id, or a public key, allowed to log in (repeatable; default every registered key)")
	fl.BoolVar(&noWait, "no-wait", false, "return at once, while the sandbox is still creating")
	return c
}

func sandboxListCmd(f *clientFlags) *cobra.Command {
	var filter client.ListSandboxes
	c := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List sandboxes, newest first",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sbs, err := f.client(cmd.Context()).ListSandboxes(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if f.json {
				var raws []jsonRaw
				for _, sb := range sbs {
					raws = append(raws, sb.Raw)
				}
				return f.printJSONList(raws)
			}
			var rows [][]string
			for _, sb := range sbs {
				name := deref(sb.Name)
				if name == "" {
					name = "-"
				}
				rows = append(rows, []string{sb.ID, name, sb.Template, sb.Status, sb.CreatedAt})
			}
			return f.table("ID NAME TEMPLATE STATUS CREATED", rows)
		},
	}
	c.Flags().StringVar(&filter.Status, "status", "", "only this status (destroyed ones are listed only so)")
	c.Flags().StringArrayVar(&filter.Tags, "tag", nil, "only sandboxes with this tag (repeatable: all of them)")
	c.Flags().StringVar(&filter.Template, "template", "", "only this template")
	return c
}

func sandboxGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID|NAME",
		Short: "Show a sandbox",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, err := f.client(cmd.Context()).GetSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(sb.Raw)
			}
			rows := [][]string{{"id", sb.ID}, {"name", deref(sb.Name)}, {"template", sb.Template}, {"status", sb.Status},
				{"resources", fmt.Sprintf("%d vCPUs, %s memory, %s disk", sb.Resources.VCPUs, sb.Resources.Memory, sb.Resources.Disk)},
				{"idle timeout", fmt.Sprintf("%ds", sb.IdleTimeout)}, {"ssh ready", strconv.FormatBool(sb.SSHReady)},
				{"created", sb.CreatedAt}}
			if len(sb.Tags) > 0 {
				rows = append(rows, []string{"tags", strings.Join(sb.Tags, ", ")})
			}
			for _, m := range sb.Mounts {
				ro := ""
				if m.ReadOnly {
					ro = " (read-only)"
				}
				rows = append(rows, []string{"mount", m.WorkspaceID + " at " + m.Path + ro})
			}
			if sb.Error != "" {
				rows = append(rows, []string{"error", sb.Error})
			}
			for i := range rows {
				rows[i][0] += ":"
			}
			return f.table("", rows)
		},
	}
}

func sandboxExecCmd(f *clientFlags) *cobra.Command {
	var req client.Exec
	var envs []string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "exec ID|NAME COMMAND...",
		Short: "Run a command in a sandbox; its exit code is rtemu's",
		Long: `Run a command in a sandbox by /bin/sh -c, as root, in /workspace unless --cwd says
otherwise. Its stdout and stderr are printed as they come (with --json, the API's answer), and
its exit code is this command's exit status. Flags go before ID: what follows is the command.`,
		Example: `  rtemu sandbox exec my-env "ls -la /workspace"
  rtemu sandbox exec --cwd /tmp my-env uname -a`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("%s wants a sandbox and a command: %s", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if req.Env, err = parsePairs("env", envs); err != nil {
				return err
			}
			req.Command = strings.Join(args[1:], " ")
			req.Timeout = timeout.Milliseconds()
			c := f.client(cmd.Context())
			if f.json {
				r, err := c.ExecSandbox(cmd.Context(), args[0], req)
				if err != nil {
					return err
				}
				if err := f.printJSON(r.Raw); err != nil {
					return err
				}
				return exit(r.ExitCode)
			}
			// Streamed: the output shows as it comes.
			r, err := c.ExecStream(cmd.Context(), args[0], req, f.env.Stdout, f.env.Stderr)
			if err != nil {
				return err
			}
			if r.TimedOut {
				fmt.Fprintf(f.env.Stderr, "rtemu: the command timed out after %s (--timeout) and was killed\n", timeout)
			}
			if r.StdoutTruncated || r.StderrTruncated {
				fmt.Fprintln(f.env.Stderr, "rtemu: the output was cut at the API's limit")
			}
			return exit(r.ExitCode)
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringVar(&req.Cwd, "cwd", "", "the working directory (default /workspace)")
	c.Flags().StringArrayVar(&envs, "env", nil, "KEY=VALUE in the command's environment (repeatable)")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "kill the command after this long (at most 1h)")
	return c
}

func sandboxSSHCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh ID|NAME [-- SSH ARGS...]",
		Short: "Open a shell in a sandbox with the system's ssh",
		Long: `Run the system's ssh to the sandbox through the SSH gateway, as the user the gateway
routes to the sandbox (its id). Arguments after -- go to ssh (a command, -L, -i …); the exit
status is ssh's. With --json it prints where to connect instead.`,
		Example: `  rtemu sandbox ssh my-env
  rtemu sandbox ssh my-env -- -L 3000:localhost:3000
  rtemu sandbox ssh my-env -- uname -a`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || (cmd.ArgsLenAtDash() != 1 && len(args) > 1) {
				return usageError{fmt.Errorf("%s wants a sandbox, then -- before any argument of ssh: %s", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := f.client(cmd.Context()).SandboxSSH(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return f.printJSON(info.Raw)
			}
			bin, err := exec.LookPath("ssh")
			if err != nil {
				return fmt.Errorf("no ssh command on PATH; connect with: %s", info.Command)
			}
			ssh := exec.CommandContext(cmd.Context(), bin, sshArgs(info, args[1:])...)
			ssh.Stdin, ssh.Stdout, ssh.Stderr = f.env.Stdin, f.env.Stdout, f.env.Stderr
			err = ssh.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return exit(ee.ExitCode())
			}
			return err
		},
	}
}

// sshArgs are ssh's arguments to reach a sandbox through the gateway.
func sshArgs(info *client.SSHInfo, extra []string) []string {
	args := []string{"-p", strconv.Itoa(info.Port)}
	host := info.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	// The gateway's host key is one for every sandbox: one known_hosts
	// line for the gateway, whichever sandbox is reached.
	args = append(args, "-o", "HostKeyAlias=rtemu-"+info.Host+"-"+strconv.Itoa(info.Port))
	args = append(args, extra...)
	// The destination before any remote command.
	out := append([]string(nil), args[:4]...)
	i := 4
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		out = append(out, args[i])
		if sshFlagTakesValue(args[i]) && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
		i++
	}
	out = append(out, info.User+"@"+host)
	return append(out, args[i:]...)
}

// sshFlagTakesValue tells ssh's options that take a value (ssh(1)).
func sshFlagTakesValue(a string) bool {
	return len(a) == 2 && strings.ContainsRune("BbcDEeFIiJLlmOoPpQRSWw", rune(a[1]))
}

func sandboxURLCmd(f *clientFlags) *cobra.Command {
	var port int
	var open bool
	c := &cobra.Command{
		Use:     "url ID|NAME --port N [--open]",
		Short:   "Print the URL that reaches a port inside a sandbox",
		Example: `  rtemu sandbox url my-env --port 3000 --open`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 1 || port > 65535 {
				return usageError{fmt.Errorf("--port %d: want a port from 1 to 65535", port)}
			}
			u, err := f.client(cmd.Context()).SandboxURL(cmd.Context(), args[0], port)
			if err != nil {
				return err
			}
			if f.json {
				err = f.printJSON(u.Raw)
			} else {
				fmt.Fprintln(f.env.Stdout, u.URL)
			}
			if err == nil && open {
				err = openBrowser(u.URL)
			}
			return err
		},
	}
	c.Flags().IntVar(&port, "port", 0, "the port inside the sandbox")
	c.Flags().BoolVar(&open, "open", false, "open the URL in a browser")
	return c
}

func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("could not open a browser: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// lifecycleCmd is pause or resume: ask, then wait for the end state.
func lifecycleCmd(f *clientFlags, use, short, passing string, do func(*client.Client, *cobra.Command, string) (*client.StatusAnswer, error)) *cobra.Command {
	var noWait bool
	c := &cobra.Command{
		Use:   use + " ID|NAME",
		Short: short,
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := f.client(cmd.Context())
			a, err := do(c, cmd, args[0])
			if err != nil {
				return err
			}
			raw, status := a.Raw, a.Status
			if !noWait && status == passing {
				sb, err := f.wait(cmd.Context(), c, a.ID, passing)
				if err != nil {
					return err
				}
				raw, status = sb.Raw, sb.Status
			}
			if f.json {
				return f.printJSON(raw)
			}
			fmt.Fprintf(f.env.Stdout, "%s %s\n", a.ID, status)
			return nil
		},
	}
	c.Flags().BoolVar(&noWait, "no-wait", false, "return at once, while the sandbox is still "+passing)
	return c
}

func sandboxPauseCmd(f *clientFlags) *cobra.Command {
	return lifecycleCmd(f, "pause", "Pause a running sandbox (its processes keep their memory)", "pausing",
		func(c *client.Client, cmd *cobra.Command, id string) (*client.StatusAnswer, error) {
			return c.PauseSandbox(cmd.Context(), id)
		})
}

func sandboxResumeCmd(f *clientFlags) *cobra.Command {
	return lifecycleCmd(f, "resume", "Resume a paused sandbox", "resuming",
		func(c *client.Client, cmd *cobra.Command, id string) (*client.StatusAnswer, error) {
			return c.ResumeSandbox(cmd.Context(), id)
		})
}

func sandboxDestroyCmd(f *clientFlags) *cobra.Command {
	var async bool
	c := &cobra.Command{
		Use:     "destroy ID|NAME...",
		Aliases: []string{"rm", "delete"},
		Short:   "Destroy sandboxes (mounted workspaces keep their files)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s wants a sandbox: %s", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := f.client(cmd.Context())
			var raws []jsonRaw
			for _, id := range args {
				a, err := c.DestroySandbox(cmd.Context(), id, async)
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				raws = append(raws, a.Raw)
				if !f.json {
					state := "destroyed"
					if !a.Deleted {
						state = a.Status
					}
					fmt.Fprintf(f.env.Stdout, "%s %s\n", a.ID, state)
				}
			}
			if f.json && len(raws) == 1 {
				return f.printJSON(raws[0])
			} else if f.json {
				return f.printJSONList(raws)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&async, "async", false, "return at once; the removal goes on in the background")
	return c
}
