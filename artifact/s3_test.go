package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"
)

// s3URL is a store URL for bucket at endpoint, as an operator writes it.
func s3URL(bucket, endpoint string) string {
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("region", "us-east-1")
	q.Set("use_path_style", "true")
	return "s3://" + bucket + "?" + q.Encode()
}

// isolateAWS gives the SDK these keys and nothing else from the machine.
func isolateAWS(t *testing.T, keyID, secret string) {
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// TestS3RefusalIsOneRequest runs the store against a server that refuses
// everything the way S3 does: the error must name the store, the bucket
// and the refusal, wrap ErrRefused, and cost exactly one request (the
// SDK's retryer would otherwise try three times).
func TestS3RefusalIsOneRequest(t *testing.T) {
	// An upload starts with a HEAD of the key, whose answer has no body to
	// carry an error code: a 404 there reads as "not stored yet", so the
	// refusal comes with the PUT after it (2 requests); a 400 could be
	// anything, so that case stops at the check and the read.
	tests := map[string]struct {
		status         int
		code           string
		want           string
		uploadRequests int32
	}{
		"wrong secret":     {403, "SignatureDoesNotMatch", "check AWS_SECRET_ACCESS_KEY", 1},
		"unknown key":      {403, "InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID", 1},
		"no permission":    {403, "AccessDenied", "lack permission", 1},
		"no such bucket":   {404, "NoSuchBucket", "bucket does not exist", 2},
		"expired token":    {400, "ExpiredToken", "AWS_SESSION_TOKEN", 0},
		"bare 401":         {401, "Unauthorized", "lack permission", 1},
		"unknown code 403": {403, "SomethingNew", "lack permission", 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			isolateAWS(t, "AKIDTEST", "not-the-secret")
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>refused</Message><RequestId>1</RequestId></Error>`, tc.code)
			}))
			t.Cleanup(srv.Close)
			u := s3URL("relman-artifacts", srv.URL)

			err := Check(context.Background(), u)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrRefused)
			require.NotErrorIs(t, err, ErrUnreachable)
			var se *StoreError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.code, se.Code)
			msg := err.Error()
			for _, part := range []string{"s3://relman-artifacts?endpoint=" + srv.URL, "bucket relman-artifacts", "refused to list sha256/", tc.code, tc.want} {
				require.Contains(t, msg, part)
			}
			require.NotContains(t, msg, "not-the-secret")
			require.EqualValues(t, 1, requests.Load(), "requests for one refused check")

			// The same on the paths the roles use.
			s, err := OpenStore(context.Background(), u)
			require.NoError(t, err)
			defer s.Close()
			if tc.uploadRequests > 0 {
				requests.Store(0)
				_, err = s.PutFile(context.Background(), writeFile(t, testData(1000)))
				require.ErrorIs(t, err, ErrRefused)
				require.Equal(t, tc.uploadRequests, requests.Load(), "requests for one refused upload")
			}
			requests.Store(0)
			_, err = s.Open(context.Background(), refOf(testData(10)))
			require.ErrorIs(t, err, ErrRefused)
			require.EqualValues(t, 1, requests.Load(), "requests for one refused read")
		})
	}
}

// TestS3Unreachable points the store at a port nothing listens on: the
// error wraps ErrUnreachable, names the store and the bucket, and the SDK
// does not retry a refused connection.
func TestS3Unreachable(t *testing.T) {
	isolateAWS(t, "AKIDTEST", "secret")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := "http://" + l.Addr().String()
	l.Close()
	u := s3URL("relman-artifacts", endpoint)

	err = Check(context.Background(), u)
	require.ErrorIs(t, err, ErrUnreachable)
	require.NotErrorIs(t, err, ErrRefused)
	msg := err.Error()
	for _, part := range []string{"s3://relman-artifacts", "bucket relman-artifacts", "unreachable", "connection refused", "check that the store is up"} {
		require.Contains(t, msg, part)
	}

	s, err := OpenStore(context.Background(), u)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Open(context.Background(), refOf(testData(10)))
	require.ErrorIs(t, err, ErrUnreachable)
	_, err = s.PutFile(context.Background(), writeFile(t, testData(1000)))
	require.ErrorIs(t, err, ErrUnreachable)
}

func TestNotWorthRetrying(t *testing.T) {
	tests := map[string]struct {
		err  error
		want aws.Ternary
	}{
		"connection refused": {&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, aws.FalseTernary},
		"no such host":       {&net.DNSError{Err: "no such host", Name: "s3.invalid", IsNotFound: true}, aws.FalseTernary},
		"reset mid-stream":   {&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, aws.UnknownTernary},
		"anything else":      {errors.New("boom"), aws.UnknownTernary},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, notWorthRetrying(tc.err))
		})
	}
}

// TestS3NoCredentials: with no keys anywhere the SDK looks, the store
// says so instead of sending an unsigned request or asking for instance
// metadata.
func TestS3NoCredentials(t *testing.T) {
	isolateAWS(t, "", "")
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	err := Check(context.Background(), s3URL("relman-artifacts", srv.URL))
	require.ErrorIs(t, err, ErrRefused)
	require.Contains(t, err.Error(), "no credentials found")
	require.Contains(t, err.Error(), "bucket relman-artifacts")
	require.Zero(t, requests.Load(), "requests without credentials")
}

func TestS3URLRefusesCredentials(t *testing.T) {
	_, err := OpenStore(context.Background(), "s3://AKID:secret@bucket?region=us-east-1")
	require.Error(t, err)
	require.Contains(t, err.Error(), "AWS_ACCESS_KEY_ID")
	require.False(t, strings.Contains(err.Error(), "secret"), err.Error())
}

// TestS3UploadRefusesChangedBytes: bytes that are not those the ref was
// hashed from (a file rewritten during its upload) abort the upload, in
// one PUT or in parts, and leave nothing under the key.
func TestS3UploadRefusesChangedBytes(t *testing.T) {
	tests := map[string]int{
		"one put":   1000,
		"multipart": 11 << 20,
	}
	for name, size := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := localBackends()["s3"](t)
			st := s.(*store)
			data := testData(size)
			ref := refOf(data)
			changed := bytes.Clone(data)
			changed[len(changed)-1] ^= 0xff
			err := st.s3.upload(context.Background(), ref, bytes.NewReader(changed))
			require.ErrorIs(t, err, errChanged)
			ok, err := s.Has(context.Background(), ref)
			require.NoError(t, err)
			require.False(t, ok, "an object under %s after an aborted upload", ref.Key)
		})
	}
}

func TestCheckLocalStores(t *testing.T) {
	tests := map[string]string{
		"file, made on open": "file://" + filepath.Join(t.TempDir(), "new", "store"),
		"plain directory":    t.TempDir(),
		"mem":                "mem://",
	}
	for name, u := range tests {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, Check(context.Background(), u))
		})
	}
}
