package testcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Temporal stores each service's membership port in
// cluster_membership.rpc_port, a SMALLINT on PostgreSQL: a port above 32767
// kills the service at start. The kernel hands out ephemeral ports from
// 32768 up, so the cluster picks its own from below that range.
const (
	minPort = 10000
	maxPort = 32767
)

var (
	portsMu sync.Mutex
	// handedOut keeps one test process from giving a port to two servers
	// before either has bound it.
	handedOut = map[int]bool{}
)

// lowPort returns a port below 32768 that nothing listens on now and that
// this process has not handed out before.
func lowPort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := minPort + rand.IntN(maxPort-minPort+1)
		if handedOut[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		handedOut[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d after 1000 tries", minPort, maxPort)
}

// lowPorts returns n distinct ports from lowPort.
func lowPorts(n int) ([]int, error) {
	ps := make([]int, n)
	for i := range ps {
		p, err := lowPort()
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return ps, nil
}
