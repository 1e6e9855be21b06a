package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EncodeResponse writes a methodResponse holding v.
func EncodeResponse(w io.Writer, v any) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><params><param>")
	if err := encodeValue(&b, reflect.ValueOf(v), 0); err != nil {
		return err
	}
	b.WriteString("</param></params></methodResponse>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// EncodeFault writes a methodResponse holding the fault f.
func EncodeFault(w io.Writer, f *Fault) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><fault>")
	if err := encodeValue(&b, reflect.ValueOf(map[string]any{"faultCode": f.Code, "faultString": f.Message}), 0); err != nil {
		return err
	}
	b.WriteString("</fault></methodResponse>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// EncodeCall writes a methodCall; the gateway's tests and Go clients use it.
func EncodeCall(w io.Writer, method string, params ...any) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodCall><methodName>")
	_ = xml.EscapeText(&b, []byte(method))
	b.WriteString("</methodName><params>")
	for _, p := range params {
		b.WriteString("<param>")
		if err := encodeValue(&b, reflect.ValueOf(p), 0); err != nil {
			return err
		}
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	_, err := w.Write(b.Bytes())
	return err
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// encodeValue writes <value>...</value> for v. Go types map as: nil and nil
// pointers, maps and slices -> <nil/>; bool -> boolean; ints in 32 bits ->
// int, wider -> i8; floats -> double; string -> string; []byte -> base64;
// time.Time -> dateTime.iso8601 (UTC); slices and arrays -> array; maps
// with string keys and structs (exported fields, `xmlrpc:"name"` tags,
// "-" to skip, ",omitempty") -> struct.
func encodeValue(b *bytes.Buffer, v reflect.Value, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("value nests deeper than %d levels", MaxDepth)
	}
	b.WriteString("<value>")
	defer b.WriteString("</value>")
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			b.WriteString("<nil/>")
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		b.WriteString("<nil/>")
		return nil
	}
	if v.Type() == timeType {
		b.WriteString("<dateTime.iso8601>")
		b.WriteString(v.Interface().(time.Time).UTC().Format(TimeLayout))
		b.WriteString("</dateTime.iso8601>")
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		writeInt(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := v.Uint()
		if u > math.MaxInt64 {
			return fmt.Errorf("%d does not fit an XML-RPC integer", u)
		}
		writeInt(b, int64(u))
	case reflect.Float32, reflect.Float64:
		b.WriteString("<double>")
		b.WriteString(strconv.FormatFloat(v.Float(), 'f', -1, 64))
		b.WriteString("</double>")
	case reflect.String:
		b.WriteString("<string>")
		_ = xml.EscapeText(b, []byte(v.String()))
		b.WriteString("</string>")
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			var raw []byte
			if v.Kind() == reflect.Slice {
				if v.IsNil() {
					b.WriteString("<nil/>")
					return nil
				}
				raw = v.Bytes()
			} else {
				raw = make([]byte, v.Len())
				reflect.Copy(reflect.ValueOf(raw), v)
			}
			b.WriteString("<base64>")
			b.WriteString(base64.StdEncoding.EncodeToString(raw))
			b.WriteString("</base64>")
			return nil
		}
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("<array><data></data></array>")
			return nil
		}
		b.WriteString("<array><data>")
		for i := range v.Len() {
			if err := encodeValue(b, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("a map keyed by %s has no XML-RPC form; key it by string", v.Type().Key())
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b.WriteString("<struct>")
		for _, k := range keys {
			if err := writeMember(b, k.String(), v.MapIndex(k), depth); err != nil {
				return err
			}
		}
		b.WriteString("</struct>")
	case reflect.Struct:
		b.WriteString("<struct>")
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("xmlrpc"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if opts == "omitempty" && fv.IsZero() {
				continue
			}
			if err := writeMember(b, name, fv, depth); err != nil {
				return err
			}
		}
		b.WriteString("</struct>")
	default:
		return fmt.Errorf("a %s has no XML-RPC form", v.Type())
	}
	return nil
}

func writeMember(b *bytes.Buffer, name string, v reflect.Value, depth int) error {
	b.WriteString("<member><name>")
	_ = xml.EscapeText(b, []byte(name))
	b.WriteString("</name>")
	if err := encodeValue(b, v, depth+1); err != nil {
		return err
	}
	b.WriteString("</member>")
	return nil
}

func writeInt(b *bytes.Buffer, n int64) {
	tag := "int"
	if n < math.MinInt32 || n > math.MaxInt32 {
		tag = "i8"
	}
	b.WriteString("<" + tag + ">")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString("</" + tag + ">")
}
