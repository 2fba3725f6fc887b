package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"clamgate/internal/httpapi/apiclient"
	"clamgate/internal/testenv"
)

// contractDoer is the generated client's transport: each answer is also
// checked against openapi.json.
type contractDoer struct{ t *testing.T }

func (d contractDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	checkContract(d.t, req, resp, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// testGeneratedClient: the Go client oapi-codegen generates from
// openapi.json (package apiclient) uploads EICAR and a clean file, raw and
// as a multipart form, with a bearer token, and reads /v1/version.
func testGeneratedClient(t *testing.T, a *api) {
	ctx := context.Background()
	c, err := apiclient.NewClientWithResponses("http://"+a.tokened, apiclient.WithHTTPClient(contractDoer{t}),
		apiclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+tokenApp)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]struct {
		body []byte
		want apiclient.ObjectVerdict
	}{
		"eicar.com": {[]byte(testenv.EICAR), apiclient.Infected},
		"clean.bin": {randomBytes(100 << 10), apiclient.Clean},
	}
	for name, f := range files {
		raw, err := c.ScanWithBodyWithResponse(ctx, &apiclient.ScanParams{Name: &name}, "application/octet-stream", bytes.NewReader(f.body))
		checkScan(t, "raw "+name, raw, err, name, f.want)
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		part, _ := mw.CreateFormFile("file", name)
		part.Write(f.body)
		mw.Close()
		multi, err := c.ScanWithBodyWithResponse(ctx, nil, mw.FormDataContentType(), &form)
		checkScan(t, "multipart "+name, multi, err, name, f.want)
	}
	v, err := c.VersionWithResponse(ctx)
	if err != nil || v.JSON200 == nil {
		t.Fatalf("version: %v %v", err, v)
	}
	reply, err := a.clamd.Client("unix").Command(ctx, "VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.JSON200.Engine, "ClamAV ") || !strings.HasPrefix(reply, v.JSON200.Engine) || v.JSON200.Database != a.database() {
		t.Errorf("version: %+v, clamd says %q", *v.JSON200, reply)
	}
}

func checkScan(t *testing.T, what string, r *apiclient.ScanResponse, err error, name string, want apiclient.ObjectVerdict) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.JSON200 == nil || len(r.JSON200.Objects) != 1 {
		t.Fatalf("%s: %d %s", what, r.StatusCode(), r.Body)
	}
	if o := r.JSON200.Objects[0]; o.Verdict != want || o.Name != name || o.Size == 0 {
		t.Errorf("%s: %+v, want %s", what, o, want)
	}
}
