package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"text/template"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The four Temporal services, each run as its own process.
const (
	Frontend = "frontend"
	History  = "history"
	Matching = "matching"
	Worker   = "worker"
)

// Services lists them in the order they are started.
var Services = []string{History, Matching, Frontend, Worker}

// healthName is the gRPC health-check service each Temporal service marks
// SERVING once it can take requests (the worker service has none: it only
// runs system workflows, so an open port is all there is to see).
var healthName = map[string]string{
	Frontend: "temporal.api.workflowservice.v1.WorkflowService",
	History:  "temporal.api.workflowservice.v1.HistoryService",
	Matching: "temporal.api.workflowservice.v1.MatchingService",
}

// servicePorts are one service's ports, all below 32768 (see ports.go).
type servicePorts struct {
	GRPC, Membership, HTTP, Metrics int
}

// temporalConfig is the server config of one service process. Every
// process lists every service's ports (they find each other through the
// membership table, but a config that describes the whole cluster is easier
// to read); only its metrics port is its own. pprof is off (no port).
var temporalConfig = template.Must(template.New("config").Parse(`log:
  stdout: true
  level: warn

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.Postgres}}"
        connectProtocol: tcp
        user: "{{.User}}"
        password: "{{.Password}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.Postgres}}"
        connectProtocol: tcp
        user: "{{.User}}"
        password: "{{.Password}}"
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: 1h

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:{{.Metrics}}"

services:
{{- range $name, $p := .Ports}}
  {{$name}}:
    rpc:
      grpcPort: {{$p.GRPC}}
      membershipPort: {{$p.Membership}}
      bindOnLocalHost: true
{{- if $p.HTTP}}
      httpPort: {{$p.HTTP}}
{{- end}}
{{- end}}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "{{.Frontend}}"

dcRedirectionPolicy:
  policy: noop

dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 10s

# History and visibility archival on the filestore, on for every namespace
# (the defaults apply to the namespace made later): a closed workflow's
# history is archived when it closes, and read back once retention (or a
# deletion) has removed the execution. Visibility is archived the same way
# as history (the YAML alias *filestore).
archival:
  history: &filestore
    state: enabled
    enableRead: true
    provider:
      filestore:
        fileMode: "0644"
        dirMode: "0755"
  visibility: *filestore

namespaceDefaults:
  archival:
    history:
      state: enabled
      URI: "file://{{.Archive}}/history"
    visibility:
      state: enabled
      URI: "file://{{.Archive}}/visibility"
`))

// dynamicConfig makes a new search attribute usable at once (tests create
// them and start workflows right after), lets a new namespace reach every
// service within a couple of seconds instead of ten, and archives a closed
// workflow within a second of its close (the default spreads archival over
// five minutes).
const dynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
system.namespaceCacheRefreshInterval:
  - value: 2s
limit.maxIDLength:
  - value: 255
history.archivalProcessorArchiveDelay:
  - value: 1s
`

// temporal is the server side: the schema and the four service processes.
type temporal struct {
	bin, sqlTool, schemaDir string
	dir                     string
	pg                      *Postgres
	ports                   map[string]servicePorts
	procs                   map[string]*process
}

func newTemporal(bin, sqlTool, schemaDir, dir string, pg *Postgres) (*temporal, error) {
	t := &temporal{bin: bin, sqlTool: sqlTool, schemaDir: schemaDir, dir: dir, pg: pg,
		ports: map[string]servicePorts{}, procs: map[string]*process{}}
	for _, name := range Services {
		n := 3
		if name == Frontend {
			n = 4
		}
		ps, err := lowPorts(n)
		if err != nil {
			return nil, err
		}
		sp := servicePorts{GRPC: ps[0], Membership: ps[1], Metrics: ps[2]}
		if name == Frontend {
			sp.HTTP = ps[3]
		}
		t.ports[name] = sp
	}
	dc := filepath.Join(dir, "dynamicconfig.yaml")
	if err := os.WriteFile(dc, []byte(dynamicConfig), 0o644); err != nil {
		return nil, err
	}
	for _, name := range Services {
		cfg := filepath.Join(dir, name+".yaml")
		if err := t.writeConfig(cfg, name, dc); err != nil {
			return nil, err
		}
		t.procs[name] = &process{name: name, log: filepath.Join(dir, "logs", name+".log"), newCmd: func() *exec.Cmd {
			return exec.Command(bin, "--config-file", cfg, "--allow-no-auth", "start", "--service", name)
		}}
	}
	return t, nil
}

// archiveDir holds the filestore archives: history/ and visibility/.
func (t *temporal) archiveDir() string { return filepath.Join(t.dir, "archival") }

func (t *temporal) writeConfig(path, service, dynamicConfigPath string) error {
	// Only the ports go to the template: the metrics port belongs to this
	// process alone.
	ports := map[string]servicePorts{}
	for n, p := range t.ports {
		ports[n] = servicePorts{GRPC: p.GRPC, Membership: p.Membership, HTTP: p.HTTP}
	}
	var b bytes.Buffer
	err := temporalConfig.Execute(&b, map[string]any{
		"Postgres":      t.pg.Address(),
		"User":          t.pg.User,
		"Password":      t.pg.Password,
		"Metrics":       t.ports[service].Metrics,
		"Ports":         ports,
		"Frontend":      t.frontendAddress(),
		"DynamicConfig": dynamicConfigPath,
		"Archive":       t.archiveDir(),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

func (t *temporal) frontendAddress() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.ports[Frontend].GRPC))
}

// setupSchema creates the temporal and temporal_visibility databases and
// migrates them to the server's version with its own sql tool, as an
// operator would.
func (t *temporal) setupSchema(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(t.dir, "logs", "sql-tool.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	for _, db := range []struct{ name, schema string }{
		{"temporal", "temporal"},
		{"temporal_visibility", "visibility"},
	} {
		for _, args := range [][]string{
			{"create-database"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "-d", filepath.Join(t.schemaDir, db.schema, "versioned")},
		} {
			full := append([]string{
				"--plugin", "postgres12",
				"--ep", "127.0.0.1",
				"-p", strconv.Itoa(t.pg.Port),
				"-u", t.pg.User,
				"--pw", t.pg.Password,
				"--db", db.name,
			}, args...)
			cmd := exec.CommandContext(ctx, t.sqlTool, full...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			fmt.Fprintf(log, "==== %s %v: %v\n%s", db.name, args, err, out.Bytes())
			if err != nil {
				return fmt.Errorf("temporal sql tool %s on %s failed (%v): %s", args[0], db.name, err, lastLine(out.Bytes()))
			}
		}
	}
	return nil
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// start runs one service and waits until it serves.
func (t *temporal) start(ctx context.Context, name string) error {
	p, ok := t.procs[name]
	if !ok {
		return fmt.Errorf("no Temporal service %q: use one of %v", name, Services)
	}
	if err := p.start(); err != nil {
		return err
	}
	return t.waitServing(ctx, name)
}

// waitServing waits until the service marks itself SERVING (or, for the
// worker service, listens), failing early when the process exits.
func (t *temporal) waitServing(ctx context.Context, name string) error {
	p := t.procs[name]
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(t.ports[name].GRPC))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	var last error
	for {
		if hn, ok := healthName[name]; ok {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := health.Check(cctx, &healthpb.HealthCheckRequest{Service: hn})
			cancel()
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				return nil
			}
			last = err
			if err == nil {
				last = fmt.Errorf("status %s", resp.GetStatus())
			}
		} else {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err == nil {
				c.Close()
				return nil
			}
			last = err
		}
		select {
		case <-p.exited():
			return fmt.Errorf("temporal %s exited at start (%v); see %s", name, p.exitError(), p.log)
		case <-ctx.Done():
			return fmt.Errorf("temporal %s on %s not serving (%v): %w; see %s", name, addr, last, ctx.Err(), p.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *temporal) stopAll() error {
	var first error
	// Frontend first so no new work arrives while the others stop.
	for _, name := range []string{Frontend, Worker, Matching, History} {
		if err := t.procs[name].stop(syscall.SIGTERM, 20*time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}
