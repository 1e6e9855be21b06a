// Package xmlrpc is relman's XML-RPC gateway for the seed's legacy clients:
// a codec for XML-RPC calls and responses written on encoding/xml, a generic
// HTTP server with system.* introspection, and the relman methods
// (request_action, query_transaction, ...) on a Temporal client.
//
// The files: decode.go, parser.go and values.go read calls and responses;
// encode.go writes them; server.go serves HTTP and system.*; gateway.go is
// the manager's gateway and Serve; credentials.go checks who asks;
// request.go starts releases; read.go answers the reading methods; approval.go,
// cancel.go, rollout.go and records.go the rest of the seed's methods.
package xmlrpc
