// Package apiclient is a Go client of the HTTP front's /v1 API, generated
// by oapi-codegen from the OpenAPI document the front serves
// (internal/httpapi/openapi.json), so that the tests use the contract as
// an application would. It is not the product's own client: `clamgate
// scan` speaks clamd's protocol. TestClientUpToDate fails when the
// committed client is not what the document generates.
package apiclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../openapi.json
