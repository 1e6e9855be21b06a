package xmlrpc

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func call(body string) string {
	return `<?xml version="1.0"?><methodCall><methodName>m</methodName><params>` + body + `</params></methodCall>`
}

func param(v string) string { return "<param><value>" + v + "</value></param>" }

func TestDecodeCallTypes(t *testing.T) {
	when := time.Date(2024, 3, 9, 14, 5, 7, 0, time.UTC)
	tests := map[string]struct {
		value string
		want  any
	}{
		"int":                {"<int>42</int>", 42},
		"i4 negative":        {"<i4> -7 </i4>", -7},
		"int max":            {"<int>2147483647</int>", math.MaxInt32},
		"i8":                 {"<i8>9007199254740993</i8>", int64(9007199254740993)},
		"namespaced i8":      {`<ex:i8 xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions">-5</ex:i8>`, int64(-5)},
		"boolean true":       {"<boolean>1</boolean>", true},
		"boolean false":      {"<boolean>0</boolean>", false},
		"string":             {"<string>a &lt;b&gt; &amp; c</string>", "a <b> & c"},
		"empty string":       {"<string></string>", ""},
		"self-closed string": {"<string/>", ""},
		"untyped":            {"  plain text  ", "  plain text  "},
		"untyped empty":      {"", ""},
		"unicode":            {"<string>héllo ✓</string>", "héllo ✓"},
		"cdata":              {"<string><![CDATA[<x>]]></string>", "<x>"},
		"double":             {"<double>-1.5</double>", -1.5},
		"double exponent":    {"<double>1e3</double>", 1000.0},
		"python time":        {"<dateTime.iso8601>20240309T14:05:07</dateTime.iso8601>", when},
		"dashed time":        {"<dateTime.iso8601>2024-03-09T14:05:07Z</dateTime.iso8601>", when},
		"zoned time":         {"<dateTime.iso8601>2024-03-09T16:05:07+02:00</dateTime.iso8601>", when},
		"base64":             {"<base64>aGVs\nbG8=\n</base64>", []byte("hello")},
		"empty base64":       {"<base64></base64>", []byte{}},
		"nil":                {"<nil/>", nil},
		"namespaced nil":     {`<ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/>`, nil},
		"array":              {"<array><data><value><int>1</int></value><value>two</value><value><nil/></value></data></array>", []any{1, "two", nil}},
		"empty array":        {"<array><data/></array>", []any{}},
		"struct": {
			"<struct><member><name>a</name><value><boolean>1</boolean></value></member>" +
				"<member><name>b</name><value><array><data><value><struct></struct></value></data></array></value></member></struct>",
			map[string]any{"a": true, "b": []any{map[string]any{}}},
		},
		"struct last wins":  {"<struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct>", map[string]any{"a": "2"}},
		"whitespace around": {"\n  <int>3</int>\n ", 3},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(call(param(tt.value))))
			require.NoError(t, err)
			assert.Equal(t, "m", c.Method)
			require.Len(t, c.Params, 1)
			assert.Equal(t, tt.want, c.Params[0])
		})
	}
}

func TestDecodeCallShapes(t *testing.T) {
	c, err := DecodeCall(strings.NewReader(`<methodCall><methodName>system.listMethods</methodName></methodCall>`))
	require.NoError(t, err)
	assert.Equal(t, "system.listMethods", c.Method)
	assert.Empty(t, c.Params)

	c, err = DecodeCall(strings.NewReader("<!-- hi --><methodCall>\n <methodName> f </methodName>\n <params/>\n</methodCall>\n<!-- bye -->\n"))
	require.NoError(t, err)
	assert.Equal(t, "f", c.Method)
	assert.Empty(t, c.Params)

	c, err = DecodeCall(strings.NewReader(call(param("<int>1</int>") + param("<string>x</string>"))))
	require.NoError(t, err)
	assert.Equal(t, []any{1, "x"}, c.Params)

	latin1 := []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>m</methodName><params><param><value>caf\xe9</value></param></params></methodCall>")
	c, err = DecodeCall(bytes.NewReader(latin1))
	require.NoError(t, err)
	assert.Equal(t, []any{"café"}, c.Params)
}

func TestDecodeCallMalformed(t *testing.T) {
	deep := strings.Repeat("<value><array><data>", MaxDepth+1) + strings.Repeat("</data></array></value>", MaxDepth+1)
	okDeep := strings.Repeat("<value><array><data>", MaxDepth) + strings.Repeat("</data></array></value>", MaxDepth)
	_, err := DecodeCall(strings.NewReader(call("<param>" + okDeep + "</param>")))
	require.NoError(t, err, "MaxDepth levels are allowed")

	tests := map[string]struct {
		body string
		code int
	}{
		"empty":               {"", CodeParseError},
		"not xml":             {"hello", CodeParseError},
		"truncated":           {"<methodCall><methodName>m</methodName><params>", CodeParseError},
		"mismatched tags":     {"<methodCall><methodName>m</methodCall>", CodeParseError},
		"two roots":           {"<methodCall><methodName>m</methodName></methodCall><methodCall/>", CodeParseError},
		"text after root":     {"<methodCall><methodName>m</methodName></methodCall>junk", CodeParseError},
		"unknown entity":      {call(param("<string>&bogus;</string>")), CodeParseError},
		"doctype":             {`<!DOCTYPE x [<!ENTITY a "aaaa">]>` + call(""), CodeInvalidRequest},
		"wrong root":          {"<methodResponse/>", CodeInvalidRequest},
		"no methodName":       {"<methodCall><params/></methodCall>", CodeInvalidRequest},
		"empty methodName":    {"<methodCall><methodName> </methodName></methodCall>", CodeInvalidRequest},
		"element in name":     {"<methodCall><methodName><b/></methodName></methodCall>", CodeInvalidRequest},
		"stray element":       {"<methodCall><methodName>m</methodName><x/></methodCall>", CodeInvalidRequest},
		"param without value": {call("<param></param>"), CodeInvalidRequest},
		"two values in param": {call("<param><value>1</value><value>2</value></param>"), CodeInvalidRequest},
		"unknown type":        {call(param("<float>1</float>")), CodeInvalidRequest},
		"bad int":             {call(param("<int>one</int>")), CodeInvalidRequest},
		"int overflow":        {call(param("<i4>2147483648</i4>")), CodeInvalidRequest},
		"bad i8":              {call(param("<i8>99999999999999999999</i8>")), CodeInvalidRequest},
		"bad boolean":         {call(param("<boolean>yes</boolean>")), CodeInvalidRequest},
		"bad double":          {call(param("<double>1,5</double>")), CodeInvalidRequest},
		"bad time":            {call(param("<dateTime.iso8601>yesterday</dateTime.iso8601>")), CodeInvalidRequest},
		"bad base64":          {call(param("<base64>!!!</base64>")), CodeInvalidRequest},
		"nil with text":       {call(param("<nil>x</nil>")), CodeInvalidRequest},
		"mixed value":         {call(param("x<int>1</int>")), CodeInvalidRequest},
		"two types":           {call(param("<int>1</int><int>2</int>")), CodeInvalidRequest},
		"element in int":      {call(param("<int><b/></int>")), CodeInvalidRequest},
		"array without data":  {call(param("<array><value>1</value></array>")), CodeInvalidRequest},
		"text in data":        {call(param("<array><data>x</data></array>")), CodeInvalidRequest},
		"member without name": {call(param("<struct><member><value>1</value></member></struct>")), CodeInvalidRequest},
		"member no value":     {call(param("<struct><member><name>a</name></member></struct>")), CodeInvalidRequest},
		"text in struct":      {call(param("<struct>x</struct>")), CodeInvalidRequest},
		"too deep":            {call("<param>" + deep + "</param>"), CodeInvalidRequest},
		"too deep structs": {call("<param>" + strings.Repeat("<value><struct><member><name>a</name>", MaxDepth+1) +
			strings.Repeat("</member></struct></value>", MaxDepth+1) + "</param>"), CodeInvalidRequest},
		"unsupported encoding": {`<?xml version="1.0" encoding="EBCDIC"?>` + call(""), CodeUnsupportedEncoding},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeCall(strings.NewReader(tt.body))
			var f *Fault
			require.True(t, errors.As(err, &f), "want a fault, got %v", err)
			assert.Equal(t, tt.code, f.Code, f.Message)
			assert.NotEmpty(t, f.Message)
		})
	}
}

type tagged struct {
	Name    string `xmlrpc:"name"`
	Skipped string `xmlrpc:"-"`
	Empty   string `xmlrpc:"empty,omitempty"`
	Count   int
	hidden  int
}

func TestEncodeResponseRoundTrip(t *testing.T) {
	when := time.Date(2024, 3, 9, 14, 5, 7, 0, time.UTC)
	n := 5
	tests := map[string]struct {
		in   any
		want any
	}{
		"int":          {42, 42},
		"int32":        {int32(-3), -3},
		"int64 small":  {int64(7), 7},
		"int64 wide":   {int64(1) << 40, int64(1) << 40},
		"uint8":        {uint8(200), 200},
		"bool":         {true, true},
		"false":        {false, false},
		"string":       {"<a & b>\n\"q\"", "<a & b>\n\"q\""},
		"unicode":      {"héllo ✓", "héllo ✓"},
		"float":        {2.25, 2.25},
		"float32":      {float32(0.5), 0.5},
		"big float":    {1e21, 1e21},
		"time":         {when.In(time.FixedZone("x", 3600)), when},
		"bytes":        {[]byte{0, 1, 2, 255}, []byte{0, 1, 2, 255}},
		"byte array":   {[2]byte{1, 2}, []byte{1, 2}},
		"nil":          {nil, nil},
		"nil pointer":  {(*int)(nil), nil},
		"pointer":      {&n, 5},
		"strings":      {[]string{"a", "b"}, []any{"a", "b"}},
		"nil slice":    {[]string(nil), []any{}},
		"nested":       {[]any{1, []any{"x", map[string]any{"k": nil}}}, []any{1, []any{"x", map[string]any{"k": nil}}}},
		"string map":   {map[string][]string{"test": {"web"}}, map[string]any{"test": []any{"web"}}},
		"tagged":       {tagged{Name: "n", Skipped: "s", Count: 2, hidden: 1}, map[string]any{"name": "n", "Count": 2}},
		"tagged empty": {tagged{Name: "n", Empty: "e"}, map[string]any{"name": "n", "empty": "e", "Count": 0}},
		"signatures":   {[][]string{{"string", "struct"}}, []any{[]any{"string", "struct"}}},
		"control char": {"a\x00b", "a\uFFFDb"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, EncodeResponse(&b, tt.in))
			got, err := DecodeResponse(&b)
			require.NoError(t, err, b.String())
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEncodeCallRoundTrip(t *testing.T) {
	var b bytes.Buffer
	when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	params := []any{1, int64(1) << 33, true, "s", 1.5, when, []byte("x"), map[string]any{"a": []any{nil}}, nil}
	require.NoError(t, EncodeCall(&b, "do.it", params...))
	c, err := DecodeCall(&b)
	require.NoError(t, err)
	assert.Equal(t, "do.it", c.Method)
	assert.Equal(t, params, c.Params)
}

func TestEncodeErrors(t *testing.T) {
	for name, v := range map[string]any{
		"chan":      make(chan int),
		"int keys":  map[int]string{1: "a"},
		"huge uint": uint64(math.MaxUint64),
		"func":      func() {},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, EncodeResponse(&bytes.Buffer{}, v))
		})
	}
	// A self-referencing value stops at MaxDepth instead of recursing forever.
	loop := []any{nil}
	loop[0] = loop
	assert.Error(t, EncodeResponse(&bytes.Buffer{}, loop))
}

func TestFaultRoundTrip(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, EncodeFault(&b, &Fault{Code: CodeUnknownProject, Message: `unknown project "x<y"`}))
	assert.Contains(t, b.String(), "<name>faultCode</name><value><int>1</int></value>")
	_, err := DecodeResponse(&b)
	var f *Fault
	require.ErrorAs(t, err, &f)
	assert.Equal(t, CodeUnknownProject, f.Code)
	assert.Equal(t, `unknown project "x<y"`, f.Message)
}

// Python's xmlrpc.client writes exactly this for
// dumps((True, 1, 'x', 1.5, None), 'm', allow_none=True): the codec reads it.
func TestDecodePythonDumps(t *testing.T) {
	body := "<?xml version='1.0'?>\n<methodCall>\n<methodName>m</methodName>\n<params>\n" +
		"<param>\n<value><boolean>1</boolean></value>\n</param>\n" +
		"<param>\n<value><int>1</int></value>\n</param>\n" +
		"<param>\n<value><string>x</string></value>\n</param>\n" +
		"<param>\n<value><double>1.5</double></value>\n</param>\n" +
		"<param>\n<value><nil/></value></param>\n" +
		"</params>\n</methodCall>\n"
	c, err := DecodeCall(strings.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, []any{true, 1, "x", 1.5, nil}, c.Params)
}
