package httpapi_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"clamgate/internal/httpapi"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// contract is the OpenAPI document every /v1 answer of the tests is
// checked against, and the answers (operation and status) it has seen.
var contract struct {
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool // "scan 200"
}

func loadContract() error {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return fmt.Errorf("openapi.json does not load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return err
	}
	contract.doc, contract.router, contract.seen = doc, router, map[string]bool{}
	return nil
}

// TestMain loads the document first, and after a full run checks that
// the tests saw every answer the document declares.
func TestMain(m *testing.M) {
	if err := loadContract(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if f := flag.Lookup("test.run"); code == 0 && f != nil && f.Value.String() == "" {
		if missing := unseen(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the tests never saw these answers of openapi.json: %s\n", strings.Join(missing, ", "))
			code = 1
		}
	}
	os.Exit(code)
}

func unseen() []string {
	var missing []string
	for _, item := range contract.doc.Paths.Map() {
		for _, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if key := op.OperationID + " " + code; !contract.seen[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// checkContract validates an answer of /v1 against the document: its
// status is declared, and its headers and body match the schema.
func checkContract(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if !strings.HasPrefix(req.URL.Path, "/v1/") {
		return
	}
	r := req.Clone(context.Background())
	r.Host = ""
	r.URL.Scheme, r.URL.Host = "", ""
	route, params, err := contract.router.FindRoute(r)
	if err != nil {
		t.Errorf("%s %s is not in openapi.json: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d against openapi.json: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
		return
	}
	contract.mu.Lock()
	contract.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)] = true
	contract.mu.Unlock()
}
