package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func fmtSscan(s string, pid *int) (int, error) { return fmt.Sscan(s, pid) }

// alive reports whether pid runs. An exited child no one has reaped yet (a
// zombie) does not count.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
