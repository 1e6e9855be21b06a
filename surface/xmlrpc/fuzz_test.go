package xmlrpc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeCall: no input panics, every failure is a *Fault, the work is
// bounded (a short deadline per input), and whatever decodes encodes back
// and decodes to the same call.
func FuzzDecodeCall(f *testing.F) {
	seeds := []string{
		call(param("<int>1</int>") + param("x") + param("<nil/>")),
		call(param("<struct><member><name>a</name><value><array><data><value><i8>9</i8></value></data></array></value></member></struct>")),
		call(param("<base64>aGk=</base64>") + param("<dateTime.iso8601>20240101T00:00:00</dateTime.iso8601>") + param("<double>1.5</double>") + param("<boolean>0</boolean>")),
		call(param(strings.Repeat("<array><data><value>", 70) + "x" + strings.Repeat("</value></data></array>", 70))),
		`<!DOCTYPE a [<!ENTITY b "c">]><methodCall><methodName>&b;</methodName></methodCall>`,
		`<?xml version="1.0" encoding="latin1"?><methodCall><methodName>m</methodName></methodCall>`,
		"<methodCall><methodName>m</methodName><params><param><value><string>&#0;</string></value></param></params></methodCall>",
		"<methodCall>",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > DefaultMaxBody {
			t.Skip()
		}
		start := time.Now()
		c, err := DecodeCall(bytes.NewReader(body))
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("decoding %d bytes took %s", len(body), took)
		}
		if err != nil {
			var f *Fault
			if !errors.As(err, &f) {
				t.Fatalf("error is not a fault: %T %v", err, err)
			}
			return
		}
		var b bytes.Buffer
		if err := EncodeCall(&b, c.Method, c.Params...); err != nil {
			t.Fatalf("a decoded call does not encode: %v", err)
		}
		if _, err := DecodeCall(&b); err != nil {
			t.Fatalf("a re-encoded call does not decode: %v\n%s", err, b.String())
		}
	})
}
