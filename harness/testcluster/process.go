package testcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is one child process of the cluster with its output appended to a
// log file. Every start and exit is written into the log with a timestamp,
// so a test failure after a kill and restart reads as a story.
type process struct {
	name string
	log  string
	// newCmd builds a fresh command for every start: an exec.Cmd runs once.
	newCmd func() *exec.Cmd

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *process) start() error {
	if p.running() {
		return fmt.Errorf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	cmd := p.newCmd()
	fmt.Fprintf(f, "==== %s: start %s\n", time.Now().Format(time.RFC3339Nano), cmd.Args)
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group, so a kill takes any children with it; and a
	// test binary that dies must not leave servers holding ports behind.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "==== %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		p.err = err
		close(done)
	}()
	return nil
}

func (p *process) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exited is closed when the current run of the process ends.
func (p *process) exited() <-chan struct{} {
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// kill is a crash: SIGKILL to the process group, no chance to clean up.
func (p *process) kill() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks for a graceful exit with sig and kills the group after timeout.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not stop within %s, killed it", p.name, timeout)
	}
}

// exitError describes how the last run ended, for errors about a process
// that died while it was being waited for.
func (p *process) exitError() error {
	if p.err == nil {
		return errors.New("exited")
	}
	return p.err
}
