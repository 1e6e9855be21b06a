package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relman/relman/auth"
)

func splitRoles(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func needUsersFile(file, command string) error {
	if file == "" {
		return usageErr("%s needs --users-file (the manager's auth.users_file)", command)
	}
	return nil
}

// editUsers loads the users file named by --users-file, applies change
// (whose error is the caller's mistake, a usage error) and saves it.
func editUsers(file, command string, change func(*auth.File) error) error {
	if err := needUsersFile(file, command); err != nil {
		return err
	}
	f, err := auth.Load(file)
	if err != nil {
		return err
	}
	if err := change(f); err != nil {
		return usageErr("%v", err)
	}
	return f.Save()
}

func (a *app) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage the users file of a manager with authentication on"}
	var file, roles string
	add := &cobra.Command{
		Use:     "add NAME --users-file FILE --roles ROLE,...",
		Short:   "Add a user or change their password and roles; the password is read from standard input",
		Example: `  printf '%s\n' 's3cret-passw0rd' | relman user add alice --users-file conf/users.yaml --roles deployer`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needUsersFile(file, "relman user add"); err != nil {
				return err
			}
			line, err := bufio.NewReader(a.opts.Stdin).ReadString('\n')
			password := strings.TrimRight(line, "\r\n")
			if password == "" && err != nil {
				return usageErr("give the password on standard input")
			}
			if err := editUsers(file, "relman user add", func(f *auth.File) error {
				return f.SetPassword(args[0], password, splitRoles(roles))
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.opts.Stdout, "user %s saved in %s\n", args[0], file)
			return nil
		},
	}
	add.Flags().StringVar(&file, "users-file", "", "the users file (the manager's auth.users_file)")
	add.Flags().StringVar(&roles, "roles", "", "comma-separated roles (kept as they are when omitted)")
	cmd.AddCommand(add)
	return cmd
}

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var file, roles string
	create := &cobra.Command{
		Use:   "create NAME --users-file FILE",
		Short: "Make an API token for a user; it is printed once and stored nowhere (the file keeps its public key)",
		Long: `Make an API token for a user. Keep it like a password: the CLI signs every
request with it (RELMAN_TOKEN, RELMAN_TOKEN_FILE or --token-file), and an
XML-RPC client may send it as credentials {'token': ...}. The users file keeps
only the token's public key, so reading the file does not reveal a token.
Redirected to a file, the file is made readable by its owner only (0600).`,
		Example: `  relman token create alice --users-file conf/users.yaml > ~/.config/relman/token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				token string
				t     auth.Token
			)
			if err := editUsers(file, "relman token create", func(f *auth.File) (err error) {
				token, t, err = f.NewToken(args[0], splitRoles(roles))
				return err
			}); err != nil {
				return err
			}
			if err := a.protectStdout(); err != nil {
				return err
			}
			fmt.Fprintln(a.opts.Stdout, token)
			fmt.Fprintf(a.opts.Stderr, "token %s for %s saved in %s; it is shown only now\n", t.ID, args[0], file)
			return nil
		},
	}
	create.Flags().StringVar(&file, "users-file", "", "the users file (the manager's auth.users_file)")
	create.Flags().StringVar(&roles, "roles", "", "comma-separated roles for the user (kept as they are when omitted)")
	cmd.AddCommand(create)
	return cmd
}
