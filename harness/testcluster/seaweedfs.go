package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a SeaweedFS server (`weed mini`: master, volume, filer and S3
// gateway in one process) with authentication on: one identity whose keys
// are made up at start, and one bucket.
type S3 struct {
	Bucket          string
	AccessKeyID     string
	SecretAccessKey string
	// Port is the S3 endpoint's port on 127.0.0.1.
	Port int

	proc *process
}

// StartS3 starts weed under dir (data in dir/data, log in dir/logs) with
// every port chosen below 32768 and waits until the bucket answers an
// authenticated request.
func StartS3(ctx context.Context, weed, dir, bucket string) (*S3, error) {
	if err := need(weed); err != nil {
		return nil, err
	}
	ports, err := lowPorts(10)
	if err != nil {
		return nil, err
	}
	s := &S3{Bucket: bucket, AccessKeyID: "relman" + randomHex(6), SecretAccessKey: randomHex(20), Port: ports[0]}
	data := filepath.Join(dir, "data")
	for _, d := range []string{data, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	s3cfg, err := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "relman",
		"credentials": []any{map[string]string{"accessKey": s.AccessKeyID, "secretKey": s.SecretAccessKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgPath, s3cfg, 0o600); err != nil {
		return nil, err
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	args := []string{"mini",
		"-dir=" + data,
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3.port=" + p(0), "-s3.port.grpc=" + p(1),
		"-master.port=" + p(2), "-master.port.grpc=" + p(3),
		"-volume.port=" + p(4), "-volume.port.grpc=" + p(5),
		"-filer.port=" + p(6), "-filer.port.grpc=" + p(7),
		// The admin server runs even without its UI; left alone it takes
		// fixed ports, which two instances would fight over.
		"-admin.port=" + p(8), "-admin.port.grpc=" + p(9),
		// Sockets named after ports in /tmp would clash with another
		// instance that drew the same port in another test process.
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		// What the tests do not use stays off, so it holds no port.
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
		// No network but loopback here, and nothing to report anyway.
		"-master.telemetry=false",
		"-s3.config=" + cfgPath,
		// Real S3 does not make a bucket on the first upload to it, so a
		// store URL naming the wrong bucket must fail here too.
		"-s3.autoCreateBucket=false",
		"-bucket=" + bucket,
	}
	s.proc = &process{name: "seaweedfs", log: filepath.Join(dir, "logs", "seaweedfs.log"), newCmd: func() *exec.Cmd {
		cmd := exec.Command(weed, args...)
		cmd.Dir = dir
		return cmd
	}}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Endpoint is the S3 endpoint URL.
func (s *S3) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// StoreURL is relman's artifact store URL for the bucket.
func (s *S3) StoreURL() string {
	q := url.Values{}
	q.Set("region", "us-east-1")
	q.Set("endpoint", s.Endpoint())
	q.Set("use_path_style", "true")
	return (&url.URL{Scheme: "s3", Host: s.Bucket, RawQuery: q.Encode()}).String()
}

// Env is the environment that gives a process the credentials, the AWS way.
// Instance metadata is off: there is none here, and looking for it when a
// key is missing only adds seconds to the error.
func (s *S3) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Start runs the server (again) and waits until the bucket can be used with
// the credentials.
func (s *S3) Start(ctx context.Context) error {
	if err := s.proc.start(); err != nil {
		return err
	}
	client := s.client()
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, last = client.HeadBucket(cctx, &s3.HeadBucketInput{Bucket: aws.String(s.Bucket)})
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-s.proc.exited():
			return fmt.Errorf("seaweedfs exited at start (%v); see %s", s.proc.exitError(), s.proc.log)
		case <-ctx.Done():
			s.proc.kill()
			return fmt.Errorf("seaweedfs on %s not serving bucket %s: %v; see %s", s.Endpoint(), s.Bucket, last, s.proc.log)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// client is an S3 client with the identity's keys given directly, not
// through the environment: the tests decide which process sees them.
func (s *S3) client() *s3.Client {
	return s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint())
		o.UsePathStyle = true
	})
}

// CreateBucket makes another bucket, so tests that need an empty store
// each get one.
func (s *S3) CreateBucket(ctx context.Context, name string) error {
	_, err := s.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("create bucket %s on %s: %w", name, s.Endpoint(), err)
	}
	return nil
}

// StoreURLFor is the store URL of another bucket on the same server.
func (s *S3) StoreURLFor(bucket string) string {
	c := *s
	c.Bucket = bucket
	return c.StoreURL()
}

// Kill stops the server the hard way (SIGKILL), for tests of a store that
// is down.
func (s *S3) Kill() { s.proc.kill() }

// Stop stops the server gracefully.
func (s *S3) Stop() error { return s.proc.stop(syscall.SIGTERM, 20*time.Second) }

// Log is the server's log file.
func (s *S3) Log() string { return s.proc.log }
