// Command relman is the release manager: every role and every client action.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"

	"github.com/relman/relman/surface/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], cli.Options{
		IsTerminal: func() bool { return isatty.IsTerminal(os.Stdout.Fd()) },
	})
	stop()
	os.Exit(code)
}
