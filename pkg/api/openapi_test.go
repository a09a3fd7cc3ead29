package api

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+strings.TrimSuffix(path, "/"))
		}
	}
	var routed []string
	for _, r := range (&Server{}).routes() {
		routed = append(routed, r.method+" "+pathParam.ReplaceAllString(r.path, "{$1}"))
	}
	slices.Sort(documented)
	slices.Sort(routed)

	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.json documents %s, which has no route", d)
		}
	}
}

func TestOpenAPIDocumentsRouteParameters(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, r := range (&Server{}).routes() {
		path := pathParam.ReplaceAllString(r.path, "{$1}")
		item := doc.Paths.Find(path)
		if item == nil {
			item = doc.Paths.Find(path + "/")
		}
		if item == nil {
			continue // TestOpenAPIMatchesRoutes reports it
		}
		op := item.GetOperation(r.method)
		for _, m := range pathParam.FindAllStringSubmatch(r.path, -1) {
			if op.Parameters.GetByInAndName("path", m[1]) == nil {
				t.Errorf("%s %s: path parameter %s is not documented", r.method, path, m[1])
			}
		}
		if r.role != roleNone && op.Security != nil && len(*op.Security) == 0 {
			t.Errorf("%s %s needs a token but is documented without security", r.method, path)
		}
	}
}
