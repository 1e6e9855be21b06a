package deployments_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

// kubeVersion is the Kubernetes the chart is rendered for: the version of
// the k8s.io/api types it is decoded into (v0.37 is Kubernetes 1.37).
const kubeVersion = "1.37.0"

const chartDir = "helm/relman"

// valuesFiles are the example values; "" is the chart's own defaults.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("helm/values/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 3, "dev, selfhosted-mtls and cloud")
	return files
}

// helmRun runs helm and returns its stdout, or fails with its stderr.
func helmRun(t *testing.T, helm string, args ...string) ([]byte, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

// decoder reads manifests into the Kubernetes API types strictly: an
// unknown or duplicated field is an error, as `kubectl apply
// --validate=strict` would make it.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeManifests splits a multi-document YAML stream and decodes every
// document.
func decodeManifests(stream []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj, _, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w\n%s", i, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestStrictDecodingRefusesMisspeltFields: the decoder the chart's test
// relies on does refuse what it must.
func TestStrictDecodingRefusesMisspeltFields(t *testing.T) {
	cases := map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicaz: 2\n",
		"wrong type":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: ten}]\n",
		"duplicate key": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"unknown kind":  "apiVersion: v1\nkind: Deploymint\nmetadata: {name: x}\n",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodeManifests([]byte(doc))
			assert.Error(t, err)
		})
	}
}

// TestHelmChart lints and renders the chart with each values file, decodes
// every manifest strictly into the Kubernetes API types, loads every relman
// config it renders with relman's own loader, and checks what the chart
// promises: non-root pods with read-only root file systems, probes on each
// role's status_address, resources, an installer per node named after its
// node, Services that reach their pods.
func TestHelmChart(t *testing.T) {
	helm := tool(t, "helm", "run make bin/helm")
	t.Run("defaults", func(t *testing.T) {
		// The defaults leave three choices to the operator, and say so.
		_, err := helmRun(t, helm, "lint", "--strict", "--kube-version", kubeVersion, chartDir)
		require.NoError(t, err)
		_, err = helmRun(t, helm, "template", "relman", chartDir, "--kube-version", kubeVersion)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "manager.gateway: set tlsSecret")
	})
	// The managers' public order key, as the operator passes it (README
	// step 3): what relman manager-key prints.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	key := auth.EncodeManagerKey(pub)
	for _, values := range valuesFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(values), ".yaml"), func(t *testing.T) {
			_, err := helmRun(t, helm, "lint", "--strict", "--kube-version", kubeVersion, chartDir, "-f", values)
			require.NoError(t, err)
			// Without the managers' key the chart refuses, naming the
			// command that prints it: no values run unsigned orders.
			_, err = helmRun(t, helm, "template", "relman", chartDir, "--kube-version", kubeVersion, "--namespace", "relman", "-f", values)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "installer.trust.managerKeys: set the managers' public order keys, as relman manager-key")
			// Nor a codec server serving plain HTTP unless told TLS ends
			// in front of it.
			_, err = helmRun(t, helm, "template", "relman", chartDir, "--kube-version", kubeVersion, "--namespace", "relman", "-f", values,
				"--set", "installer.trust.managerKeys[0]="+key, "--set", "codecServer.enabled=true", "--set", "codecServer.tokenSecret=t",
				"--set", "encryption.keysSecret=k", "--set", "codecServer.tls.secret=")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "codecServer: set tls.secret")
			// Nor without the managers' order key.
			_, err = helmRun(t, helm, "template", "relman", chartDir, "--kube-version", kubeVersion, "--namespace", "relman", "-f", values,
				"--set", "installer.trust.managerKeys[0]="+key, "--set", "manager.orders.keySecret=")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "manager.orders.keySecret: set a Secret holding orders.key")
			out, err := helmRun(t, helm, "template", "relman", chartDir, "--kube-version", kubeVersion, "--namespace", "relman", "-f", values,
				"--set", "installer.trust.managerKeys[0]="+key)
			require.NoError(t, err)
			objs, err := decodeManifests(out)
			require.NoError(t, err)
			checkChart(t, objs, key)
		})
	}
}

// rendered is what checkChart reads from one rendering.
type rendered struct {
	managerKey string         // the order key installers must trust
	configs    map[string]any // ConfigMap name -> loaded relman config
	services   []*corev1.Service
	pods       map[string]podOf // workload name -> its pod template
}

type podOf struct {
	kind string
	spec corev1.PodTemplateSpec
}

func checkChart(t *testing.T, objs []runtime.Object, managerKey string) {
	r := rendered{managerKey: managerKey, configs: map[string]any{}, pods: map[string]podOf{}}
	var manager *appsv1.Deployment
	var installer *appsv1.DaemonSet
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			for key, data := range o.Data {
				if strings.HasSuffix(key, ".yaml") {
					r.configs[o.Name] = loadRelmanConfig(t, key, []byte(data))
				}
			}
		case *corev1.Service:
			r.services = append(r.services, o)
		case *appsv1.Deployment:
			r.pods[o.Name] = podOf{"Deployment", o.Spec.Template}
			if strings.HasSuffix(o.Name, "-manager") {
				manager = o
			}
		case *appsv1.DaemonSet:
			r.pods[o.Name] = podOf{"DaemonSet", o.Spec.Template}
			installer = o
		case *corev1.Secret, *corev1.ServiceAccount, *policyv1.PodDisruptionBudget:
		default:
			t.Errorf("the chart renders a %T, which this test does not check", o)
		}
	}
	require.NotNil(t, manager, "no manager Deployment")
	assert.EqualValues(t, 2, *manager.Spec.Replicas, "managers share the queue: two by default and in every example")
	require.NotNil(t, installer, "no installer DaemonSet")
	for name, p := range r.pods {
		t.Run(name, func(t *testing.T) { checkPod(t, r, name, p) })
	}
	for _, s := range r.services {
		t.Run("service "+s.Name, func(t *testing.T) { checkService(t, r, s) })
	}
}

func checkPod(t *testing.T, r rendered, name string, p podOf) {
	spec := p.spec.Spec
	sc := spec.SecurityContext
	require.NotNil(t, sc)
	require.NotNil(t, sc.RunAsNonRoot)
	assert.True(t, *sc.RunAsNonRoot, "pods run as non-root")
	require.NotNil(t, sc.RunAsUser)
	assert.NotZero(t, *sc.RunAsUser)
	require.NotNil(t, spec.AutomountServiceAccountToken)
	assert.False(t, *spec.AutomountServiceAccountToken, "relman never calls the Kubernetes API")
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	require.Len(t, append(spec.InitContainers, spec.Containers...), 1, "one container per pod")
	c := spec.Containers[0]
	require.NotNil(t, c.SecurityContext)
	require.NotNil(t, c.SecurityContext.ReadOnlyRootFilesystem)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.NotNil(t, c.SecurityContext.Capabilities)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	assert.Empty(t, c.SecurityContext.Capabilities.Add)
	assert.False(t, c.Resources.Requests.Cpu().IsZero(), "a CPU request")
	assert.False(t, c.Resources.Requests.Memory().IsZero(), "a memory request")
	assert.False(t, c.Resources.Limits.Memory().IsZero(), "a memory limit")
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		_, ok := volumes[m.Name]
		assert.True(t, ok, "mount %s has no volume", m.Name)
		mounts[m.MountPath] = m
	}
	_, tmp := mounts["/tmp"]
	assert.True(t, tmp, "a writable /tmp: the root file system is read-only")
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.ReadinessProbe)
	if c.Name == "codec-server" {
		assert.Contains(t, c.Args, "--listen-address", "the Service must reach it")
		assert.Contains(t, c.Args, "--token-file", "the codec refuses calls without a token")
		assert.Contains(t, c.Args, "--tls-cert", "the values files give the codec a certificate: it serves HTTPS")
		codecServerAccepts(t, c.Args)
		return
	}

	// A relman role: its config comes from the ConfigMap the chart rendered,
	// mounted where --config says.
	require.GreaterOrEqual(t, len(c.Args), 3)
	role := c.Args[0]
	assert.Equal(t, "--config", c.Args[1])
	cfgPath := c.Args[2]
	m, ok := mounts[filepath.Dir(cfgPath)]
	require.True(t, ok, "--config %s is not in a mounted volume", cfgPath)
	require.NotNil(t, volumes[m.Name].ConfigMap, "the config is a ConfigMap")
	cfg, ok := r.configs[volumes[m.Name].ConfigMap.Name]
	require.True(t, ok, "%s mounts ConfigMap %s, which holds no relman config", name, volumes[m.Name].ConfigMap.Name)
	assert.Equal(t, role, roleOf(cfg), "the pod runs %s with another role's config", role)

	// Probes ask /livez and /readyz on status_address's port.
	svc := serviceOf(cfg)
	_, port, _ := strings.Cut(svc.StatusAddress, ":")
	assert.Equal(t, "/livez", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		assert.Equal(t, port, fmt.Sprint(containerPort(t, c, pr.HTTPGet.Port.String())), "probes must ask status_address")
	}
	assert.Empty(t, svc.Logging.Path, "containers log to stderr")

	switch cfg := cfg.(type) {
	case *config.Manager:
		if !cfg.Gateway.Off {
			assert.Equal(t, fmt.Sprint(cfg.ListenPort), fmt.Sprint(containerPort(t, c, "gateway")), "the gateway port")
		}
		for _, f := range []string{cfg.Auth.UsersFile, cfg.Auth.SecretFile, cfg.Gateway.TLSCertPath} {
			if f != "" {
				_, ok := mounts[filepath.Dir(f)]
				assert.True(t, ok, "%s is not mounted", f)
			}
		}
		// Every example keeps closed-transaction records: in the store the
		// builders write, signed with one key every manager holds (a
		// Secret, not a key each pod makes for itself).
		assert.Equal(t, storeOf(r.configs[strings.TrimSuffix(name, "-manager")+"-builder"]), cfg.Artifacts, "the manager's records go to the builders' store")
		m, ok := mounts[filepath.Dir(cfg.RecordsKeyFile)]
		if assert.True(t, ok, "records_key_file %s is not mounted", cfg.RecordsKeyFile) {
			assert.NotNil(t, volumes[m.Name].Secret, "the records key comes from a Secret")
		}
		// The order key: one Secret every manager holds (the installers
		// trust one key), in a directory the manager may write, since it
		// writes orders.key.pub beside the key at each start.
		m, ok = mounts[cfg.OrdersKeyFile]
		if assert.True(t, ok, "orders_key_file %s is not mounted", cfg.OrdersKeyFile) {
			assert.NotNil(t, volumes[m.Name].Secret, "the order key comes from a Secret")
			assert.True(t, m.ReadOnly)
			assert.Equal(t, filepath.Base(cfg.OrdersKeyFile), m.SubPath)
		}
		assert.True(t, writable(mounts, filepath.Dir(cfg.OrdersKeyFile)), "the manager writes orders.key.pub beside its key")
	case *config.Builder:
		assert.True(t, writable(mounts, cfg.WorkDir), "the work dir must be a writable volume")
		// Every builder holds the same key for the build records: a
		// Secret, not a key each pod makes for itself.
		m, ok := mounts[filepath.Dir(cfg.SigningKeyFile)]
		if assert.True(t, ok, "signing_key_file %s is not mounted", cfg.SigningKeyFile) {
			assert.NotNil(t, volumes[m.Name].Secret, "the build-record key comes from a Secret")
		}
	case *config.Installer:
		assert.Equal(t, "DaemonSet", p.kind)
		// The host id is the node's name, from the downward API.
		assert.Equal(t, []string{"--host", "$(NODE_NAME)"}, c.Args[3:5])
		var node *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "NODE_NAME" {
				node = &c.Env[i]
			}
		}
		require.NotNil(t, node, "NODE_NAME is not set")
		require.NotNil(t, node.ValueFrom)
		require.NotNil(t, node.ValueFrom.FieldRef)
		assert.Equal(t, "spec.nodeName", node.ValueFrom.FieldRef.FieldPath)
		assert.True(t, writable(mounts, cfg.WorkDir), "the work dir must be a writable volume")
		// Only orders the managers signed, with the key given.
		assert.Equal(t, []string{r.managerKey}, cfg.Trust.ManagerKeys, "the installer trusts the managers' key")
		// Installs land on the node: each target's parent directory is a
		// writable hostPath mount.
		for env, targets := range cfg.Environments {
			for target, b := range targets {
				if b.Path == "" {
					continue
				}
				m, ok := mountOf(mounts, filepath.Dir(b.Path))
				if assert.True(t, ok, "%s/%s installs into %s, which is not mounted", env, target, b.Path) {
					assert.False(t, m.ReadOnly)
					assert.NotNil(t, volumes[m.Name].HostPath, "%s/%s must install on the node", env, target)
				}
			}
		}
	}
	if strings.HasPrefix(storeOf(cfg), "file://") {
		m, ok := mountOf(mounts, strings.TrimPrefix(storeOf(cfg), "file://"))
		require.True(t, ok, "the file:// store is not mounted")
		assert.NotNil(t, volumes[m.Name].HostPath, "a file:// store shared by pods is a node directory")
	}
}

// checkService: a Service selects the pods of one workload and targets a
// port their container has.
func checkService(t *testing.T, r rendered, s *corev1.Service) {
	var matched []string
	for name, p := range r.pods {
		if selects(s.Spec.Selector, p.spec.Labels) {
			matched = append(matched, name)
			for _, sp := range s.Spec.Ports {
				containerPort(t, p.spec.Spec.Containers[0], sp.TargetPort.String())
			}
		}
	}
	assert.Len(t, matched, 1, "service %s selects %v", s.Name, matched)
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort resolves a port name (or number) of c.
func containerPort(t *testing.T, c corev1.Container, port string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	t.Errorf("container %s has no port %s", c.Name, port)
	return 0
}

func mountOf(mounts map[string]corev1.VolumeMount, dir string) (corev1.VolumeMount, bool) {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if m, ok := mounts[p]; ok {
			return m, true
		}
		if p == "/" {
			return corev1.VolumeMount{}, false
		}
	}
}

func writable(mounts map[string]corev1.VolumeMount, dir string) bool {
	m, ok := mountOf(mounts, dir)
	return ok && !m.ReadOnly
}

func serviceOf(c any) config.Service {
	switch c := c.(type) {
	case *config.Manager:
		return c.Service
	case *config.Builder:
		return c.Service
	case *config.Installer:
		return c.Service
	}
	return config.Service{}
}

func storeOf(c any) string {
	switch c := c.(type) {
	case *config.Manager:
		return c.Artifacts
	case *config.Builder:
		return c.Artifacts
	case *config.Installer:
		return c.Artifacts
	}
	return ""
}
