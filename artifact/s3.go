package artifact

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/relman/relman/config"
)

var (
	// ErrRefused is wrapped by every error reporting that the store answered
	// but refused the request: wrong or missing credentials, no permission,
	// no such bucket. Retrying cannot fix it; the operator has to.
	ErrRefused = errors.New("artifact store refused the request")
	// ErrUnreachable is wrapped when the store could not be reached at all
	// (nothing listening, no route, no name): it may come back, but not
	// within the few seconds an SDK retry would wait.
	ErrUnreachable = errors.New("artifact store unreachable")
)

// StoreError reports what a store refused or could not do, naming the store
// and the bucket so that an operator with many stores knows which one.
type StoreError struct {
	// Store is the store URL without anything secret in it.
	Store  string
	Bucket string
	// Op is what was asked: "list sha256/", "read sha256/<hex>", ...
	Op string
	// Code and Status are the S3 error code and HTTP status, when the store
	// answered.
	Code   string
	Status int
	// Kind is ErrRefused or ErrUnreachable.
	Kind error
	Err  error
}

func (e *StoreError) Error() string {
	var b strings.Builder
	if errors.Is(e.Kind, ErrUnreachable) {
		fmt.Fprintf(&b, "artifact store %s (bucket %s) is unreachable: %s failed: %v; check that the store is up and its endpoint is right",
			e.Store, e.Bucket, e.Op, rootCause(e.Err))
		return b.String()
	}
	fmt.Fprintf(&b, "artifact store %s refused to %s in bucket %s", e.Store, e.Op, e.Bucket)
	if e.Code != "" || e.Status != 0 {
		b.WriteString(" (")
		b.WriteString(e.Code)
		if e.Status != 0 {
			if e.Code != "" {
				b.WriteString(", ")
			}
			b.WriteString("HTTP " + strconv.Itoa(e.Status))
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(refusalHint(e.Code, e.Err))
	return b.String()
}

// Unwrap gives errors.Is both the kind and the SDK's error.
func (e *StoreError) Unwrap() []error { return []error{e.Kind, e.Err} }

// refusalHint says what to do about a refusal, in the words of the AWS
// settings an operator would change.
func refusalHint(code string, err error) string {
	switch code {
	case "InvalidAccessKeyId":
		return "the store does not know the access key; check AWS_ACCESS_KEY_ID or the credentials file"
	case "SignatureDoesNotMatch":
		return "the secret key does not match the access key; check AWS_SECRET_ACCESS_KEY or the credentials file"
	case "NoSuchBucket":
		return "the bucket does not exist; create it or fix the bucket in the store URL"
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return "the session token is expired or invalid; refresh AWS_SESSION_TOKEN or the credentials file"
	}
	if errors.Is(err, errNoCredentials) {
		return "no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)"
	}
	return "the credentials lack permission for it; check the access key's policy for this bucket"
}

// errNoCredentials marks a request that never left because the SDK found
// no credentials anywhere in its chain.
var errNoCredentials = errors.New("no credentials")

func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr
	}
	return err
}

// s3Store opens s3:// URLs with a client built here rather than by
// gocloud's URL opener, for what the opener cannot be told:
//   - permission errors and a store that is down end the request at once
//     (the SDK's standard retryer would spend seconds on a refused
//     connection), and every error names the store and the bucket;
//   - the SDK logs through slog, and not at all about skipping the
//     validation of multipart checksums: every read is verified against
//     the artifact's sha256 here anyway;
//   - uploads of artifacts use few, small part buffers, so a builder
//     moving a 1 GiB artifact stays small.
//
// Credentials come only from the SDK's default chain (AWS_* variables,
// the shared credentials file, a profile); the URL has no place for them.
type s3Store struct {
	bucket          string
	redacted        string
	client          *s3.Client
	blob            *blob.Bucket
	requestChecksum aws.RequestChecksumCalculation
	partSize        int64
	uploaders       int
}

// S3 multipart limits: parts of at least 5 MiB, at most 10,000 of them.
// Every part in flight is a buffer, so parts are as small as S3 allows.
const (
	s3MinPart  = 5 << 20
	s3MaxParts = 10000
	// Two parts in flight keep a link busy; the transfer manager holds
	// one more buffer than that.
	s3Uploaders = 2
	// A store that does not accept a connection within this long is
	// reported as unreachable rather than waited for.
	s3DialTimeout = config.DefaultS3DialTimeout
)

// openS3 takes the query parameters gocloud's S3 URL opener takes
// (use_path_style, disable_https, accelerate, ssetype, kmskeyid) and hands
// the rest to gocloud's AWS config (region, endpoint, profile, ...).
func openS3(ctx context.Context, raw string) (*s3Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if u.Host == "" {
		return nil, errors.New("s3 url without a bucket: want s3://BUCKET?region=...")
	}
	if u.User != nil {
		return nil, errors.New("s3 url with credentials in it: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a credentials file, never in the URL")
	}
	q := u.Query()
	var clientOpts []func(*s3.Options)
	boolParam := func(name string) (bool, error) {
		v := q.Get(name)
		q.Del(name)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("s3 url parameter %s=%q is not true or false", name, v)
		}
		return b, nil
	}
	pathStyle, err := boolParam("use_path_style")
	if err != nil {
		return nil, err
	}
	legacyPathStyle, err := boolParam("s3ForcePathStyle")
	if err != nil {
		return nil, err
	}
	noHTTPS, err := boolParam("disable_https")
	if err != nil {
		return nil, err
	}
	accelerate, err := boolParam("accelerate")
	if err != nil {
		return nil, err
	}
	bopts := &s3blob.Options{}
	if v := q.Get("ssetype"); v != "" {
		t, ok := sseType(v)
		if !ok {
			return nil, fmt.Errorf("s3 url parameter ssetype=%q is not one of %v", v, types.ServerSideEncryptionAes256.Values())
		}
		bopts.EncryptionType = t
	}
	bopts.KMSEncryptionID = q.Get("kmskeyid")
	q.Del("ssetype")
	q.Del("kmskeyid")

	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	cfg.Logger = slogLogger{}
	cfg.HTTPClient = awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = s3DialTimeout
	})
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(notWorthRetrying)}, o.Retryables...)
		})
	}
	clientOpts = append(clientOpts, func(o *s3.Options) {
		o.UsePathStyle = pathStyle || legacyPathStyle
		o.EndpointOptions.DisableHTTPS = noHTTPS
		o.UseAccelerate = accelerate
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	client := s3.NewFromConfig(cfg, clientOpts...)
	bopts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	b, err := s3blob.OpenBucket(ctx, client, u.Host, bopts)
	if err != nil {
		return nil, err
	}
	return &s3Store{
		bucket:          u.Host,
		redacted:        displayURL(u),
		client:          client,
		blob:            b,
		requestChecksum: cfg.RequestChecksumCalculation,
		partSize:        s3MinPart,
		uploaders:       s3Uploaders,
	}, nil
}

// displayURL is the store URL as an operator wrote it (query unescaped,
// so the endpoint reads as a URL), with any password hidden.
func displayURL(u *url.URL) string {
	r := u.Redacted()
	if d, err := url.QueryUnescape(r); err == nil {
		return d
	}
	return r
}

// notWorthRetrying stops the SDK from retrying what a retry within
// seconds cannot fix: a refusal, and a connection nobody accepts.
func notWorthRetrying(err error) aws.Ternary {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return aws.FalseTernary
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return aws.FalseTernary
	}
	if code, status := apiError(err); isRefusal(code, status) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

func apiError(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func isRefusal(code string, status int) bool {
	switch code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket",
		"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem":
		return true
	}
	return status == 401 || status == 403
}

// classify turns an SDK error into a *StoreError when it is a refusal or
// an unreachable store, and leaves anything else (a missing key, a reset
// connection mid-stream) as it is.
func (s *s3Store) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *StoreError
	if errors.As(err, &se) {
		return err
	}
	code, status := apiError(err)
	switch {
	case isRefusal(code, status):
		return &StoreError{Store: s.redacted, Bucket: s.bucket, Op: op, Code: code, Status: status, Kind: ErrRefused, Err: err}
	case status == 0 && isNoCredentials(err):
		return &StoreError{Store: s.redacted, Bucket: s.bucket, Op: op, Kind: ErrRefused, Err: fmt.Errorf("%w: %w", errNoCredentials, err)}
	case status == 0 && isUnreachable(err):
		return &StoreError{Store: s.redacted, Bucket: s.bucket, Op: op, Kind: ErrUnreachable, Err: err}
	}
	return err
}

func isUnreachable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// isNoCredentials recognises the SDK's credential chain coming up empty. The
// SDK has no error type for it, only this wrapping text of its credential
// cache, which is stable across its releases.
func isNoCredentials(err error) bool {
	return strings.Contains(err.Error(), "failed to refresh cached credentials")
}

// check lists at most one key under sha256/: the cheapest request that
// needs both valid credentials and the bucket, and the permission every
// role needs (Has and build-once lookups list or stat keys there).
func (s *s3Store) check(ctx context.Context) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(keyPrefix),
		MaxKeys: aws.Int32(1),
	})
	return s.classify("list "+keyPrefix, err)
}

// partFor is the part size for an upload of size bytes (< 0: unknown): as
// small as S3 allows while staying under its 10,000 parts.
func (s *s3Store) partFor(size int64) int64 {
	if size < 0 {
		// An unknown size may be anything: parts for up to 156 GiB.
		// Roles upload files (PutFile), whose size is known.
		return 16 << 20
	}
	if need := (size + s3MaxParts - 1) / s3MaxParts; need > s.partSize {
		return need
	}
	return s.partSize
}

// writerOptions are gocloud's writer options for an upload of size bytes.
// gocloud's writer reads up to 16 MiB before it picks one PUT or a
// multipart upload, whatever the part size, so uploads of artifacts go
// through upload instead.
func (s *s3Store) writerOptions(size int64) *blob.WriterOptions {
	o := newWriterOptions()
	o.BufferSize = int(s.partFor(size))
	o.MaxConcurrency = s.uploaders
	return o
}

// errChanged is returned when a file's bytes differ from the ref it was
// hashed to before the upload.
var errChanged = errors.New("changed while being uploaded")

// upload streams r, which must hold exactly the bytes of ref, to ref.Key
// in parts of partFor(ref.Size), uploaders at a time: its memory is
// (uploaders+1) part buffers, about 15 MiB. The bytes are hashed as they
// go; if they turn out not to be ref's, the upload is aborted (a multipart
// upload is never completed) and the error wraps errChanged.
func (s *s3Store) upload(ctx context.Context, ref Ref, r io.Reader) error {
	part := s.partFor(ref.Size)
	tm := transfermanager.New(s.client, func(o *transfermanager.Options) {
		o.PartSizeBytes = part
		o.MultipartUploadThreshold = part
		o.Concurrency = s.uploaders
		o.RequestChecksumCalculation = s.requestChecksum
	})
	body := &checkingReader{r: r, ref: ref, h: sha256.New(), mismatch: func(_ string, n int64) error {
		return fmt.Errorf("%w: want sha256 %s (%d bytes), read %d bytes", errChanged, ref.SHA256, ref.Size, n)
	}}
	_, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(ref.Key),
		Body:        body,
		ContentType: aws.String("application/octet-stream"),
	})
	if body.err != nil {
		return body.err
	}
	return s.classify("write "+ref.Key, err)
}

func sseType(v string) (types.ServerSideEncryption, bool) {
	for _, t := range types.ServerSideEncryptionAes256.Values() {
		if strings.EqualFold(string(t), v) {
			return t, true
		}
	}
	return "", false
}

// slogLogger routes the SDK's few log lines through slog, so they follow
// the role's log level and destination instead of going to stderr.
type slogLogger struct{}

func (slogLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	slog.Default().Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
