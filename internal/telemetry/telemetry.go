// Package telemetry sets up OpenTelemetry traces and metrics for a relman
// process from the standard OTEL_* variables, and hands the Temporal client
// the SDK's tracing interceptor and metrics handler, so one trace runs from
// `relman release` through the workflow and every activity on every host.
// Nothing is exported unless the variables ask for it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Telemetry is what one process exports.
type Telemetry struct {
	tracer   trace.Tracer
	tracing  interceptor.Interceptor
	metrics  client.MetricsHandler
	shutdown []func(context.Context) error
}

// Setup reads OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER (otlp, console
// or none; otlp by default when an OTLP endpoint is set, else none), and the
// usual OTEL_EXPORTER_OTLP_* settings, which the exporters read themselves.
// console writes spans as JSON to console.
func Setup(ctx context.Context, service string, lookup func(string) (string, bool), console io.Writer) (*Telemetry, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	if v := get("OTEL_SERVICE_NAME"); v != "" {
		service = v
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		res = resource.Default()
	}
	t := &Telemetry{}
	endpoint := get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	traces := strings.ToLower(get("OTEL_TRACES_EXPORTER"))
	if traces == "" && endpoint {
		traces = "otlp"
	}
	var sp sdktrace.SpanProcessor
	switch traces {
	case "", "none":
	case "console":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(console))
		if err != nil {
			return nil, fmt.Errorf("console trace exporter: %w", err)
		}
		// Synchronous, so a short-lived CLI loses no span.
		sp = sdktrace.NewSimpleSpanProcessor(exp)
	case "otlp":
		var exp sdktrace.SpanExporter
		proto := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = get("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if proto == "grpc" {
			exp, err = otlptracegrpc.New(ctx)
		} else {
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		sp = sdktrace.NewBatchSpanProcessor(exp)
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s is not supported; use otlp, console or none", traces)
	}
	if sp != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(sp))
		t.shutdown = append(t.shutdown, tp.Shutdown)
		t.tracer = tp.Tracer("relman")
		t.tracing, err = temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
			Tracer:            tp.Tracer("relman"),
			TextMapPropagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		})
		if err != nil {
			return nil, fmt.Errorf("tracing interceptor: %w", err)
		}
	}

	metrics := strings.ToLower(get("OTEL_METRICS_EXPORTER"))
	if metrics == "" && (get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "") {
		metrics = "otlp"
	}
	switch metrics {
	case "", "none", "console":
		// Console metrics would drown the console trace output; none.
	case "otlp":
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp metric exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		t.shutdown = append(t.shutdown, mp.Shutdown)
		t.metrics = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			Meter:                mp.Meter("relman"),
			UseMonotonicCounters: true,
			OnError:              func(error) {},
		})
	default:
		return nil, fmt.Errorf("OTEL_METRICS_EXPORTER=%s is not supported; use otlp or none", metrics)
	}
	return t, nil
}

// Apply adds the interceptor and metrics handler to Temporal client options;
// workers made from the client inherit both.
func (t *Telemetry) Apply(o *client.Options) {
	if t == nil {
		return
	}
	if t.tracing != nil {
		o.Interceptors = append(o.Interceptors, t.tracing)
	}
	if t.metrics != nil {
		o.MetricsHandler = t.metrics
	}
}

// Span starts the root span of a client action, so the trace of a release
// starts at the command that asked for it. traceID is empty when tracing is
// off.
func (t *Telemetry) Span(ctx context.Context, name string) (_ context.Context, traceID string, end func()) {
	if t == nil || t.tracer == nil {
		return ctx, "", func() {}
	}
	ctx, span := t.tracer.Start(ctx, name)
	return ctx, span.SpanContext().TraceID().String(), func() { span.End() }
}

// Enabled reports whether anything is exported.
func (t *Telemetry) Enabled() bool { return t != nil && (t.tracing != nil || t.metrics != nil) }

// Shutdown flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
