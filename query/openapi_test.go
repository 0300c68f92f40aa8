package query

import (
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesHandler: the document names every parameter the handler accepts.
func TestOpenAPIMatchesHandler(t *testing.T) {
	b, err := assets.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `yaml:"name"`
				Ref  string `yaml:"$ref"`
			} `yaml:"parameters"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range doc.Paths["/traces"]["get"].Parameters {
		got = append(got, p.Name)
	}
	if !slices.Equal(got, listParams) {
		t.Errorf("/traces parameters: document %v, handler %v", got, listParams)
	}
	got = nil
	for _, p := range doc.Paths["/drops"]["get"].Parameters {
		got = append(got, p.Name)
	}
	if !slices.Equal(got, dropParams) {
		t.Errorf("/drops parameters: document %v, handler %v", got, dropParams)
	}
	for _, path := range []string{"/traces/{traceId}", "/traces/{traceId}/spans/{spanId}", "/stats"} {
		if _, ok := doc.Paths[path]["get"]; !ok {
			t.Errorf("document lacks GET %s", path)
		}
	}
}
